// CPU kernel of fastsac::policy_action: the actor's sample for ONE state, in one call.
//
// Why: select_action runs once per environment step. Through torch ops it is eleven dispatches
// (four matrix-vector products, two ReLUs, the fused head, ...) of ~2 us each around 17k
// multiply-adds; here the whole forward is one call (24 -> 9 us per action on the 2-core VM of
// BENCHMARKS.md). Same formula as fastsac::tanh_normal (tanh_normal_math.h); the dot products
// round differently from MKL's, by an ulp or so.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "tanh_normal_math.h"

namespace fastsac {
namespace {

// y = W x + b (optionally ReLU'd), W row-major [out, in]. Eight running sums per row let the
// compiler keep independent vector chains (a single sum would serialise every add).
template <typename T>
void dense(const T* w, const T* b, const T* x, T* y, int64_t out, int64_t in, bool relu) {
  for (int64_t o = 0; o < out; ++o) {
    const T* row = w + o * in;
    T acc[8] = {};
    int64_t k = 0;
    for (; k + 8 <= in; k += 8) {
      for (int j = 0; j < 8; ++j) acc[j] += row[k + j] * x[k + j];
    }
    for (; k < in; ++k) acc[k % 8] += row[k] * x[k];
    const T s = b[o] + (((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                        ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    y[o] = relu ? std::max(s, T(0)) : s;
  }
}

at::Tensor policy_action_cpu(const at::Tensor& state, at::TensorList actor, const at::Tensor& eps,
                             double log_std_min, double log_std_max) {
  // actor: the Actor module's parameters in registration order
  TORCH_CHECK(actor.size() == 8, "policy_action: expected the actor's 8 parameters, got ",
              actor.size());
  const auto dtype = state.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "policy_action: float32 or float64");
  for (const auto& p : actor) {
    TORCH_CHECK(p.scalar_type() == dtype && p.device().is_cpu(),
                "policy_action: parameters must be CPU tensors of the state's dtype");
  }
  const int64_t obs_dim = state.numel(), hidden1 = actor[0].size(0), hidden2 = actor[2].size(0);
  const int64_t act_dim = actor[6].size(0);
  TORCH_CHECK(actor[0].dim() == 2 && actor[0].size(1) == obs_dim && actor[2].size(1) == hidden1 &&
                  actor[4].size(1) == hidden2 && actor[6].size(1) == hidden2 &&
                  actor[4].size(0) == act_dim,
              "policy_action: parameter shapes do not chain (state of ", obs_dim, " values)");
  TORCH_CHECK(eps.numel() == act_dim && eps.scalar_type() == dtype,
              "policy_action: eps must hold ", act_dim, " values of the state's dtype");
  std::vector<at::Tensor> p;
  p.reserve(8);
  for (const auto& t : actor) p.push_back(t.contiguous());
  const at::Tensor x = state.contiguous(), e = eps.contiguous();
  at::Tensor action = at::empty({act_dim}, state.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "policy_action_cpu", [&] {
    using T = scalar_t;
    std::vector<T> h1(hidden1), h2(hidden2), mean_raw(act_dim), log_std_raw(act_dim);
    auto ptr = [&](int i) { return p[i].const_data_ptr<T>(); };
    dense<T>(ptr(0), ptr(1), x.const_data_ptr<T>(), h1.data(), hidden1, obs_dim, true);
    dense<T>(ptr(2), ptr(3), h1.data(), h2.data(), hidden2, hidden1, true);
    dense<T>(ptr(4), ptr(5), h2.data(), log_std_raw.data(), act_dim, hidden2, false);
    dense<T>(ptr(6), ptr(7), h2.data(), mean_raw.data(), act_dim, hidden2, false);
    const T lo = static_cast<T>(log_std_min);
    const T half_range = static_cast<T>(0.5 * (log_std_max - log_std_min));
    T* out = action.mutable_data_ptr<T>();
    const T* ep = e.const_data_ptr<T>();
    for (int64_t j = 0; j < act_dim; ++j) {
      tanh_normal_forward_elem<T>(mean_raw[j], log_std_raw[j], ep[j], lo, half_range, &out[j]);
    }
  });
  return action;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("policy_action", &policy_action_cpu); }

}  // namespace fastsac
