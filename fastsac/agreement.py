"""Agreement between the eager reference and FastSAC: twin agents with equal weights fed the
same batches and noise, and the differences of their parameters. Used by the tests and by
``fastsac check``."""

from __future__ import annotations

import numpy as np
import torch

from fastsac import native_update
from fastsac.agent import FastSAC
from fastsac.envs import make_env
from fastsac.reference import SACAgent
from fastsac.state import BATCH_KEYS, MODULES, OPTIMIZERS


def random_batch(rng: np.random.Generator, batch: int, obs_dim: int, act_dim: int) -> dict:
    """A sample_batch()-shaped dict of random transitions."""
    acts = rng.uniform(-1, 1, size=(batch, act_dim)).astype(np.float32)
    return {
        "obs": rng.normal(size=(batch, obs_dim)).astype(np.float32),
        "next_obs": rng.normal(size=(batch, obs_dim)).astype(np.float32),
        "acts": acts.reshape(-1) if act_dim == 1 else acts,
        "rews": rng.normal(size=batch).astype(np.float32),
        "done": (rng.uniform(size=batch) < 0.2).astype(np.float32),
    }


def copy_weights(src, dst) -> None:
    with torch.no_grad():
        for name in MODULES:
            getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
        dst.log_alpha.copy_(src.log_alpha)


def twin_agents(device="cpu", dtype=torch.float32, compile=False, env_id="Pendulum-v1",
                batch_size=32, fast_cls=FastSAC, fast_kwargs=None, native=False, **kwargs):
    """A reference agent and a FastSAC agent with identical initial weights (``kwargs`` go to
    both: ``hidden_sizes``, ``lr``, ...; FastSAC's own, ``cuda_graph`` and ``update_threads``,
    to FastSAC alone). ``native``: FastSAC's updates run the ahead-of-time C++ op
    (``fastsac.native_update.run_natively``; needs ``compile=False``)."""
    fast_kwargs = dict(fast_kwargs or {})
    for key in ("cuda_graph", "update_threads"):
        if key in kwargs:
            fast_kwargs[key] = kwargs.pop(key)
    ref = SACAgent(make_env(env_id), 1000, batch_size, device=device, dtype=dtype, seed=0,
                   **kwargs)
    fast = fast_cls(make_env(env_id), 1000, batch_size, device=device, dtype=dtype, seed=1,
                    compile=compile, **kwargs, **fast_kwargs)
    copy_weights(ref, fast)
    if native:
        native_update.run_natively(fast)  # raises where the extension has no such op
    return ref, fast


def max_param_diff(a, b) -> float:
    """Largest |difference| over every parameter, log_alpha included."""
    worst = (a.log_alpha.detach() - b.log_alpha.detach().to(a.log_alpha.device)).abs().max().item()
    for name in MODULES:
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters(), strict=True):
            worst = max(worst, (p.detach() - q.detach().to(p.device)).abs().max().item())
    return worst


def max_param_rel_diff(a, b) -> float:
    """Largest norm-wise relative difference of a parameter tensor."""
    worst = 0.0
    for name in MODULES:
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters(), strict=True):
            diff = torch.linalg.vector_norm(p.detach() - q.detach().to(p.device))
            scale = torch.linalg.vector_norm(p.detach()).clamp_min(1e-30)
            worst = max(worst, (diff / scale).item())
    return worst


def max_adam_diff(a, b) -> float:
    """Largest |difference| of the Adam moments; the step counts must match exactly."""
    worst = 0.0
    for name in OPTIMIZERS:
        sa, sb = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        if sa.keys() != sb.keys():
            raise AssertionError(f"{name}: parameters with state differ")
        for k in sa:
            if float(sa[k]["step"]) != float(sb[k]["step"]):
                raise AssertionError(f"{name}[{k}]: step {float(sa[k]['step'])} vs "
                                     f"{float(sb[k]['step'])}")
            for key in ("exp_avg", "exp_avg_sq"):
                diff = (sa[k][key] - sb[k][key].to(sa[k][key].device)).abs().max().item()
                worst = max(worst, diff)
    return worst


def run_twins(ref, fast, n_updates: int, seed: int = 0, start_step: int = 1,
              check_losses: bool = True) -> tuple[float, float]:
    """Feed both agents the same batches and noise for ``n_updates`` updates (steps
    ``start_step``, ``start_step + 1``, ...). Returns the max parameter difference after the
    first update and after the last."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    after_one = None
    for i in range(n_updates):
        batch = random_batch(rng, ref.batch_size, ref.obs_dim, ref.action_dim)
        noise = torch.randn(ref.batch_size, ref.action_dim, dtype=torch.float64, generator=gen)
        ref.total_step = fast.total_step = start_step + i
        ref_losses = ref.update_model(batch, noise)
        fast_losses = fast.update_model(batch, noise)
        if i == 0:
            after_one = max_param_diff(ref, fast)
            if check_losses:
                for r, f in zip(ref_losses, fast_losses, strict=True):
                    torch.testing.assert_close(f.cpu().double().reshape(()),
                                               r.cpu().double().reshape(()), rtol=1e-5,
                                               atol=1e-6)
    return after_one, max_param_diff(ref, fast)


def run_graph_twins(ref, fast, n_updates: int, seed: int = 0) -> tuple[tuple, tuple]:
    """The CUDA-graph path samples its own batch and draws its own noise inside the graph: fill
    ``fast``'s buffer with random transitions, then after each graph replay feed the reference the
    batch and noise the graph used. Returns ``(max_abs, max_rel)`` parameter differences after
    the first update and after the last."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        fast.memory.store(rng.normal(size=fast.obs_dim), rng.uniform(-1, 1, fast.action_dim),
                          rng.normal(), rng.normal(size=fast.obs_dim), rng.uniform() < 0.1)
    after_one = None
    for step in range(1, n_updates + 1):
        ref.total_step = fast.total_step = step
        fast.update_model()
        batch = {k: t.cpu().numpy() for k, t in zip(BATCH_KEYS, fast._static, strict=True)}
        ref.update_model(batch, fast._static_noise.clone())
        if step == 1:
            after_one = (max_param_diff(ref, fast), max_param_rel_diff(ref, fast))
    return after_one, (max_param_diff(ref, fast), max_param_rel_diff(ref, fast))
