// Elementwise math of the fused tanh-Normal head, shared by the CPU kernels (C++) and the
// CUDA kernels (csrc/cuda/*.cu) so both compute the same formula. No torch headers here.
//
// Two heads share it (docs/design.md, "The actor heads"): the notebook's (SAC v1), whose mean is
// squashed (tanh_mean), and SB3's/CleanRL's (SAC v2), whose mean is the raw output.
// Per element, with m = mean_raw, s = log_std_raw, e = eps, lo/hi the log_std range:
//   mean    = tanh(m), or m without tanh_mean
//   t       = tanh(s)
//   log_std = lo + 0.5 * (hi - lo) * (t + 1)
//   std     = exp(log_std)
//   z       = mean + std * e
//   a       = tanh(z)                                   -> action
//   term    = log N(z; mean, std) - log(1 - a^2 + 1e-7)  -> summed over the last dim: log_prob
// log N(z; mean, std) = -(z - mean)^2 / (2 std^2) - log(std) - log(sqrt(2 pi)). Since
// z - mean = std * e exactly in real arithmetic, we evaluate it as -e^2/2 - log_std - log(sqrt(2 pi)):
// the same value, but without the cancellation in (z - mean) that ruins the composite in float32
// when std is tiny (std = exp(-20) next to mean ~ 1 leaves no significant bits in z - mean).
//
// Backward, given g_a = dL/da and g_lp = dL/dlog_prob (the row's value, broadcast):
//   dL/da   (total) = g_a + g_lp * 2a / (1 - a^2 + 1e-7)        [from -log(1 - a^2 + 1e-7)]
//   dL/dz           = dL/da * (1 - a^2)                         [a = tanh(z)]
//   dL/dmean_raw    = dL/dz * (1 - mean^2), or dL/dz without tanh_mean  [z = mean + std e]
//   dL/dlog_std     = dL/dz * e * std - g_lp                    [dz/dlog_std = e std; -log_std term]
//   dL/dlog_std_raw = dL/dlog_std * 0.5 (hi - lo) * (1 - t^2)   [t = tanh(s)]
// The Normal term's -e^2/2 does not depend on mean_raw or log_std_raw (e is a fixed input), which is
// the reparameterisation: autograd through the composite formula finds the same zero, with rounding.
#pragma once

#ifdef __CUDACC__
#define FASTSAC_HD __host__ __device__ __forceinline__
#else
#include <cmath>
#define FASTSAC_HD inline
#endif

// A translation unit compiled for another instruction set (tanh_normal_cpu_avx2.cpp) sets
// FASTSAC_ISA before including this header, so its copies of these inline functions get their
// own symbols and never stand in for the portable ones.
#ifndef FASTSAC_ISA
#define FASTSAC_ISA portable
#endif

namespace fastsac {
inline namespace FASTSAC_ISA {

constexpr double kLogSqrt2Pi = 0.91893853320467274178032973640562;  // log(sqrt(2 pi))
constexpr double kSquashEps = 1e-7;  // the notebook's guard in log(1 - a^2 + 1e-7)

FASTSAC_HD float fs_tanh(float x) { return tanhf(x); }
FASTSAC_HD double fs_tanh(double x) { return tanh(x); }
FASTSAC_HD float fs_exp(float x) { return expf(x); }
FASTSAC_HD double fs_exp(double x) { return exp(x); }
FASTSAC_HD float fs_log(float x) { return logf(x); }
FASTSAC_HD double fs_log(double x) { return log(x); }

// Forward of one element: writes the action, returns this element's log-prob term.
template <typename T>
FASTSAC_HD T tanh_normal_forward_elem(T m, T s, T e, T lo, T half_range, bool tanh_mean,
                                      T* action) {
  const T mean = tanh_mean ? fs_tanh(m) : m;
  const T log_std = lo + half_range * (fs_tanh(s) + T(1));
  const T a = fs_tanh(mean + fs_exp(log_std) * e);
  *action = a;
  return T(-0.5) * e * e - log_std - T(kLogSqrt2Pi) - fs_log(T(1) - a * a + T(kSquashEps));
}

// Backward of one element (recomputes the forward intermediates from the inputs: cheaper than
// saving four extra tensors, and bit-identical to what the forward computed).
template <typename T>
FASTSAC_HD void tanh_normal_backward_elem(T m, T s, T e, T lo, T half_range, bool tanh_mean,
                                          T g_a, T g_lp, T* g_m, T* g_s) {
  const T mean = tanh_mean ? fs_tanh(m) : m;
  const T t = fs_tanh(s);
  const T log_std = lo + half_range * (t + T(1));
  const T std_ = fs_exp(log_std);
  const T a = fs_tanh(mean + std_ * e);
  const T one_minus_a2 = T(1) - a * a;
  const T g_z = (g_a + g_lp * T(2) * a / (one_minus_a2 + T(kSquashEps))) * one_minus_a2;
  *g_m = tanh_mean ? g_z * (T(1) - mean * mean) : g_z;
  *g_s = (g_z * e * std_ - g_lp) * half_range * (T(1) - t * t);
}

}  // namespace FASTSAC_ISA
}  // namespace fastsac
