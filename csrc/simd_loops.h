// The float32 loops of the SIMD kernels, written once over a vector type V (8 floats in the
// AVX2 build, 16 in the AVX-512 one). An ISA's source file defines V (load, store, the partial
// load/store of the last n < kWidth lanes, arithmetic and fs_tanh/fs_exp/fs_log/fs_sqrt),
// includes tanh_normal_math.h for the formula, then this file; both put their code in the inline
// namespace FASTSAC_ISA, so each ISA's copies keep their own symbols.
//
// The last few elements go through masked loads and stores of the same vector code, never a
// scalar loop: every element runs the same instructions wherever it sits, so a row's result does
// not depend on the batch size or on where a chunk happens to end.
#pragma once

#include <algorithm>
#include <cstdint>

#ifndef FASTSAC_ISA
#error "define FASTSAC_ISA (and the vector type) before including simd_loops.h"
#endif

namespace fastsac {
inline namespace FASTSAC_ISA {

template <typename V>
inline V load_n(const float* p, int64_t n) {
  return n == V::kWidth ? V::load(p) : V::load_partial(p, n);
}
template <typename V>
inline void store_n(const V& v, float* p, int64_t n) {
  if (n == V::kWidth) v.store(p);
  else v.store_partial(p, n);
}

// Rows [0, rows) of a [rows, dim] block: the action, and log_prob as the row sum of the terms
// (summed left to right, as the portable loop does).
template <typename V>
void forward_rows(const float* m, const float* s, const float* e, float* action, float* log_prob,
                  int64_t rows, int64_t dim, float lo, float half_range, bool tanh_mean) {
  constexpr int64_t kChunk = 512;  // elements per pass; their terms wait in `terms` (L1-sized)
  static_assert(kChunk % V::kWidth == 0, "a chunk holds whole vectors");
  alignas(64) float terms[kChunk];
  const int64_t n = rows * dim;
  int64_t row = 0, col = 0;
  float acc = 0.f;
  for (int64_t k0 = 0; k0 < n; k0 += kChunk) {
    const int64_t k1 = std::min(n, k0 + kChunk);
    for (int64_t k = k0; k < k1; k += V::kWidth) {
      const int64_t cnt = std::min<int64_t>(V::kWidth, k1 - k);
      V a;
      const V term = tanh_normal_forward_elem<V>(load_n<V>(m + k, cnt), load_n<V>(s + k, cnt),
                                                 load_n<V>(e + k, cnt), V(lo), V(half_range),
                                                 tanh_mean, &a);
      store_n(a, action + k, cnt);
      store_n(term, terms + (k - k0), cnt);
    }
    for (int64_t k = k0; k < k1; ++k) {
      acc += terms[k - k0];
      if (++col == dim) {
        log_prob[row++] = acc;
        acc = 0.f;
        col = 0;
      }
    }
  }
}

// Elements [0, rows * dim): the gradients w.r.t. mean_raw and log_std_raw.
template <typename V>
void backward_rows(const float* g_a, const float* g_lp, const float* m, const float* s,
                   const float* e, float* g_m, float* g_s, int64_t rows, int64_t dim, float lo,
                   float half_range, bool tanh_mean) {
  const int64_t n = rows * dim;
  int64_t row = 0, col = 0;  // of element k; counted, not divided (an idiv per lane is slow)
  for (int64_t k = 0; k < n; k += V::kWidth) {
    const int64_t cnt = std::min<int64_t>(V::kWidth, n - k);
    V row_grad;
    if (dim == 1) {
      row_grad = load_n<V>(g_lp + k, cnt);
    } else {  // each element's row gradient, spread over the lanes
      alignas(64) float spread[V::kWidth] = {};
      for (int64_t j = 0; j < cnt; ++j) {
        spread[j] = g_lp[row];
        if (++col == dim) {
          col = 0;
          ++row;
        }
      }
      row_grad = V::load(spread);
    }
    V gm, gs;
    tanh_normal_backward_elem<V>(load_n<V>(m + k, cnt), load_n<V>(s + k, cnt),
                                 load_n<V>(e + k, cnt), V(lo), V(half_range), tanh_mean,
                                 load_n<V>(g_a + k, cnt), row_grad, &gm, &gs);
    store_n(gm, g_m + k, cnt);
    store_n(gs, g_s + k, cnt);
  }
}

// Polyak over one contiguous span: t <- tau * s + keep * t (two products, then the sum, as the
// notebook rounds it; the build's -ffp-contract=off keeps this from becoming an FMA).
template <typename V>
void polyak_span(float* t, const float* s, int64_t n, float tau, float keep) {
  const V vtau(tau), vkeep(keep);
  for (int64_t k = 0; k < n; k += V::kWidth) {
    const int64_t cnt = std::min<int64_t>(V::kWidth, n - k);
    store_n(vtau * load_n<V>(s + k, cnt) + vkeep * load_n<V>(t + k, cnt), t + k, cnt);
  }
}

// One Adam step over a span (AdamCoefs): adam_cpu.cpp's portable loop, operation for operation
// and in its order, on vectors.
template <typename V>
void adam_span(float* p, float* m, float* v, const float* g, int64_t n, const AdamCoefs& c) {
  const V w1(c.w1), b2(c.b2), w2(c.w2), bc2_sqrt(c.bc2_sqrt), eps(c.eps), step(c.step_size);
  const V wd(c.weight_decay);
  for (int64_t k = 0; k < n; k += V::kWidth) {
    const int64_t cnt = std::min<int64_t>(V::kWidth, n - k);
    const V pk = load_n<V>(p + k, cnt);
    const V gk = load_n<V>(g + k, cnt) + wd * pk;
    const V mk = load_n<V>(m + k, cnt);
    const V m_new = mk + w1 * (gk - mk);
    const V v_new = load_n<V>(v + k, cnt) * b2 + gk * gk * w2;
    store_n(pk - step * (m_new / (fs_sqrt(v_new) / bc2_sqrt + eps)), p + k, cnt);
    store_n(m_new, m + k, cnt);
    store_n(v_new, v + k, cnt);
  }
}

}  // namespace FASTSAC_ISA
}  // namespace fastsac

// The entry points declared in cpu_simd.h, for the including ISA's namespace.
#define FASTSAC_DEFINE_SIMD_ENTRY_POINTS(V)                                                    \
  void forward_f32(const float* m, const float* s, const float* e, float* action,              \
                   float* log_prob, int64_t rows, int64_t dim, float lo, float half_range,      \
                   bool tanh_mean) {                                                            \
    forward_rows<V>(m, s, e, action, log_prob, rows, dim, lo, half_range, tanh_mean);           \
  }                                                                                             \
  void backward_f32(const float* g_a, const float* g_lp, const float* m, const float* s,       \
                    const float* e, float* g_m, float* g_s, int64_t rows, int64_t dim, float lo, \
                    float half_range, bool tanh_mean) {                                         \
    backward_rows<V>(g_a, g_lp, m, s, e, g_m, g_s, rows, dim, lo, half_range, tanh_mean);       \
  }                                                                                             \
  void polyak_f32(float* t, const float* s, int64_t n, float tau, float keep) {                \
    polyak_span<V>(t, s, n, tau, keep);                                                         \
  }                                                                                             \
  void adam_f32(float* p, float* m, float* v, const float* g, int64_t n, const AdamCoefs& c) { \
    adam_span<V>(p, m, v, g, n, c);                                                             \
  }
