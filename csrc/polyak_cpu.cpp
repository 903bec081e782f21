// CPU kernel of fastsac::polyak_: target <- tau * source + (1 - tau) * target for every pair, in
// one call. The product order matches the notebook's `tau * l + (1.0 - tau) * t`, so the fused op
// and the per-parameter loop round the same way.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "checks.h"

namespace fastsac {
namespace {

constexpr int64_t kElemGrain = 1 << 16;

template <typename T>
void polyak_span(T* target, const T* source, int64_t n, T tau, T keep) {
  at::parallel_for(0, n, kElemGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) target[i] = tau * source[i] + keep * target[i];
  });
}

void polyak_cpu(at::TensorList target, at::TensorList source, double tau) {
  check_polyak_inputs(target, source);
  for (size_t i = 0; i < target.size(); ++i) {
    const at::Tensor& t = target[i];
    const auto src = source[i].contiguous();
    // A non-contiguous target is updated through a contiguous copy written back once.
    at::Tensor work = t.is_contiguous() ? t : t.contiguous();
    AT_DISPATCH_FLOATING_TYPES(work.scalar_type(), "polyak_cpu", [&] {
      polyak_span<scalar_t>(work.mutable_data_ptr<scalar_t>(), src.const_data_ptr<scalar_t>(),
                            work.numel(), static_cast<scalar_t>(tau),
                            static_cast<scalar_t>(1.0 - tau));
    });
    if (!t.is_contiguous()) const_cast<at::Tensor&>(t).copy_(work);
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("polyak_", &polyak_cpu); }

}  // namespace fastsac
