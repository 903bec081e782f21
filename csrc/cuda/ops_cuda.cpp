// Torch-facing side of the CUDA kernels: argument checks, dtype dispatch, the current stream.
// Compiled only in CUDA builds (setup.py adds it with the .cu files).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <vector>

#include "../checks.h"
#include "kernels.h"

namespace fastsac {
namespace {

void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, ": CUDA launch failed: ", cudaGetErrorString(err));
}

std::tuple<at::Tensor, at::Tensor> tanh_normal_cuda(const at::Tensor& mean_raw,
                                                    const at::Tensor& log_std_raw,
                                                    const at::Tensor& eps, double log_std_min,
                                                    double log_std_max, bool tanh_mean) {
  const c10::cuda::CUDAGuard guard(mean_raw.device());
  auto c = prepare_tanh_normal(mean_raw, log_std_raw, eps);
  if (c.rows == 0) return {c.action, c.log_prob};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(c.m.scalar_type(), "tanh_normal_cuda", [&] {
    check_launch(cuda::launch_tanh_normal_forward<scalar_t>(
                     c.m.const_data_ptr<scalar_t>(), c.s.const_data_ptr<scalar_t>(),
                     c.e.const_data_ptr<scalar_t>(), c.action.mutable_data_ptr<scalar_t>(),
                     c.log_prob.mutable_data_ptr<scalar_t>(), c.rows, c.dim,
                     static_cast<scalar_t>(log_std_min),
                     static_cast<scalar_t>(0.5 * (log_std_max - log_std_min)), tanh_mean, stream),
                 "tanh_normal");
  });
  return {c.action, c.log_prob};
}

std::tuple<at::Tensor, at::Tensor> tanh_normal_backward_cuda(
    const at::Tensor& grad_action, const at::Tensor& grad_log_prob, const at::Tensor& mean_raw,
    const at::Tensor& log_std_raw, const at::Tensor& eps, double log_std_min, double log_std_max,
    bool tanh_mean) {
  const c10::cuda::CUDAGuard guard(mean_raw.device());
  auto c = prepare_tanh_normal_backward(grad_action, grad_log_prob, mean_raw, log_std_raw, eps);
  if (c.rows == 0) return {c.g_m, c.g_s};
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(c.m.scalar_type(), "tanh_normal_backward_cuda", [&] {
    check_launch(cuda::launch_tanh_normal_backward<scalar_t>(
                     c.g_a.const_data_ptr<scalar_t>(), c.g_lp.const_data_ptr<scalar_t>(),
                     c.m.const_data_ptr<scalar_t>(), c.s.const_data_ptr<scalar_t>(),
                     c.e.const_data_ptr<scalar_t>(), c.g_m.mutable_data_ptr<scalar_t>(),
                     c.g_s.mutable_data_ptr<scalar_t>(), c.rows, c.dim,
                     static_cast<scalar_t>(log_std_min),
                     static_cast<scalar_t>(0.5 * (log_std_max - log_std_min)), tanh_mean, stream),
                 "tanh_normal_backward");
  });
  return {c.g_m, c.g_s};
}

template <typename T>
void polyak_group(const std::vector<at::Tensor>& targets, const std::vector<at::Tensor>& sources,
                  double tau, cudaStream_t stream) {
  std::vector<T*> t_ptrs;
  std::vector<const T*> s_ptrs;
  std::vector<int64_t> numels;
  for (size_t i = 0; i < targets.size(); ++i) {
    t_ptrs.push_back(targets[i].mutable_data_ptr<T>());
    s_ptrs.push_back(sources[i].const_data_ptr<T>());
    numels.push_back(targets[i].numel());
  }
  check_launch(cuda::launch_polyak<T>(t_ptrs.data(), s_ptrs.data(), numels.data(),
                                      static_cast<int>(t_ptrs.size()), static_cast<T>(tau),
                                      static_cast<T>(1.0 - tau), stream),
               "polyak_");
}

void polyak_cuda(at::TensorList target, at::TensorList source, double tau) {
  check_polyak_inputs(target, source);
  if (target.empty()) return;
  const c10::cuda::CUDAGuard guard(target[0].device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  // Contiguous targets are written in place; a non-contiguous one goes through a contiguous
  // copy that is written back after the launch.
  std::vector<at::Tensor> t32, s32, t64, s64, staged, originals;
  for (size_t i = 0; i < target.size(); ++i) {
    TORCH_CHECK(target[i].device() == target[0].device(), "polyak_: all tensors on one device");
    at::Tensor t = target[i];
    if (!t.is_contiguous()) {
      originals.push_back(t);
      t = t.contiguous();
      staged.push_back(t);
    }
    const auto s = source[i].contiguous();
    if (t.scalar_type() == at::kFloat) {
      t32.push_back(t);
      s32.push_back(s);
    } else {
      t64.push_back(t);
      s64.push_back(s);
    }
  }
  if (!t32.empty()) polyak_group<float>(t32, s32, tau, stream);
  if (!t64.empty()) polyak_group<double>(t64, s64, tau, stream);
  for (size_t i = 0; i < staged.size(); ++i) originals[i].copy_(staged[i]);
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CUDA, m) {
  m.impl("tanh_normal", &tanh_normal_cuda);
  m.impl("tanh_normal_backward", &tanh_normal_backward_cuda);
  m.impl("polyak_", &polyak_cuda);
}

}  // namespace fastsac
