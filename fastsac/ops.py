"""The fused ops of fastsac: ``torch.ops.fastsac.tanh_normal`` and ``torch.ops.fastsac.polyak_``,
and the CPU ops of the fast paths: ``fastsac::mm`` (the update's products) and
``fastsac::policy_action`` (``select_action``).

Loads the C++/CUDA extension ``fastsac._C`` (which defines the schemas and the CPU/CUDA kernels)
and registers, from Python, what torch.compile needs: fake kernels (shape propagation without
data). The autograd formulas of ``tanh_normal`` (its hand-written fused backward,
``tanh_normal_backward``) and of ``mm`` are registered by the extension in C++, and from here
for the fallback.

If the extension is missing, the same schemas are defined here with pure-torch kernels so that
everything still runs, slower, and a loud ``RuntimeWarning`` says so. ``EXTENSION_LOADED`` tells
which one you got; ``require_extension()`` raises when it is the fallback (tests call it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

__all__ = [
    "EXTENSION_LOADED",
    "EXTENSION_ERROR",
    "LOG_STD_MIN",
    "LOG_STD_MAX",
    "tanh_normal",
    "polyak_",
    "require_extension",
    "has_cuda_kernels",
    "has_kernel",
    "cpu_simd",
    "kernel_build",
    "CPU_SIMD_BUILDS",
    "set_product_threads",
]

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
_SQUASH_EPS = 1e-7
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

_SCHEMAS = {
    "tanh_normal": "tanh_normal(Tensor mean_raw, Tensor log_std_raw, Tensor eps, "
    "float log_std_min, float log_std_max) -> (Tensor, Tensor)",
    "tanh_normal_backward": "tanh_normal_backward(Tensor grad_action, Tensor grad_log_prob, "
    "Tensor mean_raw, Tensor log_std_raw, Tensor eps, float log_std_min, float log_std_max) "
    "-> (Tensor, Tensor)",
    "polyak_": "polyak_(Tensor(a!)[] target, Tensor[] source, float tau) -> ()",
    "mm": "mm(Tensor a, Tensor b) -> Tensor",
    "policy_action": "policy_action(Tensor state, Tensor[] actor, Tensor eps, "
    "float log_std_min, float log_std_max) -> Tensor",
    "_product_threads": "_product_threads(int threads) -> int",
}

try:
    from fastsac import _C  # noqa: F401  (loading it registers the ops)

    EXTENSION_LOADED = True
    EXTENSION_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    EXTENSION_LOADED = False
    EXTENSION_ERROR = f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Pure-torch kernels: the fallback when the extension is missing. Same math as
# csrc/tanh_normal_math.h (see the derivation there).
# --------------------------------------------------------------------------------------------
def _tanh_normal_torch(mean_raw, log_std_raw, eps, log_std_min, log_std_max):
    mean = torch.tanh(mean_raw)
    log_std = log_std_min + 0.5 * (log_std_max - log_std_min) * (torch.tanh(log_std_raw) + 1)
    action = torch.tanh(mean + torch.exp(log_std) * eps)
    term = -0.5 * eps * eps - log_std - _LOG_SQRT_2PI - torch.log(1 - action * action + _SQUASH_EPS)
    return action, term.sum(-1, keepdim=True)


def _tanh_normal_backward_torch(grad_action, grad_log_prob, mean_raw, log_std_raw, eps,
                                log_std_min, log_std_max):
    half_range = 0.5 * (log_std_max - log_std_min)
    mean = torch.tanh(mean_raw)
    t = torch.tanh(log_std_raw)
    log_std = log_std_min + half_range * (t + 1)
    std = torch.exp(log_std)
    a = torch.tanh(mean + std * eps)
    one_minus_a2 = 1 - a * a
    g_z = (grad_action + grad_log_prob * 2 * a / (one_minus_a2 + _SQUASH_EPS)) * one_minus_a2
    g_mean_raw = g_z * (1 - mean * mean)
    g_log_std_raw = (g_z * eps * std - grad_log_prob) * half_range * (1 - t * t)
    return g_mean_raw, g_log_std_raw


def _policy_action_torch(state, actor, eps, log_std_min, log_std_max):
    *trunk, w_ls, b_ls, w_mu, b_mu = actor
    h = state
    for w, b in zip(trunk[::2], trunk[1::2], strict=True):
        h = torch.relu(torch.nn.functional.linear(h, w, b))
    return _tanh_normal_torch(torch.nn.functional.linear(h, w_mu, b_mu),
                              torch.nn.functional.linear(h, w_ls, b_ls), eps, log_std_min,
                              log_std_max)[0]


_fallback_product_threads = [0]


def _product_threads_torch(threads):
    previous, _fallback_product_threads[0] = _fallback_product_threads[0], threads
    return previous


def _polyak_torch(target, source, tau):
    for t, s in zip(target, source, strict=True):
        t.copy_(tau * s + (1.0 - tau) * t)


if not EXTENSION_LOADED:  # pragma: no cover - exercised only on broken installs
    warnings.warn(
        "fastsac: the C++/CUDA extension fastsac._C did not load "
        f"({EXTENSION_ERROR}). Falling back to PURE-TORCH ops: results are the same, speed is not. "
        "Rebuild with `pip install --no-build-isolation -e .` (needs a C++ compiler).",
        RuntimeWarning,
        stacklevel=2,
    )
    _fallback_lib = torch.library.Library("fastsac", "DEF")
    for _schema in _SCHEMAS.values():
        _fallback_lib.define(_schema)
    _fallback_lib.impl("tanh_normal", _tanh_normal_torch, "CompositeExplicitAutograd")
    _fallback_lib.impl(
        "tanh_normal_backward", _tanh_normal_backward_torch, "CompositeExplicitAutograd"
    )
    _fallback_lib.impl("polyak_", _polyak_torch, "CompositeExplicitAutograd")
    _fallback_lib.impl("mm", torch.mm, "CompositeExplicitAutograd")
    _fallback_lib.impl("policy_action", _policy_action_torch, "CompositeExplicitAutograd")
    _fallback_lib.impl("_product_threads", _product_threads_torch, "CompositeExplicitAutograd")


# --------------------------------------------------------------------------------------------
# Fake kernels: output shapes only, so torch.compile traces the ops without a graph break.
# --------------------------------------------------------------------------------------------
@torch.library.register_fake("fastsac::tanh_normal")
def _tanh_normal_fake(mean_raw, log_std_raw, eps, log_std_min, log_std_max):
    torch._check(mean_raw.shape == log_std_raw.shape and mean_raw.shape == eps.shape)
    log_prob = mean_raw.new_empty((*mean_raw.shape[:-1], 1))
    return torch.empty_like(mean_raw, memory_format=torch.contiguous_format), log_prob


@torch.library.register_fake("fastsac::tanh_normal_backward")
def _tanh_normal_backward_fake(grad_action, grad_log_prob, mean_raw, log_std_raw, eps,
                               log_std_min, log_std_max):
    return (
        torch.empty_like(mean_raw, memory_format=torch.contiguous_format),
        torch.empty_like(mean_raw, memory_format=torch.contiguous_format),
    )


@torch.library.register_fake("fastsac::polyak_")
def _polyak_fake(target, source, tau):
    return None


@torch.library.register_fake("fastsac::policy_action")
def _policy_action_fake(state, actor, eps, log_std_min, log_std_max):
    return state.new_empty((*state.shape[:-1], actor[-2].shape[0]))


@torch.library.register_fake("fastsac::mm")
def _mm_fake(a, b):
    torch._check(a.dim() == 2 and b.dim() == 2 and a.shape[1] == b.shape[0])
    return a.new_empty((a.shape[0], b.shape[1]))


# --------------------------------------------------------------------------------------------
# Autograd, for the fallback: the extension registers these same formulas in C++
# (csrc/autograd.cpp: a Python autograd wrapper costs more than the fused kernels at SAC's batch
# sizes, and runs even under no_grad). tanh_normal: d/dmean_raw and d/dlog_std_raw in one fused
# backward op.
# --------------------------------------------------------------------------------------------
def _tanh_normal_setup_context(ctx, inputs, output):
    mean_raw, log_std_raw, eps, log_std_min, log_std_max = inputs
    ctx.save_for_backward(mean_raw, log_std_raw, eps)
    ctx.log_std_range = (log_std_min, log_std_max)


def _tanh_normal_autograd_backward(ctx, grad_action, grad_log_prob):
    mean_raw, log_std_raw, eps = ctx.saved_tensors
    if grad_action is None:
        grad_action = torch.zeros_like(mean_raw)
    if grad_log_prob is None:
        grad_log_prob = mean_raw.new_zeros((*mean_raw.shape[:-1], 1))
    g_mean, g_log_std = torch.ops.fastsac.tanh_normal_backward(
        grad_action, grad_log_prob, mean_raw, log_std_raw, eps, *ctx.log_std_range
    )
    return g_mean, g_log_std, None, None, None


def _mm_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _mm_autograd_backward(ctx, grad):
    a, b = ctx.saved_tensors
    return torch.ops.fastsac.mm(grad, b.t()), torch.ops.fastsac.mm(a.t(), grad)


if not EXTENSION_LOADED:  # pragma: no cover - exercised only on broken installs
    torch.library.register_autograd(
        "fastsac::tanh_normal",
        _tanh_normal_autograd_backward,
        setup_context=_tanh_normal_setup_context,
    )
    torch.library.register_autograd(
        "fastsac::mm", _mm_autograd_backward, setup_context=_mm_setup_context
    )


# --------------------------------------------------------------------------------------------
# Python wrappers
# --------------------------------------------------------------------------------------------
def tanh_normal(
    mean_raw: torch.Tensor,
    log_std_raw: torch.Tensor,
    eps: torch.Tensor,
    log_std_min: float = LOG_STD_MIN,
    log_std_max: float = LOG_STD_MAX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused tanh-Normal sample and log-prob.

    Args:
        mean_raw: raw output of the actor's ``mu_layer`` (before tanh), ``[..., A]``.
        log_std_raw: raw output of ``log_std_layer`` (before tanh), ``[..., A]``.
        eps: standard-normal noise, ``[..., A]``.
        log_std_min: lower end of the log-std range.
        log_std_max: upper end of the log-std range.

    Returns:
        ``(action, log_prob)``: the squashed action ``[..., A]`` in (-1, 1) and the summed
        log-density ``[..., 1]``, differentiable w.r.t. ``mean_raw`` and ``log_std_raw``.
    """
    return torch.ops.fastsac.tanh_normal(
        mean_raw, log_std_raw, eps, float(log_std_min), float(log_std_max)
    )


