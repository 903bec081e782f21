// CPU kernel of fastsac::sac_update_: the whole SAC update of fastsac/update.py (sac_update), step
// for step, as one C++ op built ahead of time by setup.py.
//
// Why: with empty caches torch.compile needs tens of seconds of a small CPU to build the update's
// graphs (docs/design.md, "Cold start"). This op is ready as soon as the extension loads, so
// FastSAC.train runs it while a background process compiles (fastsac/native_update.py). It is
// the Python function's explicit backward in ATen calls made from C++ (no Python between the
// ~200 ops) and Adam as one fused loop per network, in the SIMD build of the CPU kernels
// (cpu_simd.h): within a few percent of the compiled graph with AVX2 (the portable build is
// slower), BENCHMARKS.md has both.
// tests/test_native_update.py checks it against sac_update, update for update.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cpu_simd.h"
#include "op_handles.h"

namespace fastsac {
namespace {

struct Hyper {
  double gamma, tau, target_entropy, log_std_min, log_std_max, lr, beta1, beta2, adam_eps;
};

// The state list: an Adam group (params, exp_avg, exp_avg_sq, steps) per trained slot in
// fastsac.state's order (actor, qf_1, qf_2, vf, log_alpha), then vf_target's parameters.
constexpr int64_t kActor = 0, kQ1 = 4, kQ2 = 8, kV = 12, kLogAlpha = 16, kVTarget = 20;
constexpr int64_t kStateTensors = 21;
constexpr int64_t kElemGrain = 1 << 15;

// One network's parameter views over its flat buffer, in registration order (a weight/bias
// pair per hidden layer, then the heads), and, for layers in fastsac::mm's tiles, their
// transposed weights (the tiles read the right operand row-major).
struct Net {
  std::vector<at::Tensor> p;
  std::vector<at::Tensor> wt;
  std::vector<bool> tiled;
  int64_t layers;

  Net(const at::Tensor& flat, int64_t in, c10::IntArrayRef hidden,
      std::initializer_list<int64_t> heads, const std::vector<bool>& tiled_layers)
      : tiled(tiled_layers), layers(static_cast<int64_t>(hidden.size())) {
    int64_t offset = 0;
    auto take = [&](std::vector<int64_t> shape) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      TORCH_CHECK(offset + n <= flat.numel(), "sac_update_: a parameter buffer holds ",
                  flat.numel(), " elements, fewer than its network's shapes need");
      p.push_back(flat.narrow(0, offset, n).view(shape));
      offset += n;
    };
    int64_t width = in;
    for (int64_t h : hidden) {
      take({h, width});
      take({h});
      width = h;
    }
    for (int64_t out : heads) {
      take({out, width});
      take({out});
    }
    TORCH_CHECK(offset == flat.numel(), "sac_update_: a parameter buffer holds ", flat.numel(),
                " elements, its network's shapes ", offset);
    for (int64_t i = 0; i < layers; ++i)
      wt.push_back(tiled[i] ? p[2 * i].t().contiguous() : at::Tensor());
  }

