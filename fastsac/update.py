"""The SAC update of docs/design.md as one function over the agent's tensors, compiled as one
graph.

Why an explicit backward: the update needs gradients of five small MLPs, each w.r.t. a different
loss, with some paths cut (the actor loss must not reach Q's weights, targets are detached).
Written out by hand (below: a loop of matrix products per network) the whole update is a plain
forward function: ``torch.compile(fullgraph=True)`` traces it as one graph on every torch from
2.11 on, with no autograd inside the graph, no ``zero_grad``, and no work for gradients that the
notebook computes only to throw away (Q's weight gradients from the actor loss). Agreement tests
check it against the autograd-based reference (``fastsac.reference``) update for update;
docs/design.md says how it compares with autograd in the same graph.

The agent's tensors come in as one :data:`fastsac.state.UpdateState`: every trained network as an
Adam group of flat buffers ``(params, exp_avg, exp_avg_sq, steps)`` (see ``fastsac.flat``), the
very memory of the agent's parameters and of its ``torch.optim.Adam`` state, updated in place,
so modules and optimizer state_dicts stay valid. The weights are views of the parameter buffer,
taken inside the graph, in module registration order (``fastsac.networks``):
    actor: [hidden1.w, hidden1.b, ..., hiddenN.w, hiddenN.b, log_std_layer.w, log_std_layer.b,
            mu_layer.w, mu_layer.b]
    critics (qf_1, qf_2, vf, vf_target): [hidden1.w, hidden1.b, ..., out.w, out.b]
"""

from __future__ import annotations

import hashlib
import math
import os
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from fastsac import distributed
from fastsac.flat import unflatten
from fastsac.state import Batch, UpdateState

Tensors = Sequence[torch.Tensor]
AdamGroup = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


# Hidden-to-hidden layers whose widths are both in this range run through the tiled AVX-512
# kernel of fastsac::mm when the CPU has it (float32): the shape where it was measured to beat
# MKL (128 wide, BENCHMARKS.md). Elsewhere the products are torch's own: a custom-op call in
# the compiled graph costs more than inductor's mm, so fastsac::mm is used only where it wins.
TILED_WIDTHS = range(16, 129)


@dataclass(frozen=True)
class UpdateConfig:
    """Constants baked into the compiled graph (and, with the device, dtype and batch size, the
    key under which agents share one compiled update)."""

    obs_dim: int
    action_dim: int
    hidden_sizes: tuple[int, ...]
    gamma: float
    tau: float
    target_entropy: float
    log_std_min: float
    log_std_max: float
    lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    tiled_mm: bool = False  # hidden layers in fastsac::mm's AVX-512 tiles where they pay
    # data-parallel ranks whose gradients every update averages (fastsac.distributed); 1: none
    world_size: int = 1
    # parameter shapes of each network, in registration order (they follow from the fields
    # above, so they take no part in equality)
    shapes: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict, compare=False,
                                                           hash=False)

    @property
    def adam_settings(self) -> dict[str, Any]:
        """The ``torch.optim.Adam`` group settings this update's arithmetic bakes in (an
        optimizer whose groups say otherwise is not what the update runs)."""
        return {"lr": self.lr, "betas": (self.beta1, self.beta2), "eps": self.adam_eps,
                "weight_decay": 0.0, "amsgrad": False, "maximize": False}

    @property
    def tiled_layers(self) -> tuple[bool, ...]:
        """Which hidden layers run in fastsac::mm's tiles (``tiled_mm``: an AVX-512 CPU,
        float32): hidden-to-hidden layers whose widths are both in ``TILED_WIDTHS``."""
        w = self.hidden_sizes
        return tuple(self.tiled_mm and i > 0 and w[i - 1] in TILED_WIDTHS and w[i] in TILED_WIDTHS
                     for i in range(len(w)))


# ---- networks, forward and backward --------------------------------------------------------
def _mm(a, b, tiled: bool):
    """a @ b: in fastsac::mm's tiles for a tiled layer (on fastsac's own product thread count,
    which the thread tuner sets between updates without touching torch's, the count
    torch.compile guards on), else torch's product (MKL on CPU, cuBLAS on CUDA)."""
    return torch.ops.fastsac.mm(a, b) if tiled else a @ b


