// CPU kernel of fastsac::polyak_: target <- tau * source + (1 - tau) * target for every pair, in
// one call. The product order matches the notebook's `tau * l + (1.0 - tau) * t`, so the fused op
// and the per-parameter loop round the same way (the build disables FMA contraction).
//
// The whole list is one range of elements split across threads (not one parallel region per
// tensor): a network's tensors are small, and a list of many mid-sized tensors would otherwise
// run each on one thread. float32 runs the SIMD build of the loop (cpu_simd.h) where the CPU has one.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "checks.h"
#include "cpu_simd.h"

namespace fastsac {

namespace {

constexpr int64_t kElemGrain = 1 << 15;

struct Span {
  at::Tensor target;  // contiguous (the original, or a staged copy of a non-contiguous one)
  at::Tensor source;  // contiguous
  int64_t start;      // offset of this span in the flattened list
};

template <typename T>
void polyak_range(const Span& span, int64_t lo, int64_t hi, double tau) {
  T* t = span.target.mutable_data_ptr<T>() + lo;
  const T* s = span.source.const_data_ptr<T>() + lo;
  const T vtau = static_cast<T>(tau), keep = static_cast<T>(1.0 - tau);
  if constexpr (std::is_same_v<T, float>) {
    if (const SimdKernels* simd = simd_kernels()) {
      simd->polyak(t, s, hi - lo, vtau, keep);
      return;
    }
  }
  for (int64_t i = 0; i < hi - lo; ++i) t[i] = vtau * s[i] + keep * t[i];
}

void polyak_cpu(at::TensorList target, at::TensorList source, double tau) {
  check_polyak_inputs(target, source);
  std::vector<Span> spans;
  spans.reserve(target.size());
  int64_t total = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    const at::Tensor& t = target[i];
    spans.push_back({t.is_contiguous() ? t : t.contiguous(), source[i].contiguous(), total});
    total += t.numel();
  }
  at::parallel_for(0, total, kElemGrain, [&](int64_t begin, int64_t end) {
    // first span that ends after `begin`
    auto it = std::upper_bound(spans.begin(), spans.end(), begin,
                               [](int64_t pos, const Span& s) { return pos < s.start; });
    for (auto span = it - 1; span != spans.end() && span->start < end; ++span) {
      const int64_t lo = std::max(begin, span->start) - span->start;
      const int64_t hi = std::min(end, span->start + span->target.numel()) - span->start;
      if (hi <= lo) continue;
      AT_DISPATCH_FLOATING_TYPES(span->target.scalar_type(), "polyak_cpu",
                                 [&] { polyak_range<scalar_t>(*span, lo, hi, tau); });
    }
  });
  for (size_t i = 0; i < target.size(); ++i) {
    if (!target[i].is_contiguous()) const_cast<at::Tensor&>(target[i]).copy_(spans[i].target);
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("polyak_", &polyak_cpu); }

}  // namespace fastsac