def polyak_(target: Sequence[torch.Tensor], source: Sequence[torch.Tensor], tau: float) -> None:
    """In place, for every i: ``target[i] <- tau * source[i] + (1 - tau) * target[i]``.

    One call (one launch per 48 tensors on CUDA) for the whole list.
    """
    if not isinstance(target, list):
        target = list(target)
    if not isinstance(source, list):
        source = list(source)
    torch.ops.fastsac.polyak_(target, source, float(tau))


def require_extension() -> None:
    """Raise ``RuntimeError`` if the compiled extension is not what is running."""
    if not EXTENSION_LOADED:
        raise RuntimeError(f"fastsac._C is not loaded ({EXTENSION_ERROR}); the pure-torch "
                           "fallback is running. Rebuild: pip install --no-build-isolation -e .")


_product_threads_now: int | None = None


def set_product_threads(threads: int) -> None:
    """The thread count of ``fastsac::mm`` on CPU (0: torch's count), for this process.

    FastSAC's ``update_threads`` sets it before each update. Unlike ``torch.set_num_threads``
    it is no global state that ``torch.compile`` guards on, so one compiled update serves every
    count. Remembered here, so an unchanged count costs no op call."""
    global _product_threads_now
    if threads != _product_threads_now:
        torch.ops.fastsac._product_threads(int(threads))
        _product_threads_now = threads


