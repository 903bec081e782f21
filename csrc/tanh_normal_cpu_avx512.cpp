// AVX-512 float32 kernels of fastsac::tanh_normal, polyak_ and adam_ (cpu_simd.h):
// the AVX2 file's code on 16-float vectors, with Sleef's 1-ulp AVX-512 tanh/exp/log (the ones
// torch's own CPU kernels run on such machines). Why: at SAC's batch of 128 x 6 the op is bound
// by these transcendentals, and a CPU with full-width AVX-512 units does twice the lanes per
// instruction (BENCHMARKS.md has the forward + backward timings).
#include <cmath>
#include <cstdint>

#include "cpu_simd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f")

extern "C" {
__m512 Sleef_tanhf16_u10avx512f(__m512);
__m512 Sleef_expf16_u10avx512f(__m512);
__m512 Sleef_logf16_u10avx512f(__m512);
}

namespace fastsac {
namespace simd16 {

// 16 floats in a register, with the operations the formula templates and loops use.
struct F16 {
  static constexpr int64_t kWidth = 16;
  __m512 v;
  F16() = default;
  F16(__m512 x) : v(x) {}                                           // NOLINT
  F16(double x) : v(_mm512_set1_ps(static_cast<float>(x))) {}      // NOLINT: broadcast T(c)
  static F16 load(const float* p) { return _mm512_loadu_ps(p); }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  // The first n < 16 lanes; the others read as zero and are never written.
  static __mmask16 mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static F16 load_partial(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  void store_partial(float* p, int64_t n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
};
inline F16 operator+(F16 a, F16 b) { return _mm512_add_ps(a.v, b.v); }
inline F16 operator-(F16 a, F16 b) { return _mm512_sub_ps(a.v, b.v); }
inline F16 operator*(F16 a, F16 b) { return _mm512_mul_ps(a.v, b.v); }
inline F16 operator/(F16 a, F16 b) { return _mm512_div_ps(a.v, b.v); }
inline F16 fs_tanh(F16 x) { return Sleef_tanhf16_u10avx512f(x.v); }
// (the zero-masked form with every lane on: the same square roots, without GCC 12's false
// "may be used uninitialized" warning on _mm512_sqrt_ps's undefined pass-through)
inline F16 fs_exp(F16 x) { return Sleef_expf16_u10avx512f(x.v); }
inline F16 fs_log(F16 x) { return Sleef_logf16_u10avx512f(x.v); }
inline F16 fs_sqrt(F16 x) {
  return _mm512_maskz_sqrt_ps(static_cast<__mmask16>(0xFFFF), x.v);
}

}  // namespace simd16
}  // namespace fastsac

#define FASTSAC_ISA isa_avx512
#include "tanh_normal_math.h"
#include "simd_loops.h"

namespace fastsac {
namespace avx512 {
FASTSAC_DEFINE_SIMD_ENTRY_POINTS(simd16::F16)
}  // namespace avx512
}  // namespace fastsac
#pragma GCC pop_options

namespace fastsac {
namespace avx512 {
bool available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}
}  // namespace avx512
}  // namespace fastsac
#else
FASTSAC_SIMD_UNAVAILABLE(avx512)
#endif  // x86-64 GCC
