// AVX2 + FMA float32 kernels of fastsac::tanh_normal, polyak_ and adam_ (cpu_simd.h).
//
// Why: the portable kernels call glibc's scalar tanhf/expf/logf (about 11 calls per element
// forward + backward), which made the fused op slower than torch's own vectorised eager ops
// beyond a few hundred rows. Here the very same formula (the templates of tanh_normal_math.h)
// runs on 8-float vectors whose tanh/exp/log are Sleef's (1-ulp, exported by libtorch_cpu: the
// functions torch's own CPU kernels use). One formula, several instruction sets.
//
// Only this file is compiled for AVX2 (a pragma, not a build flag), and its inline functions
// live in their own namespace (FASTSAC_ISA), so nothing built here can leak into the portable
// code path of a CPU without AVX2.
#include <cmath>
#include <cstdint>

#include "cpu_simd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
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

namespace fastsac {
namespace simd8 {

// 8 floats in a register, with the operations the formula templates and loops use.
struct F8 {
  static constexpr int64_t kWidth = 8;
  __m256 v;
  F8() = default;
  F8(__m256 x) : v(x) {}                                            // NOLINT
  F8(double x) : v(_mm256_set1_ps(static_cast<float>(x))) {}       // NOLINT: broadcast T(c)
  static F8 load(const float* p) { return _mm256_loadu_ps(p); }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  // The first n < 8 lanes; the others read as zero and are never written.
  static __m256i mask(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static F8 load_partial(const float* p, int64_t n) { return _mm256_maskload_ps(p, mask(n)); }
  void store_partial(float* p, int64_t n) const { _mm256_maskstore_ps(p, mask(n), v); }
};
inline F8 operator+(F8 a, F8 b) { return _mm256_add_ps(a.v, b.v); }
inline F8 operator-(F8 a, F8 b) { return _mm256_sub_ps(a.v, b.v); }
inline F8 operator*(F8 a, F8 b) { return _mm256_mul_ps(a.v, b.v); }
inline F8 operator/(F8 a, F8 b) { return _mm256_div_ps(a.v, b.v); }
inline F8 fs_tanh(F8 x) { return Sleef_tanhf8_u10avx2(x.v); }
inline F8 fs_exp(F8 x) { return Sleef_expf8_u10avx2(x.v); }
inline F8 fs_log(F8 x) { return Sleef_logf8_u10avx2(x.v); }
inline F8 fs_sqrt(F8 x) { return _mm256_sqrt_ps(x.v); }

}  // namespace simd8
}  // namespace fastsac

#define FASTSAC_ISA isa_avx2
#include "tanh_normal_math.h"
#include "simd_loops.h"

namespace fastsac {
namespace avx2 {
FASTSAC_DEFINE_SIMD_ENTRY_POINTS(simd8::F8)
}  // namespace avx2
}  // namespace fastsac
#pragma GCC pop_options

namespace fastsac {
namespace avx2 {
bool available() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
}  // namespace avx2
}  // namespace fastsac
#else
FASTSAC_SIMD_UNAVAILABLE(avx2)
#endif  // x86-64 GCC
