"""The fast update engine: one SAC update of any variant as one function over flat buffers,
compiled as one graph (or run eagerly: the same function, unchanged).

The update runs the variant's loss (``fastsac.variants``) over networks evaluated from views of
the flat buffers (``fastsac.flat``), takes every network's gradient in one pass of autograd over
the sum of their losses (``torch.func`` inside ``torch.compile``, ``torch.autograd`` eagerly;
the losses hold the other networks constant where the math does), then Adam on each buffer and
Polyak on the targets (the fused ``fastsac::polyak_``). Data-parallel ranks average the
gradients in one all-reduce. Adam's settings (lr, betas, eps, weight decay) come in as a tensor
read from the optimizers before every update, so an lr change or a scheduler takes effect at the
next update without a recompile. Why autograd and not a hand-written backward: in the same
compiled graph both run the same products, and BENCHMARKS.md ("Autograd against the hand-written
backward") has the measurement that let autograd win.
"""

from __future__ import annotations

import hashlib
import math
import os
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from fastsac import distributed, networks, ops
from fastsac.flat import unflatten
from fastsac.variants import VARIANTS, Variant

# Hidden-to-hidden layers whose widths are both in this range run their products in the AVX-512
# tiles of fastsac::mm (float32): where they were measured to beat MKL (BENCHMARKS.md).
TILED_WIDTHS = range(16, 129)
# Up to this width the graph's own CPU kernels run on one thread (their loops cost less than an
# OpenMP fork and join); wider, on torch's count (BENCHMARKS.md, "update_model()").
SERIAL_KERNELS_MAX_WIDTH = 128
# Per optimizer, the Adam settings the update reads: lr, beta1, beta2, eps, weight_decay.
SETTINGS = ("lr", "beta1", "beta2", "eps", "weight_decay")


@dataclass(frozen=True)
class UpdateSpec:
    """What one compiled update bakes in; agents with equal specs share it. The losses read
    ``gamma`` and ``n_critics`` from it as from the agent's settings."""

    variant: str
    n_critics: int
    obs_dim: int
    action_dim: int
    hidden_sizes: tuple[int, ...]
    batch_size: int
    gamma: float
    tau: float
    target_entropy: float
    dtype: str = "float32"
    device: str = "cpu"
    tiled: bool = False  # hidden layers in fastsac::mm's AVX-512 tiles where they pay
    world_size: int = 1  # data-parallel ranks averaging every gradient

    @property
    def impl(self) -> Variant:
        return VARIANTS[self.variant]

    @property
    def nets(self) -> tuple:
        return self.impl.networks(self.n_critics)

    @property
    def trained(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.nets if s.target_of is None)

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """``(target, source)`` pairs."""
        return tuple((s.name, s.target_of) for s in self.nets if s.target_of is not None)

    def shapes(self, name: str) -> tuple[tuple[int, ...], ...]:
        """A network's parameter shapes, in registration order (fastsac.networks)."""
        kind = {s.name: s.kind for s in self.nets}[name]
        width = self.obs_dim + (self.action_dim if kind == "q" else 0)
        shapes = []
        for h in self.hidden_sizes:
            shapes += [(h, width), (h,)]
            width = h
        heads = 2 if kind == "actor" else 1
        out = self.action_dim if kind == "actor" else 1
        return (*shapes, *((out, width), (out,)) * heads)

    @property
    def tiled_layers(self) -> tuple[bool, ...]:
        w = self.hidden_sizes
        return tuple(self.tiled and i > 0 and w[i - 1] in TILED_WIDTHS and w[i] in TILED_WIDTHS
                     for i in range(len(w)))


