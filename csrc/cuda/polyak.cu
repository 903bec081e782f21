// Multi-tensor Polyak update: every (target, source) pair of a chunk in one launch. blockIdx.y
// picks the pair, blockIdx.x strides over its elements, so a list of small tensors (a network's
// weights and biases) costs one launch instead of one per tensor.
#include <algorithm>

#include "kernels.h"

namespace fastsac {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
struct PolyakChunk {
  T* target[kPolyakMaxTensors];
  const T* source[kPolyakMaxTensors];
  int64_t numel[kPolyakMaxTensors];
};

template <typename T>
__global__ void polyak_kernel(const __grid_constant__ PolyakChunk<T> chunk, T tau, T keep) {
  const int k = blockIdx.y;
  T* __restrict__ t = chunk.target[k];
  const T* __restrict__ s = chunk.source[k];
  const int64_t n = chunk.numel[k];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    t[i] = tau * s[i] + keep * t[i];
  }
}

}  // namespace

template <typename T>
cudaError_t launch_polyak(T* const* targets, const T* const* sources, const int64_t* numels,
                          int count, T tau, T keep, cudaStream_t stream) {
  for (int start = 0; start < count; start += kPolyakMaxTensors) {
    const int n = std::min(kPolyakMaxTensors, count - start);
    PolyakChunk<T> chunk{};
    int64_t largest = 0;
    for (int k = 0; k < n; ++k) {
      chunk.target[k] = targets[start + k];
      chunk.source[k] = sources[start + k];
      chunk.numel[k] = numels[start + k];
      largest = std::max(largest, numels[start + k]);
    }
    if (largest == 0) continue;
    const int64_t want = (largest + kThreads - 1) / kThreads;
    const unsigned int blocks_x = static_cast<unsigned int>(std::min<int64_t>(want, 1024));
    polyak_kernel<T><<<dim3(blocks_x, n), kThreads, 0, stream>>>(chunk, tau, keep);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template cudaError_t launch_polyak<float>(float* const*, const float* const*, const int64_t*, int,
                                          float, float, cudaStream_t);
template cudaError_t launch_polyak<double>(double* const*, const double* const*, const int64_t*,
                                           int, double, double, cudaStream_t);

}  // namespace cuda
}  // namespace fastsac
