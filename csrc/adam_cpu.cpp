// CPU kernel of fastsac::adam_: one Adam step of a network's flat buffers, in place, in one pass
// (torch.optim.Adam's arithmetic, L2 weight decay included). The settings (lr, beta1, beta2,
// eps, weight_decay) come as a tensor, as the update reads them from the optimizers each call.
//
// Why: run eagerly (FastSAC's cold-start bridge, compile=False) the same step in torch ops is a
// dozen passes over each buffer; one fused pass costs a fraction of that (BENCHMARKS.md, "Cold
// start"). The compiled update runs the step in torch ops, which inductor fuses the same way.
// float32 runs the SIMD build of the loop (cpu_simd.h), float64 the portable loop below; both do
// the operations of fastsac/engine.py's `adam` in its order.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <type_traits>

#include "cpu_simd.h"

namespace fastsac {
namespace {

constexpr int64_t kElemGrain = 1 << 15;

template <typename T>
void adam_spans(const at::Tensor& param, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq,
                at::TensorList grads, const double* h, double step) {
  // h: lr, beta1, beta2, eps, weight_decay; the constants in T (float32: the SIMD loop's too)
  const AdamCoefsT<T> c{static_cast<T>(1 - h[1]), static_cast<T>(h[2]),
                        static_cast<T>(1 - h[2]),
                        static_cast<T>(std::sqrt(1 - std::pow(h[2], step))),
                        static_cast<T>(h[3]), static_cast<T>(h[0] / (1 - std::pow(h[1], step))),
                        static_cast<T>(h[4])};
  T* params = param.mutable_data_ptr<T>();
  T* ms = exp_avg.mutable_data_ptr<T>();
  T* vs = exp_avg_sq.mutable_data_ptr<T>();
  const T w1 = c.w1, b2 = c.b2, w2 = c.w2, bc2_sqrt = c.bc2_sqrt, eps = c.eps;
  const T step_size = c.step_size, wd = c.weight_decay;
  int64_t offset = 0;
  for (const at::Tensor& grad_any : grads) {  // the gradients of the buffer's views, in order
    const at::Tensor grad = grad_any.contiguous();
    const T* g = grad.const_data_ptr<T>();
    T* p = params + offset;
    T* m = ms + offset;
    T* v = vs + offset;
    at::parallel_for(0, grad.numel(), kElemGrain, [&](int64_t lo, int64_t hi) {
      if constexpr (std::is_same_v<T, float>) {
        if (const SimdKernels* simd = simd_kernels()) {
          simd->adam(p + lo, m + lo, v + lo, g + lo, hi - lo, c);
          return;
        }
      }
      for (int64_t i = lo; i < hi; ++i) {
        const T gi = g[i] + wd * p[i];
        m[i] = m[i] + w1 * (gi - m[i]);  // lerp(grad, 1 - beta1)
        v[i] = v[i] * b2 + gi * gi * w2;
        p[i] = p[i] - step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
      }
    });
    offset += grad.numel();
  }
}

void adam_cpu(const at::Tensor& param, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq,
              const at::Tensor& steps, at::TensorList grads, const at::Tensor& settings) {
  TORCH_CHECK(param.dim() == 1 && param.is_contiguous() && exp_avg.sizes() == param.sizes() &&
                  exp_avg_sq.sizes() == param.sizes() && exp_avg.is_contiguous() &&
                  exp_avg_sq.is_contiguous(),
              "adam_: param, exp_avg and exp_avg_sq must be contiguous 1-D buffers of one size");
  TORCH_CHECK(param.scalar_type() == exp_avg.scalar_type() &&
                  param.scalar_type() == exp_avg_sq.scalar_type() &&
                  (param.scalar_type() == at::kFloat || param.scalar_type() == at::kDouble),
              "adam_: float32 or float64 buffers of one dtype");
  TORCH_CHECK(steps.scalar_type() == at::kFloat && steps.numel() >= 1,
              "adam_: steps must be float32 step counts");
  TORCH_CHECK(settings.numel() == 5, "adam_: settings must hold lr, beta1, beta2, eps, "
              "weight_decay");
  int64_t total = 0;
  for (const at::Tensor& g : grads) {
    TORCH_CHECK(g.scalar_type() == param.scalar_type() && g.device().is_cpu(),
                "adam_: gradients of the buffer's dtype, on CPU");
    total += g.numel();
  }
  TORCH_CHECK(total == param.numel(), "adam_: gradients for ", total, " parameters, the buffer ",
              "has ", param.numel());
  steps.add_(1);
  const double step = steps.const_data_ptr<float>()[0];  // a buffer's parameters share one
  const at::Tensor s = settings.to(at::kDouble).contiguous();
  AT_DISPATCH_FLOATING_TYPES(param.scalar_type(), "adam_cpu", [&] {
    adam_spans<scalar_t>(param, exp_avg, exp_avg_sq, grads, s.const_data_ptr<double>(), step);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("adam_", &adam_cpu); }

}  // namespace fastsac
