"""The fused ops of fastsac, ``torch.ops.fastsac.*``: the tanh-Normal head (``tanh_normal`` and
its fused ``tanh_normal_backward``), the multi-tensor Polyak update (``polyak_``), and two CPU ops
of the fast paths: ``mm`` (the update's products, in AVX-512 tiles) and ``policy_action`` (one
call per ``select_action``).

``adam_`` is the eager update's fused Adam step (CPU). The C++/CUDA extension ``fastsac._C``
defines the schemas and kernels (``csrc/``); this module
registers what torch needs from Python, after the model of ``pytorch/extension-cpp``: fake
kernels (so ``torch.compile`` traces the ops) and autograd (``torch.library.register_autograd``).
The update differentiates through :class:`TanhNormal` and :func:`linear`, autograd Functions with
the same backward that ``torch.func`` transforms can run, as they cannot run the dispatcher-level
formula.

If the extension is missing, the same schemas get pure-torch kernels here, a loud
``RuntimeWarning`` says so, ``EXTENSION_LOADED`` is False and ``require_extension()`` raises
(the test suite calls it, so it fails on a broken build).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

_SQUASH_EPS = 1e-7  # the notebook's guard in log(1 - a^2 + 1e-7)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
CPU_SIMD_BUILDS = ("portable", "avx2", "avx512")

_SCHEMAS = {
    "tanh_normal": "tanh_normal(Tensor mean_raw, Tensor log_std_raw, Tensor eps, "
    "float log_std_min, float log_std_max, bool tanh_mean=True) -> (Tensor, Tensor)",
    "tanh_normal_backward": "tanh_normal_backward(Tensor grad_action, Tensor grad_log_prob, "
    "Tensor mean_raw, Tensor log_std_raw, Tensor eps, float log_std_min, float log_std_max, "
    "bool tanh_mean=True) -> (Tensor, Tensor)",
    "polyak_": "polyak_(Tensor(a!)[] target, Tensor[] source, float tau) -> ()",
    "adam_": "adam_(Tensor(a!) param, Tensor(b!) exp_avg, Tensor(c!) exp_avg_sq, Tensor(d!) steps, "
    "Tensor[] grads, Tensor settings) -> ()",
    "mm": "mm(Tensor a, Tensor b) -> Tensor",
    "policy_action": "policy_action(Tensor state, Tensor[] actor, Tensor? eps, "
    "float log_std_min, float log_std_max, bool tanh_mean=True) -> Tensor",
    "_product_threads": "_product_threads(int threads) -> int",
}

try:
    from fastsac import _C  # noqa: F401  (loading it registers the ops)

    EXTENSION_LOADED = True
    EXTENSION_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    EXTENSION_LOADED = False
    EXTENSION_ERROR = f"{type(exc).__name__}: {exc}"


# ---- pure-torch kernels: the fallback (same math as csrc/tanh_normal_math.h) ---------------
def _tanh_normal_torch(mean_raw, log_std_raw, eps, log_std_min, log_std_max, tanh_mean=True):
    mean = torch.tanh(mean_raw) if tanh_mean else mean_raw
    log_std = log_std_min + 0.5 * (log_std_max - log_std_min) * (torch.tanh(log_std_raw) + 1)
    action = torch.tanh(mean + torch.exp(log_std) * eps)
    term = -0.5 * eps * eps - log_std - _LOG_SQRT_2PI - torch.log(1 - action * action + _SQUASH_EPS)
    return action, term.sum(-1, keepdim=True)


def _tanh_normal_backward_torch(grad_action, grad_log_prob, mean_raw, log_std_raw, eps,
                                log_std_min, log_std_max, tanh_mean=True):
    half_range = 0.5 * (log_std_max - log_std_min)
    mean = torch.tanh(mean_raw) if tanh_mean else mean_raw
    t = torch.tanh(log_std_raw)
    std = torch.exp(log_std_min + half_range * (t + 1))
    a = torch.tanh(mean + std * eps)
    one_minus_a2 = 1 - a * a
    g_z = (grad_action + grad_log_prob * 2 * a / (one_minus_a2 + _SQUASH_EPS)) * one_minus_a2
    g_mean_raw = g_z * (1 - mean * mean) if tanh_mean else g_z
    return g_mean_raw, (g_z * eps * std - grad_log_prob) * half_range * (1 - t * t)


def _policy_action_torch(state, actor, eps, log_std_min, log_std_max, tanh_mean=True):
    *trunk, w_ls, b_ls, w_mu, b_mu = actor
    h = state
    for w, b in zip(trunk[::2], trunk[1::2], strict=True):
        h = torch.relu(F.linear(h, w, b))
    mean_raw = F.linear(h, w_mu, b_mu)
    eps = torch.zeros_like(mean_raw) if eps is None else eps.reshape(mean_raw.shape)
    return _tanh_normal_torch(mean_raw, F.linear(h, w_ls, b_ls), eps, log_std_min, log_std_max,
                              tanh_mean)[0]


_fallback_product_threads = [0]


def _product_threads_torch(threads):
    previous, _fallback_product_threads[0] = _fallback_product_threads[0], threads
    return previous


def _polyak_torch(target, source, tau):
    for t, s in zip(target, source, strict=True):
        t.copy_(tau * s + (1.0 - tau) * t)


def adam_step(group, grad: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One Adam step of a flat group ``(params, exp_avg, exp_avg_sq, steps)``, out of place:
    ``torch.optim.Adam``'s arithmetic, L2 weight decay included; ``s``: the optimizer's
    ``[lr, beta1, beta2, eps, weight_decay]``. What the compiled update runs (inductor fuses it
    into one loop), and the fallback of ``fastsac::adam_``."""
    params, exp_avg, exp_avg_sq, steps = group
    lr, beta1, beta2, eps, weight_decay = s.to(params.dtype).unbind()
    grad = grad + weight_decay * params
    steps = steps + 1
    exp_avg = exp_avg.lerp(grad, 1 - beta1)
    exp_avg_sq = exp_avg_sq * beta2 + grad * grad * (1 - beta2)
    step = steps[0].to(params.dtype)  # a group's parameters share one count
    bias_correction1 = 1 - beta1 ** _power_step(step, beta1)
    bias_correction2_sqrt = torch.sqrt(1 - beta2 ** _power_step(step, beta2))
    denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
    return params - lr / bias_correction1 * (exp_avg / denom), exp_avg, exp_avg_sq, steps


