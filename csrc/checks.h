// Argument checks and call preparation shared by the CPU and CUDA entry points of the ops.
#pragma once
#include <ATen/ATen.h>

namespace fastsac {

inline void check_tanh_normal_inputs(const at::Tensor& mean_raw, const at::Tensor& log_std_raw,
                                     const at::Tensor& eps) {
  TORCH_CHECK(mean_raw.dim() >= 1, "tanh_normal: inputs need at least one dimension (the action dim)");
  TORCH_CHECK(mean_raw.sizes() == log_std_raw.sizes() && mean_raw.sizes() == eps.sizes(),
              "tanh_normal: mean_raw, log_std_raw and eps must have the same shape, got ",
              mean_raw.sizes(), ", ", log_std_raw.sizes(), " and ", eps.sizes());
  TORCH_CHECK(mean_raw.scalar_type() == log_std_raw.scalar_type() &&
                  mean_raw.scalar_type() == eps.scalar_type(),
              "tanh_normal: all inputs must have the same dtype");
  TORCH_CHECK(mean_raw.scalar_type() == at::kFloat || mean_raw.scalar_type() == at::kDouble,
              "tanh_normal: float32 or float64 inputs only, got ", mean_raw.scalar_type());
  TORCH_CHECK(mean_raw.device() == log_std_raw.device() && mean_raw.device() == eps.device(),
              "tanh_normal: all inputs must be on the same device");
}

inline std::vector<int64_t> log_prob_shape(const at::Tensor& like) {
  std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
  shape.back() = 1;
  return shape;
}

inline void check_polyak_inputs(at::TensorList target, at::TensorList source) {
  TORCH_CHECK(target.size() == source.size(), "polyak_: target and source lists differ in length (",
              target.size(), " vs ", source.size(), ")");
  for (size_t i = 0; i < target.size(); ++i) {
    TORCH_CHECK(target[i].sizes() == source[i].sizes(), "polyak_: shape mismatch at index ", i,
                ": ", target[i].sizes(), " vs ", source[i].sizes());
    TORCH_CHECK(target[i].scalar_type() == source[i].scalar_type(),
                "polyak_: dtype mismatch at index ", i);
    TORCH_CHECK(target[i].device() == source[i].device(), "polyak_: device mismatch at index ", i);
    TORCH_CHECK(target[i].scalar_type() == at::kFloat || target[i].scalar_type() == at::kDouble,
                "polyak_: float32 or float64 tensors only");
  }
}

// Contiguous inputs and freshly allocated outputs of one tanh_normal call (CPU and CUDA alike).
struct TanhNormalCall {
  at::Tensor m, s, e, action, log_prob;
  int64_t rows = 0, dim = 0;
};

inline TanhNormalCall prepare_tanh_normal(const at::Tensor& mean_raw,
                                          const at::Tensor& log_std_raw, const at::Tensor& eps) {
  check_tanh_normal_inputs(mean_raw, log_std_raw, eps);
  TanhNormalCall c;
  c.m = mean_raw.contiguous();
  c.s = log_std_raw.contiguous();
  c.e = eps.contiguous();
  c.action = at::empty_like(c.m, at::MemoryFormat::Contiguous);
  c.log_prob = at::empty(log_prob_shape(c.m), c.m.options());
  c.dim = c.m.size(-1);
  c.rows = c.dim == 0 ? 0 : c.m.numel() / c.dim;
  if (c.dim == 0) c.log_prob.zero_();  // an empty sum
  return c;
}

// The same for the backward: incoming gradients made contiguous, gradient outputs allocated.
struct TanhNormalBackwardCall {
  at::Tensor g_a, g_lp, m, s, e, g_m, g_s;
  int64_t rows = 0, dim = 0;
};

inline TanhNormalBackwardCall prepare_tanh_normal_backward(const at::Tensor& grad_action,
                                                           const at::Tensor& grad_log_prob,
                                                           const at::Tensor& mean_raw,
                                                           const at::Tensor& log_std_raw,
                                                           const at::Tensor& eps) {
  check_tanh_normal_inputs(mean_raw, log_std_raw, eps);
  TORCH_CHECK(grad_action.sizes() == mean_raw.sizes(), "tanh_normal_backward: grad_action shape");
  TORCH_CHECK(grad_log_prob.numel() * mean_raw.size(-1) == mean_raw.numel(),
              "tanh_normal_backward: grad_log_prob must have one value per row");
  TanhNormalBackwardCall c;
  c.m = mean_raw.contiguous();
  c.s = log_std_raw.contiguous();
  c.e = eps.contiguous();
  c.g_a = grad_action.to(c.m.scalar_type()).contiguous();
  c.g_lp = grad_log_prob.to(c.m.scalar_type()).contiguous();
  c.g_m = at::empty_like(c.m, at::MemoryFormat::Contiguous);
  c.g_s = at::empty_like(c.m, at::MemoryFormat::Contiguous);
  c.dim = c.m.size(-1);
  c.rows = c.dim == 0 ? 0 : c.m.numel() / c.dim;
  return c;
}

}  // namespace fastsac
