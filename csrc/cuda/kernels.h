// Launchers of the fastsac CUDA kernels, over raw pointers and a stream. Plain CUDA: no torch
// headers, so the .cu files build with nvcc alone (CI compiles them on machines without a GPU).
// Each launcher returns cudaGetLastError() after its launches; the torch glue checks it.
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace fastsac {
namespace cuda {

template <typename T>
cudaError_t launch_tanh_normal_forward(const T* mean_raw, const T* log_std_raw, const T* eps,
                                       T* action, T* log_prob, int64_t rows, int64_t dim, T lo,
                                       T half_range, bool tanh_mean, cudaStream_t stream);

template <typename T>
cudaError_t launch_tanh_normal_backward(const T* grad_action, const T* grad_log_prob,
                                        const T* mean_raw, const T* log_std_raw, const T* eps,
                                        T* grad_mean_raw, T* grad_log_std_raw, int64_t rows,
                                        int64_t dim, T lo, T half_range, bool tanh_mean,
                                        cudaStream_t stream);

// Multi-tensor Polyak: up to kPolyakMaxTensors pairs go to the device in the kernel's parameter
// block (no host-to-device copy, so the launch is legal inside a CUDA graph capture); longer
// lists are cut into launches of that many pairs.
constexpr int kPolyakMaxTensors = 48;

template <typename T>
cudaError_t launch_polyak(T* const* targets, const T* const* sources, const int64_t* numels,
                          int count, T tau, T keep, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastsac
