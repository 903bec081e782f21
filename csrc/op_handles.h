// Typed dispatcher handles of fastsac's own ops, for C++ code that calls them (the C++ autograd,
// the ahead-of-time update): one lookup per process, then a plain call through the dispatcher,
// which picks the device kernel.
#pragma once
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ATen.h>

#include <tuple>

namespace fastsac {

using TanhNormalSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                         const at::Tensor&, double, double);
using TanhNormalBackwardSig = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
    double, double);
using MmSig = at::Tensor(const at::Tensor&, const at::Tensor&);
using PolyakSig = void(at::TensorList, at::TensorList, double);

template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

inline const c10::TypedOperatorHandle<TanhNormalSig>& tanh_normal_op() {
  static const auto op = find_op<TanhNormalSig>("fastsac::tanh_normal");
  return op;
}

inline const c10::TypedOperatorHandle<TanhNormalBackwardSig>& tanh_normal_backward_op() {
  static const auto op = find_op<TanhNormalBackwardSig>("fastsac::tanh_normal_backward");
  return op;
}

inline const c10::TypedOperatorHandle<MmSig>& mm_op() {
  static const auto op = find_op<MmSig>("fastsac::mm");
  return op;
}

inline const c10::TypedOperatorHandle<PolyakSig>& polyak_op() {
  static const auto op = find_op<PolyakSig>("fastsac::polyak_");
  return op;
}

}  // namespace fastsac
