// CUDA kernels of the fused tanh-Normal head. Forward: one thread per row (the row sum of the
// log-prob stays in a register; action dims are small). Backward: one thread per element, so
// the loads of the [rows, dim] inputs are coalesced; each reads its row's grad_log_prob.
#include <algorithm>

#include "../tanh_normal_math.h"
#include "kernels.h"

namespace fastsac {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(b, 1), 65535));
}

template <typename T>
__global__ void tanh_normal_forward_kernel(const T* __restrict__ m, const T* __restrict__ s,
                                           const T* __restrict__ e, T* __restrict__ action,
                                           T* __restrict__ log_prob, int64_t rows, int64_t dim,
                                           T lo, T half_range, bool tanh_mean) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T acc = T(0);
    const int64_t base = r * dim;
    for (int64_t j = 0; j < dim; ++j) {
      const int64_t i = base + j;
      acc += tanh_normal_forward_elem<T>(m[i], s[i], e[i], lo, half_range, tanh_mean, &action[i]);
    }
    log_prob[r] = acc;
  }
}

template <typename T>
__global__ void tanh_normal_backward_kernel(const T* __restrict__ g_a, const T* __restrict__ g_lp,
                                            const T* __restrict__ m, const T* __restrict__ s,
                                            const T* __restrict__ e, T* __restrict__ g_m,
                                            T* __restrict__ g_s, int64_t n, int64_t dim, T lo,
                                            T half_range, bool tanh_mean) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    tanh_normal_backward_elem<T>(m[i], s[i], e[i], lo, half_range, tanh_mean, g_a[i],
                                 g_lp[i / dim], &g_m[i], &g_s[i]);
  }
}

}  // namespace

template <typename T>
cudaError_t launch_tanh_normal_forward(const T* mean_raw, const T* log_std_raw, const T* eps,
                                       T* action, T* log_prob, int64_t rows, int64_t dim, T lo,
                                       T half_range, bool tanh_mean, cudaStream_t stream) {
  if (rows == 0 || dim == 0) return cudaSuccess;
  tanh_normal_forward_kernel<T><<<blocks_for(rows), kThreads, 0, stream>>>(
      mean_raw, log_std_raw, eps, action, log_prob, rows, dim, lo, half_range, tanh_mean);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_tanh_normal_backward(const T* grad_action, const T* grad_log_prob,
                                        const T* mean_raw, const T* log_std_raw, const T* eps,
                                        T* grad_mean_raw, T* grad_log_std_raw, int64_t rows,
                                        int64_t dim, T lo, T half_range, bool tanh_mean,
                                        cudaStream_t stream) {
  const int64_t n = rows * dim;
  if (n == 0) return cudaSuccess;
  tanh_normal_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
      grad_action, grad_log_prob, mean_raw, log_std_raw, eps, grad_mean_raw, grad_log_std_raw, n,
      dim, lo, half_range, tanh_mean);
  return cudaGetLastError();
}

template cudaError_t launch_tanh_normal_forward<float>(const float*, const float*, const float*,
                                                       float*, float*, int64_t, int64_t, float,
                                                       float, bool, cudaStream_t);
template cudaError_t launch_tanh_normal_forward<double>(const double*, const double*,
                                                        const double*, double*, double*, int64_t,
                                                        int64_t, double, double, bool,
                                                        cudaStream_t);
template cudaError_t launch_tanh_normal_backward<float>(const float*, const float*, const float*,
                                                        const float*, const float*, float*, float*,
                                                        int64_t, int64_t, float, float, bool,
                                                        cudaStream_t);
template cudaError_t launch_tanh_normal_backward<double>(const double*, const double*,
                                                         const double*, const double*,
                                                         const double*, double*, double*, int64_t,
                                                         int64_t, double, double, bool,
                                                         cudaStream_t);

}  // namespace cuda
}  // namespace fastsac
