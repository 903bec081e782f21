// The choice of SIMD build for the float32 CPU kernels (see cpu_simd.h).
#include "cpu_simd.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>

namespace fastsac {
namespace {

bool available(Simd simd) {
  switch (simd) {
    case Simd::kAvx512: return avx512::available();
    case Simd::kAvx2: return avx2::available();
    default: return true;
  }
}

const char* name_of(Simd simd) {
  switch (simd) {
    case Simd::kAvx512: return "avx512";
    case Simd::kAvx2: return "avx2";
    default: return "portable";
  }
}

Simd parse(const std::string& name) {
  if (name == "avx512") return Simd::kAvx512;
  if (name == "avx2") return Simd::kAvx2;
  TORCH_CHECK(name == "portable", "fastsac: unknown CPU SIMD build '", name,
              "' (portable, avx2 or avx512)");
  return Simd::kPortable;
}

Simd best_available() {
  if (avx512::available()) return Simd::kAvx512;
  if (avx2::available()) return Simd::kAvx2;
  return Simd::kPortable;
}

Simd checked(Simd simd) {
  TORCH_CHECK(available(simd), "fastsac: this CPU (or build) has no ", name_of(simd),
              " kernels");
  return simd;
}

std::atomic<int>& active() {
  static std::atomic<int> simd{[] {
    const char* env = std::getenv("FASTSAC_CPU_SIMD");
    return static_cast<int>(env != nullptr && *env != '\0' ? checked(parse(env))
                                                           : best_available());
  }()};
  return simd;
}

}  // namespace

Simd active_simd() { return static_cast<Simd>(active().load(std::memory_order_relaxed)); }

const SimdKernels* simd_kernels() {
  static const SimdKernels avx2_kernels{avx2::forward_f32, avx2::backward_f32,
                                        avx2::polyak_f32, avx2::adam_f32};
  static const SimdKernels avx512_kernels{avx512::forward_f32, avx512::backward_f32,
                                          avx512::polyak_f32, avx512::adam_f32};
  switch (active_simd()) {
    case Simd::kAvx512: return &avx512_kernels;
    case Simd::kAvx2: return &avx2_kernels;
    default: return nullptr;
  }
}

std::string cpu_simd(const std::string& request) {
  if (!request.empty()) active().store(static_cast<int>(checked(parse(request))));
  return name_of(active_simd());
}

}  // namespace fastsac