  const at::Tensor& head_w(int64_t j) const { return p[2 * layers + 2 * j]; }
  const at::Tensor& head_b(int64_t j) const { return p[2 * layers + 2 * j + 1]; }
};

at::Tensor mm(const at::Tensor& a, const at::Tensor& b, bool tiled) {
  return tiled ? mm_op().call(a, b) : at::mm(a, b);
}

// The ReLU layers every network starts with: [x, h1, ..., hN].
std::vector<at::Tensor> trunk(const at::Tensor& x, const Net& net) {
  std::vector<at::Tensor> acts{x};
  for (int64_t i = 0; i < net.layers; ++i) {
    const at::Tensor& b = net.p[2 * i + 1];
    at::Tensor h = net.tiled[i] ? mm(acts.back(), net.wt[i], true).add_(b)
                                : at::linear(acts.back(), net.p[2 * i], b);
    acts.push_back(h.relu_());  // in place: one pass and no allocation
  }
  return acts;
}

// Gradients of the trunk's weights and biases from dL/dh_N, in registration order.
std::vector<at::Tensor> trunk_backward(at::Tensor g, const std::vector<at::Tensor>& acts,
                                       const Net& net) {
  std::vector<at::Tensor> grads(2 * net.layers);
  for (int64_t i = net.layers - 1; i >= 0; --i) {
    at::Tensor g_a = at::threshold_backward(g, acts[i + 1], 0);  // through the ReLU
    grads[2 * i] = mm(g_a.t(), acts[i], net.tiled[i]);
    grads[2 * i + 1] = g_a.sum(0);
    if (i > 0) g = mm(g_a, net.p[2 * i], net.tiled[i]);
  }
  return grads;
}

std::pair<at::Tensor, std::vector<at::Tensor>> critic(const at::Tensor& x, const Net& net) {
  auto acts = trunk(x, net);
  at::Tensor out = at::linear(acts.back(), net.head_w(0), net.head_b(0));
  return {out, std::move(acts)};
}

// Weight gradients of a critic from dL/dout.
std::vector<at::Tensor> critic_backward(const at::Tensor& g_out,
                                        const std::vector<at::Tensor>& acts, const Net& net) {
  auto grads = trunk_backward(at::mm(g_out, net.head_w(0)), acts, net);
  grads.push_back(at::mm(g_out.t(), acts.back()));
  grads.push_back(g_out.sum(0));
  return grads;
}

// dL/dx[:, first_col:] of a critic, without its weight gradients.
at::Tensor critic_input_grad(const at::Tensor& g_out, const std::vector<at::Tensor>& acts,
                             const Net& net, int64_t first_col) {
  at::Tensor g = at::mm(g_out, net.head_w(0));
  for (int64_t i = net.layers - 1; i >= 0; --i) {
    at::Tensor g_a = at::threshold_backward(g, acts[i + 1], 0);
    if (i == 0) {
      const at::Tensor& w = net.p[0];
      return at::mm(g_a, w.narrow(1, first_col, w.size(1) - first_col));
    }
    g = mm(g_a, net.p[2 * i], net.tiled[i]);
  }
  TORCH_CHECK(false, "sac_update_: a critic has at least one hidden layer");
}

// torch.minimum's gradient: to the smaller input, split evenly on ties.
std::pair<at::Tensor, at::Tensor> min_backward(const at::Tensor& g, const at::Tensor& a,
                                               const at::Tensor& b) {
  at::Tensor tie = at::where(a == b, g * 0.5, 0.0);
  return {at::where(a < b, g, tie), at::where(b < a, g, tie)};
}

// torch.optim.Adam's arithmetic over one group's flat buffers, one fused pass; the gradients
// are the group's parameters in order (no concatenation: each writes its own span).
template <typename T>
void adam_group(at::Tensor* group, const std::vector<at::Tensor>& grads, const Hyper& h) {
  at::Tensor& steps = group[3];
  steps.add_(1);
  const T step = static_cast<T>(steps[0].item<float>());
  // beta ** step, with the step capped where 1 - beta ** step is 1.0 anyway
  // (fastsac.update._power_step says why)
  const T cap1 = static_cast<T>(std::ceil(55 * std::log(2.0) / -std::log(h.beta1)));
  const T cap2 = static_cast<T>(std::ceil(55 * std::log(2.0) / -std::log(h.beta2)));
  const T one = 1;
  const T step_size =
      static_cast<T>(h.lr) / (one - std::pow(static_cast<T>(h.beta1), std::min(step, cap1)));
  const T bc2_sqrt = std::sqrt(one - std::pow(static_cast<T>(h.beta2), std::min(step, cap2)));
  const T w1 = static_cast<T>(1 - h.beta1), b2 = static_cast<T>(h.beta2);
  const T w2 = static_cast<T>(1 - h.beta2), eps = static_cast<T>(h.adam_eps);
  // the SIMD builds' constants (float32 only: for T = float these casts change nothing)
  const AdamCoefs simd_coefs{static_cast<float>(w1),  static_cast<float>(b2),
                             static_cast<float>(w2),  static_cast<float>(bc2_sqrt),
                             static_cast<float>(eps), static_cast<float>(step_size)};
  T* params = group[0].mutable_data_ptr<T>();
  T* exp_avg = group[1].mutable_data_ptr<T>();
  T* exp_avg_sq = group[2].mutable_data_ptr<T>();
  int64_t offset = 0;
  for (const at::Tensor& grad_any : grads) {
    const at::Tensor grad = grad_any.contiguous();
    const T* g = grad.const_data_ptr<T>();
    T* p = params + offset;
    T* m = exp_avg + offset;
    T* v = exp_avg_sq + offset;
    at::parallel_for(0, grad.numel(), kElemGrain, [&](int64_t lo, int64_t hi) {
      if constexpr (std::is_same_v<T, float>) {
        // the vector build of the same loop (cpu_simd.h): scalar square roots and divisions
        // were most of this op's time beyond the compiled graph's (BENCHMARKS.md)
        if (const SimdKernels* simd = simd_kernels()) {
          simd->adam(p + lo, m + lo, v + lo, g + lo, hi - lo, simd_coefs);
          return;
        }
      }
      for (int64_t i = lo; i < hi; ++i) {
        m[i] = m[i] + w1 * (g[i] - m[i]);  // lerp_(grad, 1 - beta1)
        v[i] = v[i] * b2 + w2 * g[i] * g[i];
        const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] - m[i] / denom * step_size;
      }
    });
    offset += grad.numel();
  }
  TORCH_CHECK(offset == group[0].numel(), "sac_update_: gradients for ", offset,
              " parameters, the group has ", group[0].numel());
}