class Net:
    """One network's parameter views for this update: ``p`` in registration order (a
    weight/bias pair per hidden layer, then the heads), which hidden layers run in the tiles
    (``UpdateConfig.tiled_layers``), and their transposed weights, materialised once per update
    (the tiles read the right operand row-major; Q's are used twice: Q(s, a) and Q(s, new_a))."""

    def __init__(self, flat: torch.Tensor, shapes, tiled: tuple[bool, ...]):
        self.p = unflatten(flat, shapes)
        self.layers = len(tiled)
        self.tiled = tiled
        self.wt = [self.p[2 * i].t().contiguous() if tiled[i] else None
                   for i in range(self.layers)]

    def head(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias of head ``j`` (actor: 0 log_std_layer, 1 mu_layer; critic: 0 out)."""
        k = 2 * self.layers + 2 * j
        return self.p[k], self.p[k + 1]


def _trunk(x, net: Net) -> list[torch.Tensor]:
    """The ReLU layers every network starts with; returns ``[x, h1, ..., hN]``."""
    acts = [x]
    for i in range(net.layers):
        w, b = net.p[2 * i], net.p[2 * i + 1]
        if net.tiled[i]:
            acts.append(torch.relu(_mm(acts[-1], net.wt[i], True) + b))
        else:
            acts.append(torch.relu(F.linear(acts[-1], w, b)))
    return acts


def _trunk_backward(g_top, acts, net: Net) -> list[torch.Tensor]:
    """Gradients of the trunk's weights and biases from dL/dh_N, in registration order."""
    grads: list[torch.Tensor] = [None] * (2 * net.layers)  # type: ignore[list-item]
    g = g_top
    for i in reversed(range(net.layers)):
        g_a = torch.where(acts[i + 1] > 0, g, 0.0)  # through the ReLU
        grads[2 * i] = _mm(g_a.t(), acts[i], net.tiled[i])
        grads[2 * i + 1] = g_a.sum(0)
        if i > 0:
            g = _mm(g_a, net.p[2 * i], net.tiled[i])
    return grads


def _critic(x, net: Net):
    acts = _trunk(x, net)
    w, b = net.head(0)
    return F.linear(acts[-1], w, b), acts


def _critic_backward(g_out, acts, net: Net):
    """Weight gradients of a critic from dL/dout."""
    w, _ = net.head(0)
    grads = _trunk_backward(g_out @ w, acts, net)
    return [*grads, g_out.t() @ acts[-1], g_out.sum(0)]


def _critic_input_grad(g_out, acts, net: Net, input_cols: slice):
    """dL/dx[:, input_cols] of a critic, without its weight gradients."""
    w, _ = net.head(0)
    g = g_out @ w
    for i in reversed(range(net.layers)):
        g_a = torch.where(acts[i + 1] > 0, g, 0.0)
        if i == 0:
            return g_a @ net.p[0][:, input_cols]
        g = _mm(g_a, net.p[2 * i], net.tiled[i])
    raise AssertionError("a critic has at least one hidden layer")


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
    inside each Adam loop, once per vector of parameters, for the rest of training
    (BENCHMARKS.md has what it cost). From ``cap`` on, beta ** step < 2 ** -55, so
    1 - beta ** step is 1.0 exactly in float32 and float64, capped or not."""
    cap = math.ceil(55 * math.log(2) / -math.log(beta))
    return torch.clamp(step, max=cap)


# ---- the update ----------------------------------------------------------------------------
def sac_update(cfg: UpdateConfig, policy_step: bool, state: UpdateState, batch: Batch,
               noise: torch.Tensor) -> torch.Tensor:
    """One SAC update, in place on the tensors of ``state`` (fastsac.state.UpdateState).
    Returns the losses as one tensor ``[actor_loss, qf_loss, vf_loss, alpha_loss]``
    (actor_loss is 0 when ``policy_step`` is False). Numbers in comments are the steps of
    docs/design.md's semantics list. Run under ``torch.no_grad()``."""
    tiled = cfg.tiled_layers
    net_a = Net(state.actor[0], cfg.shapes["actor"], tiled)
    net_q1 = Net(state.qf_1[0], cfg.shapes["critic_q"], tiled)
    net_q2 = Net(state.qf_2[0], cfg.shapes["critic_q"], tiled)
    net_v = Net(state.vf[0], cfg.shapes["critic_v"], tiled)
    net_vt = Net(state.vf_target, cfg.shapes["critic_v"], tiled)
    log_alpha = state.log_alpha[0]
    obs, next_obs, acts, rews, done = batch
    n = obs.shape[0]
    action_cols = slice(cfg.obs_dim, None)

    # (2) one actor forward through the fused op
    a_acts = _trunk(obs, net_a)
    w_ls, b_ls = net_a.head(0)
    w_mu, b_mu = net_a.head(1)
    log_std_raw = F.linear(a_acts[-1], w_ls, b_ls)
    mean_raw = F.linear(a_acts[-1], w_mu, b_mu)
    new_action, log_prob = torch.ops.fastsac.tanh_normal(
        mean_raw, log_std_raw, noise, cfg.log_std_min, cfg.log_std_max)

    # (3) alpha first: d/dlog_alpha mean(-exp(log_alpha) * c) = -exp(log_alpha) * mean(c)
    entropy_gap = log_prob + cfg.target_entropy
    alpha_before = log_alpha.exp()
    alpha_loss = (-alpha_before * entropy_gap).mean()
    alpha_grad = -(entropy_gap.mean(0)) * alpha_before
    if cfg.world_size > 1:  # averaged over the ranks before the step: the new alpha is used below
        alpha_grad = distributed.average(alpha_grad, cfg.world_size)
    adam_step(state.log_alpha, [alpha_grad], cfg)
    alpha_now = log_alpha.exp()

    # (4) Q regression on r + gamma * V_target(s') * (1 - terminated)
    v_next, _ = _critic(next_obs, net_vt)
    q_target = rews + cfg.gamma * v_next * (1 - done)
    sa = torch.cat((obs, acts), dim=-1)
    q1, q1_acts = _critic(sa, net_q1)
    q2, q2_acts = _critic(sa, net_q2)
    q1_err, q2_err = q1 - q_target, q2 - q_target
    qf_loss = (q1_err * q1_err).mean() + (q2_err * q2_err).mean()

    # (5) V regression on min Q(s, new_action) - alpha * log_prob
    v, v_acts = _critic(obs, net_v)
    s_new = torch.cat((obs, new_action), dim=-1)
    q1_new, q1_new_acts = _critic(s_new, net_q1)
    q2_new, q2_new_acts = _critic(s_new, net_q2)
    q_min = torch.minimum(q1_new, q2_new)
    v_err = v - (q_min - alpha_now * log_prob)
    vf_loss = (v_err * v_err).mean()

    scale = 2.0 / n  # d/dx mean((x - y)^2) = 2 (x - y) / n
    q1_grads = _critic_backward(q1_err * scale, q1_acts, net_q1)
    q2_grads = _critic_backward(q2_err * scale, q2_acts, net_q2)
    v_grads = _critic_backward(v_err * scale, v_acts, net_v)

    if policy_step:
        # (6) actor loss mean(alpha * log_prob - (min Q - V)); its path into Q's weights is
        # never formed; only dL/d(new_action) flows back through the critics' inputs.
        actor_loss = (alpha_now * log_prob - (q_min - v)).mean()
        g_q1_new, g_q2_new = _min_backward(torch.full_like(q_min, -1.0 / n), q1_new, q2_new)
        g_action = (_critic_input_grad(g_q1_new, q1_new_acts, net_q1, action_cols)
                    + _critic_input_grad(g_q2_new, q2_new_acts, net_q2, action_cols))
        g_log_prob = (alpha_now / n).expand_as(log_prob)
        g_mean_raw, g_log_std_raw = torch.ops.fastsac.tanh_normal_backward(
            g_action, g_log_prob, mean_raw, log_std_raw, noise, cfg.log_std_min, cfg.log_std_max)
        g_top = g_log_std_raw @ w_ls + g_mean_raw @ w_mu
        trunk_grads = _trunk_backward(g_top, a_acts, net_a)
        actor_grads = [*trunk_grads, g_log_std_raw.t() @ a_acts[-1], g_log_std_raw.sum(0),
                       g_mean_raw.t() @ a_acts[-1], g_mean_raw.sum(0)]
    else:
        actor_loss, actor_grads = torch.zeros_like(vf_loss), None
    if cfg.world_size > 1:  # every network's gradients averaged over the ranks, one all-reduce
        grads = [*(actor_grads or []), *q1_grads, *q2_grads, *v_grads]
        grads = distributed.average_flat(grads, cfg.world_size)
        k = len(actor_grads or [])
        m = len(q1_grads)
        actor_grads = grads[:k] if actor_grads is not None else None
        q1_grads, q2_grads, v_grads = grads[k:k + m], grads[k + m:k + 2 * m], grads[k + 2 * m:]
    # (6) the actor's step and Polyak on policy steps, (7) Q1, Q2, V every update
    step_networks(cfg, state, actor_grads, q1_grads, q2_grads, v_grads)
    return torch.stack((actor_loss, qf_loss, vf_loss, alpha_loss.reshape(())))


def step_networks(cfg: UpdateConfig, state: UpdateState, actor_grads: Tensors | None,
                  q1_grads: Tensors, q2_grads: Tensors, v_grads: Tensors) -> None:
    """Steps (6)-(7) once the gradients are known: on a policy step (``actor_grads`` given)
    the actor's Adam step, then Polyak, before V's step, so V_target blends V's pre-step
    parameters; then Q1, Q2 and V, every update."""
    if actor_grads is not None:
        adam_step(state.actor, actor_grads, cfg)
        torch.ops.fastsac.polyak_([state.vf_target], [state.vf[0]], cfg.tau)
    adam_step(state.qf_1, q1_grads, cfg)
    adam_step(state.qf_2, q2_grads, cfg)
    adam_step(state.vf, v_grads, cfg)


def _own_code(fn: Callable, tag: str) -> Callable:
    """A copy of ``fn`` with its own code object.

    Why: dynamo keeps its compiled entries per code object and fails (``fullgraph=True``) past
    ``recompile_limit`` of them. One code object per update configuration keeps each
    configuration at its two entries (policy step or not), however many agents of other shapes
    a process creates."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__,
                              fn.__closure__)


_COMPILED: dict[tuple, Callable[..., torch.Tensor]] = {}
# FASTSAC_CPP_WRAPPER=0 compiles CPU updates without inductor's C++ wrapper (for the cold-start
# benchmark, which weighs its compile time against its time per update)
CPP_WRAPPER = os.environ.get("FASTSAC_CPP_WRAPPER", "1") != "0"
# keys of _COMPILED whose graphs have run in this process (compiled, or loaded from the caches)
_BUILT: set[tuple] = set()


# The widest hidden layer up to which the graph's own kernels run on one thread (see
# kernel_thread_options; measured at 128 and 256 wide, BENCHMARKS.md).
SERIAL_KERNELS_MAX_WIDTH = 128


def kernel_thread_options(cfg: UpdateConfig) -> dict:
    """Inductor options for the threads of the graph's own CPU kernels (Adam, activations,
    losses; the products are MKL's and run on torch's count).

    Up to ``SERIAL_KERNELS_MAX_WIDTH`` they run on one thread: their loops (~10^4 elements)
    cost less than an OpenMP fork and join. Wider networks' loops (~10^5 elements) pay for
    splitting: they run on torch's thread count at compile time (inductor's default), the
    count dynamo guards on, so each count gets its own compiled entry and inductor's on-disk
    cache keys on it. Either way a reduction keeps one summation order whatever the count
    (inductor splits only loops over independent outputs here), so the results do not depend
    on it (tests/test_threads.py). The tiled products (fastsac::mm) read fastsac's own product
    count at run time."""
    if max(cfg.hidden_sizes) <= SERIAL_KERNELS_MAX_WIDTH:
        return {"cpp.threads": 1}
    return {}


def update_key(cfg: UpdateConfig, device: torch.device, dtype: torch.dtype,
               batch_size: int) -> tuple:
    """What one compiled update serves: agents with equal keys share it."""
    return (cfg, device, dtype, batch_size)


def is_built(key: tuple) -> bool:
    return key in _BUILT


def mark_built(key: tuple) -> None:
    _BUILT.add(key)


def make_update(cfg: UpdateConfig, compile: bool, device: torch.device, dtype: torch.dtype,
                batch_size: int) -> Callable[..., torch.Tensor]:
    """``sac_update`` with ``cfg`` bound: ``update(policy_step, state, batch, noise)``;
    compiled as one graph (``fullgraph=True``) if asked.

    Agents whose configuration, device, dtype and batch size match share one compiled function
    (a new agent of a known shape compiles nothing); each configuration has a code object of its
    own
    (``_own_code``). The Python bool ``policy_step`` is specialised by dynamo: two graphs per
    configuration (inductor's on-disk cache makes later processes cheaper).
    """

    def update(policy_step, state, batch, noise):
        return sac_update(cfg, policy_step, state, batch, noise)

    if not compile:
        return update
    key = update_key(cfg, device, dtype, batch_size)
    if key in _COMPILED:
        return _COMPILED[key]
    options = {}
    if device.type == "cpu":
        # The C++ wrapper calls the graph's ~100 kernels from C++ instead of Python
        # (BENCHMARKS.md). On CUDA the CUDA graph removes that cost.
        options["cpp_wrapper"] = CPP_WRAPPER
        options.update(kernel_thread_options(cfg))
    # a tag derived from the key, the same in every process: a background compile's cache
    # entries are then this process's (fastsac.background_compile)
    tag = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
    compiled = torch.compile(_own_code(update, tag), fullgraph=True,
                             dynamic=False, options=options)
    _COMPILED[key] = compiled
    return compiled