def _power_step(step: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """The step for ``beta ** step``, capped where the cap changes no result. Why: beta ** step
    underflows float32 after some hundred steps, and libm's pow takes a slow path at every
    underflow, inside each Adam loop of the compiled graph. From the cap on beta ** step <
    2 ** -55, so 1 - beta ** step is 1.0 exactly, capped or not."""
    return torch.clamp(step, max=torch.ceil(55 * math.log(2) / -torch.log(beta)))


def adam_torch_(param, exp_avg, exp_avg_sq, steps, grads, settings) -> None:
    """``fastsac::adam_`` in torch ops: its fallback, and the compiled update's step."""
    group = (param, exp_avg, exp_avg_sq, steps)
    grad = torch.cat([g.reshape(-1) for g in grads])
    for t, new in zip(group, adam_step(group, grad, settings), strict=True):
        t.copy_(new)


if not EXTENSION_LOADED:  # pragma: no cover - exercised only on broken installs
    warnings.warn(
        "fastsac: the C++/CUDA extension fastsac._C did not load "
        f"({EXTENSION_ERROR}). Falling back to PURE-TORCH ops: results are the same, speed is not. "
        "Rebuild with `pip install --no-build-isolation -e .` (needs a C++ compiler).",
        RuntimeWarning, stacklevel=2)
    _fallback_lib = torch.library.Library("fastsac", "DEF")
    for _schema in _SCHEMAS.values():
        _fallback_lib.define(_schema)
    for _name, _fn in (("tanh_normal", _tanh_normal_torch),
                       ("tanh_normal_backward", _tanh_normal_backward_torch),
                       ("polyak_", _polyak_torch), ("adam_", adam_torch_), ("mm", torch.mm),
                       ("policy_action", _policy_action_torch),
                       ("_product_threads", _product_threads_torch)):
        _fallback_lib.impl(_name, _fn, "CompositeExplicitAutograd")


# ---- fake kernels: output shapes only, so torch.compile traces the ops ------------------------
@torch.library.register_fake("fastsac::tanh_normal")
def _tanh_normal_fake(mean_raw, log_std_raw, eps, log_std_min, log_std_max, tanh_mean=True):
    torch._check(mean_raw.shape == log_std_raw.shape and mean_raw.shape == eps.shape)
    log_prob = mean_raw.new_empty((*mean_raw.shape[:-1], 1))
    return torch.empty_like(mean_raw, memory_format=torch.contiguous_format), log_prob


@torch.library.register_fake("fastsac::tanh_normal_backward")
def _tanh_normal_backward_fake(grad_action, grad_log_prob, mean_raw, log_std_raw, eps,
                               log_std_min, log_std_max, tanh_mean=True):
    like = {"memory_format": torch.contiguous_format}
    return torch.empty_like(mean_raw, **like), torch.empty_like(mean_raw, **like)


@torch.library.register_fake("fastsac::polyak_")
def _polyak_fake(target, source, tau):
    return None


@torch.library.register_fake("fastsac::adam_")
def _adam_fake(param, exp_avg, exp_avg_sq, steps, grads, settings):
    return None


@torch.library.register_fake("fastsac::policy_action")
def _policy_action_fake(state, actor, eps, log_std_min, log_std_max, tanh_mean=True):
    return state.new_empty((*state.shape[:-1], actor[-2].shape[0]))


@torch.library.register_fake("fastsac::mm")
def _mm_fake(a, b):
    torch._check(a.dim() == 2 and b.dim() == 2 and a.shape[1] == b.shape[0])
    return a.new_empty((a.shape[0], b.shape[1]))


# ---- autograd: one backward formula, for the dispatcher and for torch.func --------------------
def _tanh_normal_setup_context(ctx, inputs, output):
    mean_raw, log_std_raw, eps, log_std_min, log_std_max, *rest = inputs
    ctx.save_for_backward(mean_raw, log_std_raw, eps)
    ctx.head = (log_std_min, log_std_max, bool(rest[0]) if rest else True)


def _tanh_normal_grads(ctx, grad_action, grad_log_prob):
    mean_raw, log_std_raw, eps = ctx.saved_tensors
    if grad_action is None:  # an output that did not reach the loss
        grad_action = torch.zeros_like(mean_raw)
    if grad_log_prob is None:
        grad_log_prob = mean_raw.new_zeros((*mean_raw.shape[:-1], 1))
    g_mean, g_log_std = torch.ops.fastsac.tanh_normal_backward(
        grad_action, grad_log_prob, mean_raw, log_std_raw, eps, *ctx.head)
    return g_mean, g_log_std, None, None, None, None


torch.library.register_autograd("fastsac::tanh_normal", _tanh_normal_grads,
                                setup_context=_tanh_normal_setup_context)


class TanhNormal(torch.autograd.Function):
    """``fastsac::tanh_normal`` with its fused backward, in the form ``torch.func`` runs (the
    update's gradients)."""

    @staticmethod
    def forward(mean_raw, log_std_raw, eps, log_std_min, log_std_max, tanh_mean):
        return torch.ops.fastsac.tanh_normal(mean_raw, log_std_raw, eps, log_std_min,
                                             log_std_max, tanh_mean)

    setup_context = staticmethod(_tanh_normal_setup_context)
    backward = staticmethod(_tanh_normal_grads)


class _TiledLinear(torch.autograd.Function):
    """``x @ w.T + b`` with the product in ``fastsac::mm``'s tiles; ``wt`` is ``w.T`` made
    contiguous once per update (the tiles read their right operand row-major)."""

    @staticmethod
    def forward(x, w, wt, b):
        return torch.ops.fastsac.mm(x, wt) + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, _, _ = inputs
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return (torch.ops.fastsac.mm(g, w), torch.ops.fastsac.mm(g.t(), x), None, g.sum(0))


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
           wt: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, or, given ``wt`` (``w.T`` contiguous), the same product in the AVX-512 tiles
    of ``fastsac::mm``."""
    return F.linear(x, w, b) if wt is None else _TiledLinear.apply(x, w, wt, b)


# ---- Python entry points ------------------------------------------------------------------------
def tanh_normal(mean_raw: torch.Tensor, log_std_raw: torch.Tensor, eps: torch.Tensor,
                log_std_min: float, log_std_max: float,
                tanh_mean: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused tanh-Normal sample and log-prob (docs/design.md, "The actor heads").

    ``mean_raw``, ``log_std_raw``: the raw outputs of the actor's ``mu_layer`` and
    ``log_std_layer``, ``[..., A]``; ``eps``: standard-normal noise of that shape (zeros: the
    deterministic action). ``tanh_mean``: squash the mean (the notebook's head, SAC v1) or not
    (SB3's and CleanRL's, v2). Returns ``(action [..., A] in (-1, 1), log_prob [..., 1])``,
    differentiable w.r.t. ``mean_raw`` and ``log_std_raw`` (also under ``torch.func``)."""
    return TanhNormal.apply(mean_raw, log_std_raw, eps, float(log_std_min), float(log_std_max),
                            bool(tanh_mean))


def polyak_(target: Sequence[torch.Tensor], source: Sequence[torch.Tensor], tau: float) -> None:
    """In place, for every i: ``target[i] <- tau * source[i] + (1 - tau) * target[i]``, one call
    for the whole list."""
    torch.ops.fastsac.polyak_(list(target), list(source), float(tau))


def require_extension() -> None:
    """Raise ``RuntimeError`` if the compiled extension is not what is running."""
    if not EXTENSION_LOADED:
        raise RuntimeError(f"fastsac._C is not loaded ({EXTENSION_ERROR}); the pure-torch "
                           "fallback is running. Rebuild: pip install --no-build-isolation -e .")


_product_threads_now: int | None = None


def set_product_threads(threads: int) -> None:
    """The thread count of ``fastsac::mm`` on CPU (0: torch's), for this process. Unlike
    ``torch.set_num_threads`` it is no state that ``torch.compile`` guards on, so one compiled
    update serves every count (fastsac.threads)."""
    global _product_threads_now
    if threads != _product_threads_now:
        torch.ops.fastsac._product_threads(int(threads))
        _product_threads_now = threads


def cpu_simd(request: str | None = None) -> str:
    """The build of the float32 CPU kernels in use: ``"portable"``, ``"avx2"`` or ``"avx512"``
    (the best this CPU has, or ``FASTSAC_CPU_SIMD``). Pass a name to switch, for this process;
    a build the CPU lacks raises ``RuntimeError``."""
    require_extension()
    if request is not None and request not in CPU_SIMD_BUILDS:
        raise ValueError(f"cpu_simd: {request!r} is not one of {CPU_SIMD_BUILDS}")
    return torch.ops.fastsac._cpu_simd(request or "")


# The CPU vendors on whose AVX-512 CPUs the tiles of fastsac::mm were measured to beat MKL at
# the update's products; on the others MKL was faster (BENCHMARKS.md, "The AVX-512 tiles").
TILES_VENDORS = ("AuthenticAMD",)


def cpu_fields() -> dict[str, str]:
    """The first CPU's fields in ``/proc/cpuinfo`` (``vendor_id``, ``cpu family``, ``model``,
    ``model name``, ``flags``, ...); empty where Linux does not say."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_vendor() -> str:
    """The CPU's vendor id (``GenuineIntel``, ``AuthenticAMD``; "" where Linux does not say)."""
    return cpu_fields().get("vendor_id", "")


def tiles_pay() -> bool:
    """Whether FastSAC runs the update's hidden products in ``fastsac::mm``'s AVX-512 tiles: with
    the AVX-512 build on a CPU of ``TILES_VENDORS``. ``FASTSAC_TILES=1`` (or ``0``) turns them on
    (off) on any AVX-512 CPU: the test suite holds them to the reference wherever it runs."""
    if not (EXTENSION_LOADED and cpu_simd() == "avx512"):
        return False
    forced = os.environ.get("FASTSAC_TILES", "")
    return forced == "1" if forced in ("0", "1") else cpu_vendor() in TILES_VENDORS


def kernel_build() -> str:
    """What runs the CPU ops, for reports."""
    return cpu_simd() if EXTENSION_LOADED else "pure-torch FALLBACK"


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether the op ``namespace::name`` exists and has a kernel for ``dispatch_key``."""
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(op, dispatch_key)
    except RuntimeError:  # no such op
        return False


def has_cuda_kernels() -> bool:
    """True when the loaded extension has CUDA kernels registered for the ops."""
    return EXTENSION_LOADED and has_kernel("fastsac::tanh_normal", "CUDA")
