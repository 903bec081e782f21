// A float32 matrix product for AVX-512 CPUs: C[M,N] = A[M,K] * B[K,N], B and C row-major, A of
// any strides (so the transposed activations of a weight gradient need no copy).
//
// Why: SAC's update is a couple of dozen 128 x 128 x 128 products. MKL, which torch calls, runs
// its AVX2 path on AMD CPUs and pays a fixed cost per call that matters at this size. This
// register-tiled kernel runs the full-width AVX-512 units without that overhead and is faster
// on one thread and on two (BENCHMARKS.md has the timings; fastsac::mm, csrc/gemm_cpu.cpp,
// decides when to use it).
//
// Each 8 x 32 tile of C is accumulated in 16 zmm registers over the whole K, then stored once:
// a tile's sums do not depend on how tiles are split between threads, so results are the same
// bits on any thread count.
#include <algorithm>
#include <cstdint>

#include "cpu_simd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f")

namespace fastsac {
namespace avx512 {
namespace {

constexpr int64_t kTileRows = 8;
constexpr int64_t kTileCols = 32;  // two zmm vectors

// One tile of up to kTileRows x kTileCols (rows <= 8; cols <= 32 via the masks).
template <int kRows>
inline void gemm_tile(const float* a, int64_t sam, int64_t sak, const float* b, int64_t ldb,
                      float* c, int64_t ldc, int64_t k_len, __mmask16 mask0, __mmask16 mask1) {
  __m512 acc0[kRows], acc1[kRows];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < k_len; ++k) {
    const __m512 b0 = _mm512_maskz_loadu_ps(mask0, b + k * ldb);
    const __m512 b1 = _mm512_maskz_loadu_ps(mask1, b + k * ldb + 16);
    const float* ak = a + k * sak;
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512 x = _mm512_set1_ps(ak[r * sam]);
      acc0[r] = _mm512_fmadd_ps(x, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(x, b1, acc1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, mask0, acc0[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, mask1, acc1[r]);
  }
}

using TileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t,
                        int64_t, __mmask16, __mmask16);
constexpr TileFn kTiles[kTileRows + 1] = {nullptr,          gemm_tile<1>, gemm_tile<2>,
                                          gemm_tile<3>,     gemm_tile<4>, gemm_tile<5>,
                                          gemm_tile<6>,     gemm_tile<7>, gemm_tile<8>};

inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                 : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u);
}

}  // namespace

int64_t gemm_tiles(int64_t m, int64_t n) {
  return ((m + kTileRows - 1) / kTileRows) * ((n + kTileCols - 1) / kTileCols);
}

void gemm_f32_tiles(const float* a, int64_t sam, int64_t sak, const float* b, float* c,
                    int64_t m, int64_t n, int64_t k, int64_t tile_begin, int64_t tile_end) {
  const int64_t col_tiles = (n + kTileCols - 1) / kTileCols;
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t r0 = (t / col_tiles) * kTileRows, c0 = (t % col_tiles) * kTileCols;
    const int64_t rows = std::min(kTileRows, m - r0), cols = std::min(kTileCols, n - c0);
    kTiles[rows](a + r0 * sam, sam, sak, b + c0, n, c + r0 * n + c0, n, k, lanes(cols),
                 lanes(cols - 16));
  }
}

}  // namespace avx512
}  // namespace fastsac
#pragma GCC pop_options
#else
namespace fastsac {
namespace avx512 {
int64_t gemm_tiles(int64_t, int64_t) { return 0; }
void gemm_f32_tiles(const float*, int64_t, int64_t, const float*, float*, int64_t, int64_t,
                    int64_t, int64_t, int64_t) {}
}  // namespace avx512
}  // namespace fastsac
#endif  // x86-64 GCC
