// CPU kernels of fastsac::tanh_normal and its fused backward: one pass over the data each way.
// float32 runs the SIMD builds of the kernels (AVX-512 or AVX2, see cpu_simd.h) where the CPU has
// them; float64 and other CPUs run the portable loops below. All instantiate the same formula
// (tanh_normal_math.h).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <type_traits>

#include "checks.h"
#include "cpu_simd.h"
#include "tanh_normal_math.h"

namespace fastsac {

namespace {

// Threads split the rows once a call has more than ~4k elements: below that a hand-off costs
// more than it saves (SAC's batches of 128-256 rows stay on one thread).
constexpr int64_t kElemGrain = 4096;
inline int64_t row_grain(int64_t dim) { return dim >= kElemGrain ? 1 : kElemGrain / dim; }

template <typename T>
void forward_rows(const T* m, const T* s, const T* e, T* action, T* log_prob, int64_t rows,
                  int64_t dim, T lo, T half_range, bool tanh_mean) {
  if constexpr (std::is_same_v<T, float>) {
    if (const SimdKernels* simd = simd_kernels()) {
      at::parallel_for(0, rows, row_grain(dim), [&](int64_t begin, int64_t end) {
        const int64_t off = begin * dim;
        simd->forward(m + off, s + off, e + off, action + off, log_prob + begin, end - begin,
                      dim, lo, half_range, tanh_mean);
      });
      return;
    }
  }
  at::parallel_for(0, rows, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t base = r * dim;
      T acc = T(0);
      for (int64_t j = 0; j < dim; ++j) {
        const int64_t i = base + j;
        acc += tanh_normal_forward_elem<T>(m[i], s[i], e[i], lo, half_range, tanh_mean,
                                           &action[i]);
      }
      log_prob[r] = acc;
    }
  });
}

template <typename T>
void backward_elems(const T* g_a, const T* g_lp, const T* m, const T* s, const T* e, T* g_m,
                    T* g_s, int64_t rows, int64_t dim, T lo, T half_range, bool tanh_mean) {
  if constexpr (std::is_same_v<T, float>) {
    if (const SimdKernels* simd = simd_kernels()) {
      at::parallel_for(0, rows, row_grain(dim), [&](int64_t begin, int64_t end) {
        const int64_t off = begin * dim;
        simd->backward(g_a + off, g_lp + begin, m + off, s + off, e + off, g_m + off,
                       g_s + off, end - begin, dim, lo, half_range, tanh_mean);
      });
      return;
    }
  }
  at::parallel_for(0, rows, row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T g_row = g_lp[r];
      for (int64_t j = 0; j < dim; ++j) {
        const int64_t i = r * dim + j;
        tanh_normal_backward_elem<T>(m[i], s[i], e[i], lo, half_range, tanh_mean, g_a[i], g_row,
                                     &g_m[i], &g_s[i]);
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> tanh_normal_cpu(const at::Tensor& mean_raw,
                                                   const at::Tensor& log_std_raw,
                                                   const at::Tensor& eps, double log_std_min,
                                                   double log_std_max, bool tanh_mean) {
  auto c = prepare_tanh_normal(mean_raw, log_std_raw, eps);
  if (c.rows == 0) return {c.action, c.log_prob};
  AT_DISPATCH_FLOATING_TYPES(c.m.scalar_type(), "tanh_normal_cpu", [&] {
    forward_rows<scalar_t>(c.m.const_data_ptr<scalar_t>(), c.s.const_data_ptr<scalar_t>(),
                           c.e.const_data_ptr<scalar_t>(), c.action.mutable_data_ptr<scalar_t>(),
                           c.log_prob.mutable_data_ptr<scalar_t>(), c.rows, c.dim,
                           static_cast<scalar_t>(log_std_min),
                           static_cast<scalar_t>(0.5 * (log_std_max - log_std_min)), tanh_mean);
  });
  return {c.action, c.log_prob};
}

std::tuple<at::Tensor, at::Tensor> tanh_normal_backward_cpu(
    const at::Tensor& grad_action, const at::Tensor& grad_log_prob, const at::Tensor& mean_raw,
    const at::Tensor& log_std_raw, const at::Tensor& eps, double log_std_min, double log_std_max,
    bool tanh_mean) {
  auto c = prepare_tanh_normal_backward(grad_action, grad_log_prob, mean_raw, log_std_raw, eps);
  if (c.rows == 0) return {c.g_m, c.g_s};
  AT_DISPATCH_FLOATING_TYPES(c.m.scalar_type(), "tanh_normal_backward_cpu", [&] {
    backward_elems<scalar_t>(c.g_a.const_data_ptr<scalar_t>(), c.g_lp.const_data_ptr<scalar_t>(),
                             c.m.const_data_ptr<scalar_t>(), c.s.const_data_ptr<scalar_t>(),
                             c.e.const_data_ptr<scalar_t>(), c.g_m.mutable_data_ptr<scalar_t>(),
                             c.g_s.mutable_data_ptr<scalar_t>(), c.rows, c.dim,
                             static_cast<scalar_t>(log_std_min),
                             static_cast<scalar_t>(0.5 * (log_std_max - log_std_min)),
                             tanh_mean);
  });
  return {c.g_m, c.g_s};
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) {
  m.impl("tanh_normal", &tanh_normal_cpu);
  m.impl("tanh_normal_backward", &tanh_normal_backward_cpu);
}

}  // namespace fastsac
