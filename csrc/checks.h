// Argument checks shared by the CPU and CUDA entry points of the fastsac ops.
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

}  // namespace fastsac
