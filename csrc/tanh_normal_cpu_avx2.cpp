// AVX2 + FMA float32 kernels of fastsac::tanh_normal (and the Polyak loop), picked at run time
// on CPUs that have both.
//
// Why: the portable kernels call glibc's scalar tanhf/expf/logf (about 11 calls per element
// forward + backward), which made the fused op slower than torch's own vectorised eager ops
// beyond a few hundred rows. Here the very same formula (the templates of tanh_normal_math.h)
// is instantiated on 8-float vectors whose tanh/exp/log are Sleef's (1-ulp, exported by
// libtorch_cpu: the functions torch's own CPU kernels use). One formula, two instruction sets.
//
// Only this file is compiled for AVX2 (a pragma, not a build flag), and its inline functions
// live in their own namespace (FASTSAC_ISA), so nothing built here can leak into the portable
// code path of a CPU without AVX2.
#include <cmath>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FASTSAC_HAVE_AVX2_KERNELS 1
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

// Sleef's 1-ulp AVX2 functions, exported by libtorch_cpu (sleef.h declares them only when the
// whole build targets AVX, so they are declared here).
extern "C" {
__m256 Sleef_tanhf8_u10avx2(__m256);
__m256 Sleef_expf8_u10avx2(__m256);
__m256 Sleef_logf8_u10avx2(__m256);
}

#define FASTSAC_ISA isa_avx2
namespace fastsac {
namespace simd8 {

// 8 floats in a register, with the operations the formula templates use.
struct F8 {
  __m256 v;
  F8() = default;
  F8(__m256 x) : v(x) {}                                            // NOLINT
  F8(double x) : v(_mm256_set1_ps(static_cast<float>(x))) {}       // NOLINT: broadcast T(c)
  static F8 load(const float* p) { return _mm256_loadu_ps(p); }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
};
inline F8 operator+(F8 a, F8 b) { return _mm256_add_ps(a.v, b.v); }
inline F8 operator-(F8 a, F8 b) { return _mm256_sub_ps(a.v, b.v); }
inline F8 operator*(F8 a, F8 b) { return _mm256_mul_ps(a.v, b.v); }
inline F8 operator/(F8 a, F8 b) { return _mm256_div_ps(a.v, b.v); }
inline F8 fs_tanh(F8 x) { return Sleef_tanhf8_u10avx2(x.v); }
inline F8 fs_exp(F8 x) { return Sleef_expf8_u10avx2(x.v); }
inline F8 fs_log(F8 x) { return Sleef_logf8_u10avx2(x.v); }

}  // namespace simd8
}  // namespace fastsac

#include "tanh_normal_math.h"

namespace fastsac {
namespace avx2 {

using simd8::F8;
constexpr int64_t kW = 8;

// Rows [0, rows) of a [rows, dim] block: action, and log_prob as the row sum of the terms.
void forward_f32(const float* m, const float* s, const float* e, float* action, float* log_prob,
                 int64_t rows, int64_t dim, float lo, float half_range) {
  constexpr int64_t kChunk = 512;  // elements per pass; their terms wait in `terms`
  float terms[kChunk + kW];
  const int64_t rows_per_chunk = dim >= kChunk ? 1 : kChunk / dim;
  for (int64_t r0 = 0; r0 < rows; r0 += rows_per_chunk) {
    const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    const int64_t begin = r0 * dim, n = (r1 - r0) * dim;
    float* out = dim == 1 ? log_prob + r0 : terms;  // one dim: the term is the log-prob
    int64_t k = 0;
    for (; k + kW <= n; k += kW) {
      F8 a;
      const int64_t i = begin + k;
      const F8 term = tanh_normal_forward_elem<F8>(F8::load(m + i), F8::load(s + i),
                                                   F8::load(e + i), F8(lo), F8(half_range), &a);
      a.store(action + i);
      term.store(out + k);
    }
    for (; k < n; ++k) {
      const int64_t i = begin + k;
      out[k] = tanh_normal_forward_elem<float>(m[i], s[i], e[i], lo, half_range, &action[i]);
    }
    if (dim > 1) {
      for (int64_t r = r0; r < r1; ++r) {
        float acc = 0.f;
        for (int64_t j = 0; j < dim; ++j) acc += terms[(r - r0) * dim + j];
        log_prob[r] = acc;
      }
    }
  }
}

// Elements [0, rows * dim): gradients w.r.t. mean_raw and log_std_raw.
void backward_f32(const float* g_a, const float* g_lp, const float* m, const float* s,
                  const float* e, float* g_m, float* g_s, int64_t rows, int64_t dim, float lo,
                  float half_range) {
  const int64_t n = rows * dim;
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    F8 row_grad;
    if (dim == 1) {
      row_grad = F8::load(g_lp + i);
    } else {
      alignas(32) float spread[kW];
      for (int64_t k = 0; k < kW; ++k) spread[k] = g_lp[(i + k) / dim];
      row_grad = F8::load(spread);
    }
    F8 gm, gs;
    tanh_normal_backward_elem<F8>(F8::load(m + i), F8::load(s + i), F8::load(e + i), F8(lo),
                                  F8(half_range), F8::load(g_a + i), row_grad, &gm, &gs);
    gm.store(g_m + i);
    gs.store(g_s + i);
  }
  for (; i < n; ++i) {
    tanh_normal_backward_elem<float>(m[i], s[i], e[i], lo, half_range, g_a[i], g_lp[i / dim],
                                     &g_m[i], &g_s[i]);
  }
}

// Polyak over one contiguous span: t <- tau * s + keep * t (two products, then the sum, as the
// notebook rounds it; the build's -ffp-contract=off keeps this from becoming an FMA).
void polyak_f32(float* t, const float* s, int64_t n, float tau, float keep) {
  const __m256 vtau = _mm256_set1_ps(tau), vkeep = _mm256_set1_ps(keep);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) {
    const __m256 out = _mm256_add_ps(_mm256_mul_ps(vtau, _mm256_loadu_ps(s + i)),
                                     _mm256_mul_ps(vkeep, _mm256_loadu_ps(t + i)));
    _mm256_storeu_ps(t + i, out);
  }
  for (; i < n; ++i) t[i] = tau * s[i] + keep * t[i];
}

}  // namespace avx2
}  // namespace fastsac
#pragma GCC pop_options
#endif  // x86-64 GCC

namespace fastsac {
namespace avx2 {

bool available() {
#ifdef FASTSAC_HAVE_AVX2_KERNELS
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
#else
  return false;
#endif
}

#ifndef FASTSAC_HAVE_AVX2_KERNELS
void forward_f32(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                 float, float) {}
void backward_f32(const float*, const float*, const float*, const float*, const float*, float*,
                  float*, int64_t, int64_t, float, float) {}
void polyak_f32(float*, const float*, int64_t, float, float) {}
#endif

}  // namespace avx2
}  // namespace fastsac