void adam(at::Tensor* group, const std::vector<at::Tensor>& grads, const Hyper& h) {
  AT_DISPATCH_FLOATING_TYPES(group[0].scalar_type(), "sac_update_adam",
                             [&] { adam_group<scalar_t>(group, grads, h); });
}

void check_inputs(at::TensorList state, const at::Tensor& obs, c10::IntArrayRef hidden) {
  TORCH_CHECK(static_cast<int64_t>(state.size()) == kStateTensors, "sac_update_: ",
              kStateTensors, " state tensors (fastsac.native_update.state_tensors), got ",
              state.size());
  TORCH_CHECK(!hidden.empty(), "sac_update_: at least one hidden layer");
  TORCH_CHECK(obs.dim() == 2, "sac_update_: a [batch, obs_dim] batch, got ", obs.sizes());
  for (int64_t i = 0; i < kStateTensors; ++i) {
    TORCH_CHECK(state[i].device().is_cpu() && state[i].is_contiguous() && state[i].dim() == 1,
                "sac_update_: state tensors are contiguous flat CPU buffers (index ", i, ")");
    const bool steps = i % 4 == 3 && i < kVTarget;  // step counts: float32 whatever the dtype
    TORCH_CHECK(state[i].scalar_type() == (steps ? at::kFloat : obs.scalar_type()),
                "sac_update_: state and batch need one dtype, step counts float32 (index ", i,
                ")");
  }
  // Adam writes exp_avg and exp_avg_sq over the parameters' span: their sizes must agree
  for (int64_t g = 0; g < kVTarget; g += 4) {
    TORCH_CHECK(state[g + 1].numel() == state[g].numel() &&
                    state[g + 2].numel() == state[g].numel() && state[g + 3].numel() >= 1,
                "sac_update_: an Adam group's buffers differ in size (index ", g, ")");
  }
  TORCH_CHECK(state[kLogAlpha].numel() == 1, "sac_update_: log_alpha is one number");
}

