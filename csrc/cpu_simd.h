// Which SIMD kernels the CPU ops run, and the kernels of each instruction set.
//
// The float32 CPU kernels of tanh_normal, polyak_ and adam_ come in three builds of the same code: portable (scalar C++), AVX2 + FMA (8 floats) and AVX-512 (16 floats). The best
// one the CPU has is picked once; FASTSAC_CPU_SIMD=portable|avx2|avx512 at start-up, or the op
// fastsac::_cpu_simd at run time (fastsac.ops.cpu_simd), picks another, so tests can hold
// every build to the same formula. float64 always runs the portable loops.
#pragma once
#include <cstdint>
#include <string>

namespace fastsac {

enum class Simd : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

Simd active_simd();
// "" leaves the choice as it is; "portable", "avx2" or "avx512" switches (an error if this CPU
// or build lacks it). Returns the name of the active build.
std::string cpu_simd(const std::string& request);

// One Adam step's constants (fastsac::adam_, adam_cpu.cpp): g <- g + weight_decay p;
// m <- m + w1 (g - m); v <- v b2 + g g w2; p <- p - step_size (m / (sqrt(v) / bc2_sqrt + eps)).
template <typename T>
struct AdamCoefsT {
  T w1, b2, w2, bc2_sqrt, eps, step_size, weight_decay;
};
using AdamCoefs = AdamCoefsT<float>;

// The float32 kernels of one SIMD build (the functions declared below, per instruction set).
struct SimdKernels {
  void (*forward)(const float* m, const float* s, const float* e, float* action, float* log_prob,
                  int64_t rows, int64_t dim, float lo, float half_range, bool tanh_mean);
  void (*backward)(const float* g_a, const float* g_lp, const float* m, const float* s,
                   const float* e, float* g_m, float* g_s, int64_t rows, int64_t dim, float lo,
                   float half_range, bool tanh_mean);
  void (*polyak)(float* t, const float* s, int64_t n, float tau, float keep);
  void (*adam)(float* p, float* m, float* v, const float* g, int64_t n, const AdamCoefs& c);
};
// The kernels of the active build; nullptr when it is the portable one (the callers' own loops).
const SimdKernels* simd_kernels();

// The kernels of one instruction set (tanh_normal_cpu_avx2.cpp, tanh_normal_cpu_avx512.cpp),
// over contiguous float32 rows of `dim` elements.
#define FASTSAC_DECLARE_SIMD_KERNELS(isa)                                                      \
  namespace isa {                                                                               \
  bool available();                                                                             \
  void forward_f32(const float* m, const float* s, const float* e, float* action,              \
                   float* log_prob, int64_t rows, int64_t dim, float lo, float half_range,      \
                   bool tanh_mean);                                                             \
  void backward_f32(const float* g_a, const float* g_lp, const float* m, const float* s,       \
                    const float* e, float* g_m, float* g_s, int64_t rows, int64_t dim, float lo, \
                    float half_range, bool tanh_mean);                                          \
  void polyak_f32(float* t, const float* s, int64_t n, float tau, float keep);                 \
  void adam_f32(float* p, float* m, float* v, const float* g, int64_t n, const AdamCoefs& c);  \
  }
FASTSAC_DECLARE_SIMD_KERNELS(avx2)
FASTSAC_DECLARE_SIMD_KERNELS(avx512)
#undef FASTSAC_DECLARE_SIMD_KERNELS

// What an ISA's file defines where its instruction set cannot be built (not x86-64 GCC): the
// entry points exist, and available() is false, so nothing calls them.
#define FASTSAC_SIMD_UNAVAILABLE(isa)                                                          \
  namespace fastsac {                                                                           \
  namespace isa {                                                                               \
  bool available() { return false; }                                                            \
  void forward_f32(const float*, const float*, const float*, float*, float*, int64_t, int64_t, \
                   float, float, bool) {}                                                       \
  void backward_f32(const float*, const float*, const float*, const float*, const float*,      \
                    float*, float*, int64_t, int64_t, float, float, bool) {}                    \
  void polyak_f32(float*, const float*, int64_t, float, float) {}                              \
  void adam_f32(float*, float*, float*, const float*, int64_t, const AdamCoefs&) {}             \
  }                                                                                             \
  }

// The AVX-512 matrix product of fastsac::mm (gemm_cpu_avx512.cpp): C[m,n] = A[m,k] * B[k,n], B and
// C contiguous row-major, A(i,j) at a[i * sam + j * sak]. The work is a grid of output tiles;
// gemm_f32_tiles computes tiles [tile_begin, tile_end) of gemm_tiles(m, n).
namespace avx512 {
int64_t gemm_tiles(int64_t m, int64_t n);
void gemm_f32_tiles(const float* a, int64_t sam, int64_t sak, const float* b, float* c,
                    int64_t m, int64_t n, int64_t k, int64_t tile_begin, int64_t tile_end);
}  // namespace avx512

}  // namespace fastsac
