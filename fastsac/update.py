"""The SAC update of DESIGN.md as one function over the agent's tensors, compiled as one graph.

Why an explicit backward: the update needs gradients of five small MLPs, each w.r.t. a different
loss, with some paths cut (the actor loss must not reach Q's weights, targets are detached).
Written out by hand (below, ~40 lines of matrix products) the whole update is a plain forward
function: ``torch.compile(fullgraph=True)`` traces it as one graph on every torch from 2.11 on,
with no autograd inside the graph, no ``zero_grad``, and no work for gradients that the notebook
computes only to throw away (Q's weight gradients from the actor loss). Agreement tests check it
against the autograd-based reference (``fastsac.reference``) update for update.

Every network comes in as an Adam group of flat buffers ``(params, exp_avg, exp_avg_sq,
steps)`` (see ``fastsac.flat``): the very memory of the agent's parameters and of its
``torch.optim.Adam`` state, updated in place, so modules and optimizer state_dicts stay valid.
The weights are views of the parameter buffer, taken inside the graph, in module registration
order:
    actor: [hidden1.w, hidden1.b, hidden2.w, hidden2.b, log_std_layer.w, log_std_layer.b,
            mu_layer.w, mu_layer.b]
    critics (qf_1, qf_2, vf, vf_target): [hidden1.w, hidden1.b, hidden2.w, hidden2.b, out.w, out.b]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fastsac.flat import unflatten

Tensors = Sequence[torch.Tensor]
AdamGroup = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class UpdateConfig:
    """Constants baked into the compiled graph."""

    obs_dim: int
    gamma: float
    tau: float
    target_entropy: float
    log_std_min: float
    log_std_max: float
    lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    tiled_mm: bool = False  # hidden-layer products through fastsac::mm (see Products)
    # parameter shapes of each network, in registration order (static: baked into the graph)
    shapes: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict, compare=False,
                                                           hash=False)


# ---- networks, forward and backward --------------------------------------------------------
@dataclass
class Products:
    """The update's large matrix products: those of the 128-wide hidden layers, forward and
    backward (17 per policy step, over half of a CPU update's time).

    ``tiled=False``: torch's products (cuBLAS on CUDA, MKL on CPU). ``tiled=True`` (CPU):
    ``fastsac::mm``, whose register-tiled AVX-512 kernel runs a 128 x 128 x 128 product in
    11-12 us where MKL takes 23-29 us on the 2-core Zen 5 VM of BENCHMARKS.md (the op uses MKL
    itself where its kernel would not pay: other CPUs, float64, narrow outputs).
    """

    tiled: bool

    def prepare(self, p: list[torch.Tensor]) -> list[torch.Tensor]:
        """A network's parameter list, with its hidden2 weight transposed once for this update
        appended when tiled (both Q(s, a) and Q(s, new_a) use it)."""
        return [*p, p[2].t().contiguous()] if self.tiled else p

    def hidden(self, h1, p):
        """relu(h1 @ W2^T + b2): the second layer of a trunk (``p`` from ``prepare``)."""
        if not self.tiled:
            return torch.relu(F.linear(h1, p[2], p[3]))
        return torch.relu(torch.ops.fastsac.mm(h1, p[-1]) + p[3])

    def mm(self, a, b):
        return torch.ops.fastsac.mm(a, b) if self.tiled else a @ b


def _trunk(x, p, prod: Products):
    """The two ReLU layers every network starts with; returns both activations."""
    h1 = torch.relu(F.linear(x, p[0], p[1]))
    return h1, prod.hidden(h1, p)


def _trunk_backward(g_h2, x, h1, h2, p, prod: Products):
    """Gradients of the trunk's weights from dL/dh2."""
    g_a2 = torch.where(h2 > 0, g_h2, 0.0)
    g_a1 = torch.where(h1 > 0, prod.mm(g_a2, p[2]), 0.0)
    return [g_a1.t() @ x, g_a1.sum(0), prod.mm(g_a2.t(), h1), g_a2.sum(0)]


def _critic(x, p, prod: Products):
    h1, h2 = _trunk(x, p, prod)
    return F.linear(h2, p[4], p[5]), (x, h1, h2)


def _critic_backward(g_out, cache, p, prod: Products):
    """Weight gradients of a critic from dL/dout."""
    x, h1, h2 = cache
    grads = _trunk_backward(g_out @ p[4], x, h1, h2, p, prod)
    return [*grads, g_out.t() @ h2, g_out.sum(0)]


def _critic_input_grad(g_out, cache, p, input_cols: slice, prod: Products):
    """dL/dx[:, input_cols] of a critic, without its weight gradients."""
    x, h1, h2 = cache
    g_a2 = torch.where(h2 > 0, g_out @ p[4], 0.0)
    g_a1 = torch.where(h1 > 0, prod.mm(g_a2, p[2]), 0.0)
    return g_a1 @ p[0][:, input_cols]


def _min_backward(g, a, b):
    """torch.minimum's gradient: to the smaller input, split evenly on ties."""
    half = g * 0.5
    return (torch.where(a < b, g, torch.where(a == b, half, 0.0)),
            torch.where(b < a, g, torch.where(a == b, half, 0.0)))


# ---- Adam, as torch.optim.Adam computes it -------------------------------------------------
def adam_step(group: AdamGroup, grads: Tensors, cfg: UpdateConfig) -> None:
    """One Adam step over a group's flat buffers: ``torch.optim.Adam``'s arithmetic, in one
    fused pass (the gradients are concatenated to match the parameter buffer)."""
    params, exp_avg, exp_avg_sq, steps = group
    grad = torch.cat([g.reshape(-1) for g in grads])
    steps.add_(1)
    exp_avg.lerp_(grad, 1 - cfg.beta1)
    exp_avg_sq.mul_(cfg.beta2).addcmul_(grad, grad, value=1 - cfg.beta2)
    step = steps[0].to(params.dtype)  # a group's parameters share one step count
    step_size = cfg.lr / (1 - torch.pow(cfg.beta1, _power_step(step, cfg.beta1)))
    bias_correction2_sqrt = torch.sqrt(1 - torch.pow(cfg.beta2, _power_step(step, cfg.beta2)))
    denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + cfg.adam_eps
    params.sub_(exp_avg / denom * step_size)


def _power_step(step: torch.Tensor, beta: float) -> torch.Tensor:
    """The step count for Adam's ``beta ** step``, capped where the cap changes no result.

    Why: beta1 ** step underflows float32 from step 840 on (0.9 ** 840 < 1.2e-38), and libm's
    pow takes a slow path (setting errno) at every underflow. Inductor evaluates the power
    inside each Adam loop, once per vector of parameters: ~12% of an update's time on CPU for
    the rest of training. From ``cap`` on, beta ** step < 2 ** -55, so 1 - beta ** step is 1.0
    exactly in float32 and float64, capped or not."""
    cap = math.ceil(55 * math.log(2) / -math.log(beta))
    return torch.clamp(step, max=cap)


# ---- the update ----------------------------------------------------------------------------
def sac_update(
    cfg: UpdateConfig,
    policy_step: bool,
    actor: AdamGroup,
    qf_1: AdamGroup,
    qf_2: AdamGroup,
    vf: AdamGroup,
    alpha: AdamGroup,
    vf_target: torch.Tensor,
    obs: torch.Tensor,
    next_obs: torch.Tensor,
    acts: torch.Tensor,
    rews: torch.Tensor,
    done: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """One SAC update, in place on the groups' tensors. Returns the losses as one tensor
    ``[actor_loss, qf_loss, vf_loss, alpha_loss]`` (actor_loss is 0 when ``policy_step`` is
    False). Numbers in comments are the steps of DESIGN.md's semantics list. Run under
    ``torch.no_grad()``."""
    prod = Products(cfg.tiled_mm)
    pa = prod.prepare(unflatten(actor[0], cfg.shapes["actor"]))
    pq1 = prod.prepare(unflatten(qf_1[0], cfg.shapes["critic_q"]))
    pq2 = prod.prepare(unflatten(qf_2[0], cfg.shapes["critic_q"]))
    pv = prod.prepare(unflatten(vf[0], cfg.shapes["critic_v"]))
    pvt = prod.prepare(unflatten(vf_target, cfg.shapes["critic_v"]))
    log_alpha = alpha[0]
    batch = obs.shape[0]
    action_cols = slice(cfg.obs_dim, None)

    # (2) one actor forward through the fused op
    a_h1, a_h2 = _trunk(obs, pa, prod)
    log_std_raw = F.linear(a_h2, pa[4], pa[5])
    mean_raw = F.linear(a_h2, pa[6], pa[7])
    new_action, log_prob = torch.ops.fastsac.tanh_normal(
        mean_raw, log_std_raw, noise, cfg.log_std_min, cfg.log_std_max)

    # (3) alpha first: d/dlog_alpha mean(-exp(log_alpha) * c) = -exp(log_alpha) * mean(c)
    entropy_gap = log_prob + cfg.target_entropy
    alpha_before = log_alpha.exp()
    alpha_loss = (-alpha_before * entropy_gap).mean()
    adam_step(alpha, [-(entropy_gap.mean(0)) * alpha_before], cfg)
    alpha_now = log_alpha.exp()

    # (4) Q regression on r + gamma * V_target(s') * (1 - terminated)
    v_next, _ = _critic(next_obs, pvt, prod)
    q_target = rews + cfg.gamma * v_next * (1 - done)
    sa = torch.cat((obs, acts), dim=-1)
    q1, q1_cache = _critic(sa, pq1, prod)
    q2, q2_cache = _critic(sa, pq2, prod)
    q1_err, q2_err = q1 - q_target, q2 - q_target
    qf_loss = (q1_err * q1_err).mean() + (q2_err * q2_err).mean()

    # (5) V regression on min Q(s, new_action) - alpha * log_prob
    v, v_cache = _critic(obs, pv, prod)
    s_new = torch.cat((obs, new_action), dim=-1)
    q1_new, q1_new_cache = _critic(s_new, pq1, prod)
    q2_new, q2_new_cache = _critic(s_new, pq2, prod)
    q_min = torch.minimum(q1_new, q2_new)
    v_err = v - (q_min - alpha_now * log_prob)
    vf_loss = (v_err * v_err).mean()

    scale = 2.0 / batch  # d/dx mean((x - y)^2) = 2 (x - y) / batch
    q1_grads = _critic_backward(q1_err * scale, q1_cache, pq1, prod)
    q2_grads = _critic_backward(q2_err * scale, q2_cache, pq2, prod)
    v_grads = _critic_backward(v_err * scale, v_cache, pv, prod)

    if policy_step:
        # (6) actor loss mean(alpha * log_prob - (min Q - V)); its path into Q's weights is
        # never formed; only dL/d(new_action) flows back through the critics' inputs.
        actor_loss = (alpha_now * log_prob - (q_min - v)).mean()
        g_q1_new, g_q2_new = _min_backward(torch.full_like(q_min, -1.0 / batch), q1_new, q2_new)
        g_action = (_critic_input_grad(g_q1_new, q1_new_cache, pq1, action_cols, prod)
                    + _critic_input_grad(g_q2_new, q2_new_cache, pq2, action_cols, prod))
        g_log_prob = (alpha_now / batch).expand_as(log_prob)
        g_mean_raw, g_log_std_raw = torch.ops.fastsac.tanh_normal_backward(
            g_action, g_log_prob, mean_raw, log_std_raw, noise, cfg.log_std_min, cfg.log_std_max)
        g_h2 = g_log_std_raw @ pa[4] + g_mean_raw @ pa[6]
        trunk_grads = _trunk_backward(g_h2, obs, a_h1, a_h2, pa, prod)
        actor_grads = [*trunk_grads, g_log_std_raw.t() @ a_h2, g_log_std_raw.sum(0),
                       g_mean_raw.t() @ a_h2, g_mean_raw.sum(0)]
        adam_step(actor, actor_grads, cfg)
        # Polyak before V's step: V_target blends V's pre-step parameters
        torch.ops.fastsac.polyak_([vf_target], [vf[0]], cfg.tau)
    else:
        actor_loss = torch.zeros_like(vf_loss)

    # (7) Q1, Q2, V step every update
    adam_step(qf_1, q1_grads, cfg)
    adam_step(qf_2, q2_grads, cfg)
    adam_step(vf, v_grads, cfg)
    return torch.stack((actor_loss, qf_loss, vf_loss, alpha_loss.reshape(())))


def make_update(cfg: UpdateConfig, compile: bool,
                device: torch.device) -> Callable[..., torch.Tensor]:
    """``sac_update`` with ``cfg`` bound; compiled as one graph (``fullgraph=True``) if asked.

    The Python bool ``policy_step`` is specialised by dynamo: two graphs, each compiled once
    per process (inductor's on-disk cache makes later processes cheaper).
    """

    def update(policy_step, *tensors):
        return sac_update(cfg, policy_step, *tensors)

    if not compile:
        return update
    options = {}
    if device.type == "cpu":
        # The C++ wrapper calls the graph's ~100 kernels from C++ instead of Python: measured
        # 1.15 -> 1.05 ms per update on a 2-core CPU. (On CUDA the CUDA graph removes that cost.)
        options["cpp_wrapper"] = True
        # The graph's own kernels (Adam, activations, losses: ~17k-element loops) run on one
        # thread: split across threads, each costs an OpenMP fork and join worth more than the
        # loop. The products (fastsac::mm, or torch's mm) still use torch's thread count at run
        # time, which FastSAC's update_threads sets; one compiled graph serves every count.
        # (Inductor bakes this into the graph; naming it also keys its on-disk cache.)
        options["cpp.threads"] = 1
    return torch.compile(update, fullgraph=True, dynamic=False, options=options)