at::Tensor sac_update_cpu(at::TensorList state_in, const at::Tensor& obs,
                          const at::Tensor& next_obs, const at::Tensor& acts,
                          const at::Tensor& rews, const at::Tensor& done, const at::Tensor& noise,
                          c10::IntArrayRef hidden, c10::IntArrayRef tiled_layers, double gamma,
                          double tau, double target_entropy, double log_std_min,
                          double log_std_max, double lr, double beta1, double beta2,
                          double adam_eps, bool policy_step) {
  check_inputs(state_in, obs, hidden);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> state(state_in.begin(), state_in.end());
  const Hyper h{gamma, tau, target_entropy, log_std_min, log_std_max, lr, beta1, beta2, adam_eps};
  std::vector<bool> tiled(hidden.size(), false);
  for (int64_t i : tiled_layers) {
    TORCH_CHECK(i > 0 && i < static_cast<int64_t>(hidden.size()),
                "sac_update_: tiled layer index ", i, " is not a hidden-to-hidden layer");
    tiled[i] = true;
  }
  const int64_t n = obs.size(0), obs_dim = obs.size(1), act_dim = acts.size(1);
  const Net net_a(state[kActor], obs_dim, hidden, {act_dim, act_dim}, tiled);
  const Net net_q1(state[kQ1], obs_dim + act_dim, hidden, {1}, tiled);
  const Net net_q2(state[kQ2], obs_dim + act_dim, hidden, {1}, tiled);
  const Net net_v(state[kV], obs_dim, hidden, {1}, tiled);
  const Net net_vt(state[kVTarget], obs_dim, hidden, {1}, tiled);
  const at::Tensor& log_alpha = state[kLogAlpha];

  // (2) one actor forward through the fused op
  auto a_acts = trunk(obs, net_a);
  const at::Tensor log_std_raw = at::linear(a_acts.back(), net_a.head_w(0), net_a.head_b(0));
  const at::Tensor mean_raw = at::linear(a_acts.back(), net_a.head_w(1), net_a.head_b(1));
  auto [new_action, log_prob] =
      tanh_normal_op().call(mean_raw, log_std_raw, noise, log_std_min, log_std_max);

  // (3) alpha first
  const at::Tensor entropy_gap = log_prob + target_entropy;
  const at::Tensor alpha_before = log_alpha.exp();
  const at::Tensor alpha_loss = (-alpha_before * entropy_gap).mean();
  adam(&state[kLogAlpha], {-(entropy_gap.mean(0)) * alpha_before}, h);
  const at::Tensor alpha_now = log_alpha.exp();

  // (4) Q regression on r + gamma * V_target(s') * (1 - terminated)
  const at::Tensor v_next = critic(next_obs, net_vt).first;
  const at::Tensor q_target = rews + gamma * v_next * (1 - done);
  const at::Tensor sa = at::cat({obs, acts}, -1);
  auto [q1, q1_acts] = critic(sa, net_q1);
  auto [q2, q2_acts] = critic(sa, net_q2);
  const at::Tensor q1_err = q1 - q_target, q2_err = q2 - q_target;
  const at::Tensor qf_loss = (q1_err * q1_err).mean() + (q2_err * q2_err).mean();

  // (5) V regression on min Q(s, new_action) - alpha * log_prob
  auto [v, v_acts] = critic(obs, net_v);
  const at::Tensor s_new = at::cat({obs, new_action}, -1);
  auto [q1_new, q1_new_acts] = critic(s_new, net_q1);
  auto [q2_new, q2_new_acts] = critic(s_new, net_q2);
  const at::Tensor q_min = at::minimum(q1_new, q2_new);
  const at::Tensor v_err = v - (q_min - alpha_now * log_prob);
  const at::Tensor vf_loss = (v_err * v_err).mean();

  const double scale = 2.0 / static_cast<double>(n);  // d/dx mean((x - y)^2) = 2 (x - y) / n
  const auto q1_grads = critic_backward(q1_err * scale, q1_acts, net_q1);
  const auto q2_grads = critic_backward(q2_err * scale, q2_acts, net_q2);
  const auto v_grads = critic_backward(v_err * scale, v_acts, net_v);

  at::Tensor actor_loss;
  if (policy_step) {
    // (6) the actor loss; only dL/d(new_action) flows back through the critics' inputs
    actor_loss = (alpha_now * log_prob - (q_min - v)).mean();
    auto [g_q1_new, g_q2_new] =
        min_backward(at::full_like(q_min, -1.0 / static_cast<double>(n)), q1_new, q2_new);
    const at::Tensor g_action = critic_input_grad(g_q1_new, q1_new_acts, net_q1, obs_dim) +
                                critic_input_grad(g_q2_new, q2_new_acts, net_q2, obs_dim);
    const at::Tensor g_log_prob = (alpha_now / static_cast<double>(n)).expand_as(log_prob);
    auto [g_mean_raw, g_log_std_raw] =
        tanh_normal_backward_op().call(g_action, g_log_prob, mean_raw, log_std_raw, noise,
                                       log_std_min, log_std_max);
    const at::Tensor g_top =
        at::mm(g_log_std_raw, net_a.head_w(0)) + at::mm(g_mean_raw, net_a.head_w(1));
    auto actor_grads = trunk_backward(g_top, a_acts, net_a);
    actor_grads.push_back(at::mm(g_log_std_raw.t(), a_acts.back()));
    actor_grads.push_back(g_log_std_raw.sum(0));
    actor_grads.push_back(at::mm(g_mean_raw.t(), a_acts.back()));
    actor_grads.push_back(g_mean_raw.sum(0));
    // (6) the actor's step, then Polyak before V's step (V_target blends V's pre-step weights)
    adam(&state[kActor], actor_grads, h);
    polyak_op().call({state[kVTarget]}, {state[kV]}, tau);
  } else {
    actor_loss = at::zeros_like(vf_loss);
  }
  // (7) Q1, Q2 and V, every update
  adam(&state[kQ1], q1_grads, h);
  adam(&state[kQ2], q2_grads, h);
  adam(&state[kV], v_grads, h);
  return at::stack({actor_loss, qf_loss, vf_loss, alpha_loss.reshape({})});
}

}  // namespace

TORCH_LIBRARY_IMPL(fastsac, CPU, m) { m.impl("sac_update_", &sac_update_cpu); }

}  // namespace fastsac