class UpdateState(NamedTuple):
    """The tensors one update reads and writes, in the spec's order: each trained network's
    Adam group ``(params, exp_avg, exp_avg_sq, steps)``, each target's parameters, log_alpha's
    group, and the settings ``[optimizers, 5]`` (the trained networks', then alpha's)."""

    trained: tuple[tuple[torch.Tensor, ...], ...]
    targets: tuple[torch.Tensor, ...]
    alpha: tuple[torch.Tensor, ...]
    settings: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor, in order (what a CUDA-graph capture saves and restores)."""
        return [*(t for g in self.trained for t in g), *self.targets, *self.alpha, self.settings]


class FlatNets:
    """The networks of one update, evaluated from parameter views (the ``nets`` a variant's loss
    takes). ``wt``: each network's transposed tiled weights, made once per update."""

    def __init__(self, spec: UpdateSpec, params: dict[str, list], wt: dict[str, list]):
        self.spec, self.params, self.wt = spec, params, wt
        self.layers = len(spec.hidden_sizes)

    def _p(self, name: str, frozen: bool) -> list[torch.Tensor]:
        return [t.detach() for t in self.params[name]] if frozen else self.params[name]

    def critic(self, name: str, *inputs: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
        return networks.critic(x, self._p(name, frozen), self.layers, self.wt[name])

    def sample(self, obs: torch.Tensor, eps: torch.Tensor,
               frozen: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        mean_raw, log_std_raw = networks.actor_heads(obs, self._p("actor", frozen), self.layers,
                                                     self.wt["actor"])
        head = self.spec.impl.head
        return ops.tanh_normal(mean_raw, log_std_raw, eps, head.log_std_min, head.log_std_max,
                               head.tanh_mean)


# ---- Adam, as torch.optim.Adam computes it ----------------------------------------------------
def adam_(group: Sequence[torch.Tensor], grads: list[torch.Tensor], s: torch.Tensor) -> None:
    """One Adam step of a network's flat group, in place, from its views' gradients: in torch
    ops inside the compiled graph (inductor fuses them into one loop), eagerly on CPU in one
    call of the fused ``fastsac::adam_`` (a dozen separate passes otherwise; BENCHMARKS.md,
    "Cold start")."""
    if torch.compiler.is_compiling() or not group[0].is_cpu:
        ops.adam_torch_(*group, grads, s)
    else:
        torch.ops.fastsac.adam_(*group, grads, s)


def write(dst: Sequence[torch.Tensor], src: Sequence[torch.Tensor]) -> None:
    for d, s in zip(dst, src, strict=True):
        d.copy_(s)


# ---- gradients in one pass ----------------------------------------------------------------------
def grads_and_aux(fn: Callable, params: list[list[torch.Tensor]]) -> tuple[list, Any]:
    """The gradients of ``fn(*params)[0]`` w.r.t. every list of ``params``, and ``fn``'s aux
    output: ``torch.func.grad`` while ``torch.compile`` traces (it traces into the graph),
    ``torch.autograd.grad`` eagerly (faster than ``torch.func`` run eagerly). One function,
    the same arithmetic."""
    if torch.compiler.is_compiling():
        argnums = tuple(range(len(params)))
        return torch.func.grad(fn, argnums=argnums, has_aux=True)(*params)
    leaves = [[p.detach().requires_grad_() for p in ps] for ps in params]
    with torch.enable_grad():
        total, aux = fn(*leaves)
        flat = torch.autograd.grad(total, [p for ps in leaves for p in ps])
    grads, k = [], 0
    for ps in leaves:
        grads.append(list(flat[k:k + len(ps)]))
        k += len(ps)
    return grads, torch.utils._pytree.tree_map(
        lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux)


def sac_update(spec: UpdateSpec, policy_step: bool, state: UpdateState, batch: Sequence,
               noise: torch.Tensor) -> torch.Tensor:
    """One update in place on ``state``; returns the losses in the order of
    ``Variant.loss_names`` (the actor's NaN when ``policy_step`` is False: none was taken).
    Run under ``torch.no_grad()``."""
    variant, tiled = spec.impl, spec.tiled_layers
    names = spec.trained
    views = {n: unflatten(g[0], spec.shapes(n)) for n, g in zip(names, state.trained,
                                                                  strict=True)}
    views.update({t: unflatten(p, spec.shapes(t)) for (t, _), p in zip(spec.targets,
                                                                         state.targets,
                                                                         strict=True)})
    wt = {n: [v[2 * i].detach().t().contiguous() if on else None for i, on in enumerate(tiled)]
          for n, v in views.items()}
    stepped = [n for n in names if policy_step or n != "actor"]
    obs = batch[0]
    alpha_settings = state.settings[-1]

    def objective(*params):
        nets = FlatNets(spec, {**views, **dict(zip(stepped, params, strict=True))}, wt)
        sample = nets.sample(obs, noise[0])
        # the temperature steps first; the losses see the new alpha
        gap = (sample[1] + spec.target_entropy).detach()
        log_alpha = state.alpha[0]
        alpha_loss = (-log_alpha.exp() * gap).mean()
        alpha_grad = -gap.mean(0) * log_alpha.exp()
        if spec.world_size > 1:
            alpha_grad = distributed.average(alpha_grad, spec.world_size)
        new_alpha = ops.adam_step(state.alpha, alpha_grad, alpha_settings)
        losses = variant.losses(nets, batch, sample, new_alpha[0].exp().detach(), spec, noise)
        return sum(losses[n] for n in stepped), (losses, alpha_loss, new_alpha)

    grads, (losses, alpha_loss, new_alpha) = grads_and_aux(objective,
                                                           [views[n] for n in stepped])
    if spec.world_size > 1:  # every network's gradients, one all-reduce
        sizes = [len(gs) for gs in grads]
        flat = distributed.average_flat([g for gs in grads for g in gs], spec.world_size)
        grads = [flat[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(sizes))]
    write(state.alpha, new_alpha)
    polyak = variant.polyak_every_update or policy_step
    targets = list(state.targets)
    sources = [state.trained[names.index(src)][0] for _, src in spec.targets]
    if polyak and not variant.polyak_after_step:  # blends the sources' pre-step parameters
        torch.ops.fastsac.polyak_(targets, sources, spec.tau)
    for n, gs in zip(stepped, grads, strict=True):
        i = names.index(n)
        adam_(state.trained[i], gs, state.settings[i])
    if polyak and variant.polyak_after_step:
        torch.ops.fastsac.polyak_(targets, sources, spec.tau)
    return variant.report(losses, alpha_loss, policy_step, spec.n_critics)


def zero_state(spec: UpdateSpec, device: torch.device, dtype: torch.dtype) -> UpdateState:
    """An :class:`UpdateState` of zeros of the spec's sizes (for a compile on stand-in data)."""
    like = {"device": device, "dtype": dtype}

    def size(name):
        return sum(math.prod(s) for s in spec.shapes(name))

    def group(n, k):
        return (torch.zeros(n, **like), torch.zeros(n, **like), torch.zeros(n, **like),
                torch.zeros(k, dtype=torch.float32, device=device))

    settings = torch.tensor([[3e-4, 0.9, 0.999, 1e-8, 0.0]] * (len(spec.trained) + 1),
                            dtype=torch.float64, device=device)
    return UpdateState(tuple(group(size(n), len(spec.shapes(n))) for n in spec.trained),
                       tuple(torch.zeros(size(t), **like) for t, _ in spec.targets),
                       group(1, 1), settings)


# ---- compiling ----------------------------------------------------------------------------------
_COMPILED: dict[UpdateSpec, Callable[..., torch.Tensor]] = {}
# FASTSAC_CPP_WRAPPER=0 compiles CPU updates without inductor's C++ wrapper
CPP_WRAPPER = os.environ.get("FASTSAC_CPP_WRAPPER", "1") != "0"


def _own_code(fn: Callable, tag: str) -> Callable:
    """A copy of ``fn`` with its own code object. Why: dynamo keeps its compiled entries per code
    object and fails past ``recompile_limit`` of them; one code object per spec keeps each at its
    two entries (policy step or not), however many agents of other shapes a process makes."""
    code = fn.__code__.replace(co_name=f"{fn.__name__}_{tag}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__,
                              fn.__closure__)


def make_update(spec: UpdateSpec, compile: bool) -> Callable[..., torch.Tensor]:
    """``update(policy_step, state, batch, noise)``: ``sac_update`` with ``spec`` bound,
    compiled as one graph (``fullgraph=True``) if asked, shared by agents of equal specs. The
    compiled function is made at its first call: ``torch.compile`` imports the compiler, which
    a run that learns on the eager update until it ends never needs."""

    def update(policy_step, state, batch, noise):
        return sac_update(spec, policy_step, state, batch, noise)

    if not compile:
        return update

    fn = None

    def compiled(policy_step, state, batch, noise):
        nonlocal fn
        if fn is None:  # looked up once: hashing the spec on every update costs a little each
            if spec not in _COMPILED:
                _COMPILED[spec] = _compile(update, spec)
            fn = _COMPILED[spec]
        return fn(policy_step, state, batch, noise)

    return compiled


def _compile(update: Callable, spec: UpdateSpec) -> Callable[..., torch.Tensor]:
    options = {}
    if spec.device == "cpu":  # the graph's kernels called from C++, not Python
        options["cpp_wrapper"] = CPP_WRAPPER
        if max(spec.hidden_sizes) <= SERIAL_KERNELS_MAX_WIDTH:
            options["cpp.threads"] = 1
    # a tag derived from the spec, the same in every process: a background compile's cache
    # entries are this process's (fastsac.background_compile)
    tag = hashlib.sha1(repr(spec).encode()).hexdigest()[:12]
    return torch.compile(_own_code(update, tag), fullgraph=True, dynamic=False, options=options)


def warm_compile(spec: dict[str, Any], threads: int) -> None:
    """Compile the update of ``spec`` and run each of its graphs once on zeros: what a
    background process does so the training process finds the caches filled."""
    torch.set_num_threads(threads)
    spec = UpdateSpec(**{**spec, "hidden_sizes": tuple(spec["hidden_sizes"])})
    dtype, device = getattr(torch, spec.dtype), torch.device(spec.device)
    state = zero_state(spec, device, dtype)
    state.alpha[0].zero_()
    b = spec.batch_size
    batch = tuple(torch.zeros(b, w, device=device, dtype=dtype)
                  for w in (spec.obs_dim, spec.obs_dim, spec.action_dim, 1, 1))
    noise = torch.zeros(spec.impl.noise_draws, b, spec.action_dim, device=device, dtype=dtype)
    update = make_update(spec, compile=True)
    with torch.no_grad():
        for policy_step in (False, True):
            update(policy_step, state, batch, noise)
