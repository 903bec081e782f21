// Autograd of fastsac::tanh_normal and fastsac::mm, in C++. tanh_normal: the forward saves its
// inputs, the backward is one call of the fused fastsac::tanh_normal_backward (derivation in
// tanh_normal_math.h). mm: the usual two products. Any device.
//
// Why C++ and not torch.library.register_autograd: the Python registration wraps every call in a
// Python autograd.Function (argument re-packing, a Python backward node), an overhead that at
// SAC's 128 x 6 is a large share of the forward + backward. It also runs under no_grad, whenever
// the dispatcher passes the Autograd key: the compiled update calls its ops through the
// dispatcher, so each of its 15 fastsac::mm calls would pay the Python wrapper on every update
// (BENCHMARKS.md has the timings). Here each call costs a C++ function call, and a C++ node
// where a graph is recorded. ops.py registers the Python formulas only for its pure-torch
// fallback, where there is no C++.
#include <torch/autograd.h>
#include <torch/library.h>

#include "checks.h"
#include "op_handles.h"

namespace fastsac {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class TanhNormalFunction : public torch::autograd::Function<TanhNormalFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& mean_raw,
                               const at::Tensor& log_std_raw, const at::Tensor& eps,
                               double log_std_min, double log_std_max) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // the device kernel, not this one again
    auto [action, log_prob] =
        tanh_normal_op().call(mean_raw, log_std_raw, eps, log_std_min, log_std_max);
    ctx->save_for_backward({mean_raw, log_std_raw, eps});
    ctx->saved_data["log_std_min"] = log_std_min;
    ctx->saved_data["log_std_max"] = log_std_max;
    return {action, log_prob};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& mean_raw = saved[0];
    // An output that did not reach the loss sends an undefined gradient: it counts as zero.
    at::Tensor g_action = grads[0].defined() ? grads[0] : at::zeros_like(mean_raw);
    at::Tensor g_log_prob =
        grads[1].defined() ? grads[1] : at::zeros(log_prob_shape(mean_raw), mean_raw.options());
    auto [g_mean_raw, g_log_std_raw] = tanh_normal_backward_op().call(
        g_action, g_log_prob, mean_raw, saved[1], saved[2],
        ctx->saved_data["log_std_min"].toDouble(), ctx->saved_data["log_std_max"].toDouble());
    return {g_mean_raw, g_log_std_raw, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class MmFunction : public torch::autograd::Function<MmFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    ctx->save_for_backward({a, b});
    return mm_op().call(a, b);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    // through the op again (its autograd too), so that double backward works
    return {mm_op().call(grads[0], saved[1].t()), mm_op().call(saved[0].t(), grads[0])};
  }
};

at::Tensor mm_autograd(const at::Tensor& a, const at::Tensor& b) {
  return MmFunction::apply(a, b);
}

std::tuple<at::Tensor, at::Tensor> tanh_normal_autograd(const at::Tensor& mean_raw,
                                                        const at::Tensor& log_std_raw,
                                                        const at::Tensor& eps, double log_std_min,
                                                        double log_std_max) {
  auto out = TanhNormalFunction::apply(mean_raw, log_std_raw, eps, log_std_min, log_std_max);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, Autograd, m) {
  m.impl("tanh_normal", &tanh_normal_autograd);
  m.impl("mm", &mm_autograd);
}

}  // namespace fastsac