CPU_SIMD_BUILDS = ("portable", "avx2", "avx512")


def cpu_simd(request: str | None = None) -> str:
    """The build of the float32 CPU kernels in use: ``"portable"``, ``"avx2"`` or ``"avx512"``.

    The best one this CPU has is picked at start-up (``FASTSAC_CPU_SIMD`` overrides it). Pass a
    name to switch, for this process; a build the CPU lacks raises ``RuntimeError``. All builds
    compute the same formula; they differ in speed and, by an ulp or so, in float32 rounding.
    """
    require_extension()
    if request is not None and request not in CPU_SIMD_BUILDS:
        raise ValueError(f"cpu_simd: {request!r} is not one of {CPU_SIMD_BUILDS}")
    return torch.ops.fastsac._cpu_simd(request or "")


def kernel_build() -> str:
    """What runs the CPU ops, for reports: the build in use (``cpu_simd()``), or the
    pure-torch fallback when the extension is missing."""
    return cpu_simd() if EXTENSION_LOADED else "pure-torch FALLBACK"


def has_cuda_kernels() -> bool:
    """True when the loaded extension has CUDA kernels registered for the ops."""
    return EXTENSION_LOADED and has_kernel("fastsac::tanh_normal", "CUDA")


def has_kernel(op: str, dispatch_key: str) -> bool:
    """Whether the op ``namespace::name`` exists and has a kernel for ``dispatch_key`` ("CPU",
    "CUDA"); an extension built before the op has no such op."""
    try:
        return torch._C._dispatch_has_kernel_for_dispatch_key(op, dispatch_key)
    except RuntimeError:  # no such op
        return False
