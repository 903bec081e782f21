// CPU kernel of fastsac::policy_action: the actor's action for one state ([obs_dim]) or for the
// states of a vector env ([n, obs_dim], row by row), in one call: a sample with noise eps, or the
// deterministic action (the squashed mean: eps = 0) without.
//
// Why: select_action runs once per environment step. Through torch ops it is a dozen dispatches
// (matrix-vector products, ReLUs, the fused head, ...) around a few thousand multiply-adds; here
// the whole forward is one call (BENCHMARKS.md, select_action). Same formula as
// fastsac::tanh_normal (tanh_normal_math.h); the dot products round differently from MKL's, by
// an ulp or so.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <utility>
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

at::Tensor policy_action_cpu(const at::Tensor& state, at::TensorList actor,
                             const std::optional<at::Tensor>& eps_opt, double log_std_min,
                             double log_std_max, bool tanh_mean) {
  // actor: the Actor module's parameters in registration order: a weight and a bias per hidden
  // layer (any number >= 1), then log_std_layer's and mu_layer's
  TORCH_CHECK(actor.size() >= 6 && actor.size() % 2 == 0,
              "policy_action: expected the actor's parameters (2 per hidden layer + 4), got ",
              actor.size());
  const int64_t layers = static_cast<int64_t>(actor.size()) / 2 - 2;
  const auto dtype = state.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "policy_action: float32 or float64");
  for (const auto& p : actor) {
    TORCH_CHECK(p.scalar_type() == dtype && p.device().is_cpu(),
                "policy_action: parameters must be CPU tensors of the state's dtype");
  }
  TORCH_CHECK(state.dim() == 1 || state.dim() == 2,
              "policy_action: state must be [obs_dim] or [n, obs_dim], got ", state.dim(), " dims");
  const bool rows = state.dim() == 2;
  const int64_t n = rows ? state.size(0) : 1;
  const int64_t obs_dim = state.size(-1);
  const at::Tensor& w_ls = actor[2 * layers];
  const at::Tensor& w_mu = actor[2 * layers + 2];
  const int64_t act_dim = w_mu.size(0);
  int64_t width = obs_dim, widest = 1;
  for (int64_t i = 0; i < layers; ++i) {
    const at::Tensor& w = actor[2 * i];
    TORCH_CHECK(w.dim() == 2 && w.size(1) == width && actor[2 * i + 1].numel() == w.size(0),
                "policy_action: hidden", i + 1, " does not take ", width, " inputs");
    width = w.size(0);
    widest = std::max(widest, width);
  }
  TORCH_CHECK(w_ls.dim() == 2 && w_mu.dim() == 2 && w_ls.size(1) == width &&
                  w_mu.size(1) == width && w_ls.size(0) == act_dim,
              "policy_action: the heads do not take the last hidden layer's ", width, " values");
  TORCH_CHECK(actor[2 * layers + 1].numel() == act_dim && actor[2 * layers + 3].numel() == act_dim,
              "policy_action: the heads' biases must hold ", act_dim, " values");
  const bool sample = eps_opt.has_value() && eps_opt->defined();
  TORCH_CHECK(!sample || (eps_opt->numel() == n * act_dim && eps_opt->scalar_type() == dtype &&
                          eps_opt->device().is_cpu()),
              "policy_action: eps must hold ", n, " x ", act_dim, " values of the state's dtype");
  std::vector<at::Tensor> p;
  p.reserve(actor.size());
  for (const auto& t : actor) p.push_back(t.contiguous());
  const at::Tensor x = state.contiguous();
  const at::Tensor e = sample ? eps_opt->contiguous() : at::Tensor();
  at::Tensor action =
      rows ? at::empty({n, act_dim}, state.options()) : at::empty({act_dim}, state.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "policy_action_cpu", [&] {
    using T = scalar_t;
    // two activation buffers used in turn, layer by layer
    std::vector<T> h_in(widest), h_out(widest), mean_raw(act_dim), log_std_raw(act_dim);
    auto ptr = [&](int64_t i) { return p[i].const_data_ptr<T>(); };
    const T lo = static_cast<T>(log_std_min);
    const T half_range = static_cast<T>(0.5 * (log_std_max - log_std_min));
    for (int64_t r = 0; r < n; ++r) {  // each row exactly as a single state
      const T* in = x.const_data_ptr<T>() + r * obs_dim;
      int64_t in_dim = obs_dim;
      for (int64_t i = 0; i < layers; ++i) {
        const int64_t out_dim = p[2 * i].size(0);
        dense<T>(ptr(2 * i), ptr(2 * i + 1), in, h_out.data(), out_dim, in_dim, true);
        std::swap(h_in, h_out);
        in = h_in.data();
        in_dim = out_dim;
      }
      dense<T>(ptr(2 * layers), ptr(2 * layers + 1), in, log_std_raw.data(), act_dim, in_dim,
               false);
      dense<T>(ptr(2 * layers + 2), ptr(2 * layers + 3), in, mean_raw.data(), act_dim, in_dim,
               false);
      T* out = action.mutable_data_ptr<T>() + r * act_dim;
      const T* ep = sample ? e.const_data_ptr<T>() + r * act_dim : nullptr;
      for (int64_t j = 0; j < act_dim; ++j) {
        tanh_normal_forward_elem<T>(mean_raw[j], log_std_raw[j], sample ? ep[j] : T(0), lo,
                                    half_range, tanh_mean, &out[j]);
      }
    }
  });
  return action;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("policy_action", &policy_action_cpu); }

}  // namespace fastsac
