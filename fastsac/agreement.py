"""Agreement between the eager reference and FastSAC: twin agents with equal weights fed the same
batches and noise, the differences of their parameters, and the tolerances they are held to
(the tests and ``fastsac check`` both read ``TOLERANCES``)."""

from __future__ import annotations

import numpy as np
import torch

from fastsac.envs import make_env
from fastsac.state import modules, optimizers

# (float32, float64): the largest parameter difference from the reference accepted after one
# update and after many; the fused ops against their composite formula (norm-wise relative);
# polyak_ against the loop (absolute). float32 over many updates: docs/design.md, "Agreement".
TOLERANCES = {"update x1": (1e-5, 1e-12), "update xN": (5e-4, 1e-10), "op": (1e-4, 1e-7),
              "polyak": (1e-6, 1e-14)}


def tolerance(name: str, dtype: torch.dtype) -> float:
    return TOLERANCES[name][dtype == torch.float64]


def random_batch(rng: np.random.Generator, batch: int, obs_dim: int, act_dim: int) -> dict:
    """A sample_batch()-shaped dict of random transitions."""
    acts = rng.uniform(-1, 1, size=(batch, act_dim)).astype(np.float32)
    return {"obs": rng.normal(size=(batch, obs_dim)).astype(np.float32),
            "next_obs": rng.normal(size=(batch, obs_dim)).astype(np.float32),
            "acts": acts.reshape(-1) if act_dim == 1 else acts,
            "rews": rng.normal(size=batch).astype(np.float32),
            "done": (rng.uniform(size=batch) < 0.2).astype(np.float32)}


def fill_random(buf):
    """Fill a replay buffer (either kind) to capacity with random transitions, bypassing
    store(): the tests and the benchmarks update from it without running an env."""
    rng = np.random.default_rng(0)
    buf.obs_buf[:] = rng.normal(size=buf.obs_buf.shape)
    buf.next_obs_buf[:] = rng.normal(size=buf.next_obs_buf.shape)
    buf.acts_buf[:] = rng.uniform(-1, 1, size=buf.acts_buf.shape)
    buf.rews_buf[:] = rng.normal(size=buf.rews_buf.shape)
    buf.size, buf.ptr = buf.max_size, 0
    return buf


def copy_weights(src, dst) -> None:
    with torch.no_grad():
        for name in modules(src):
            getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
        dst.log_alpha.copy_(src.log_alpha)


def twin_agents(device="cpu", dtype=torch.float32, env_id="Pendulum-v1", batch_size=32,
                fast_kwargs=None, **kwargs):
    """A reference agent and a FastSAC agent with identical initial weights; ``kwargs`` go to
    both (``variant``, ``hidden_sizes``, ...), ``fast_kwargs`` to FastSAC alone (``compile``
    defaults to False there)."""
    from fastsac.fast import FastSAC
    from fastsac.reference import SACAgent

    kwargs.setdefault("hidden_sizes", (128, 128))
    ref = SACAgent(make_env(env_id), 1000, batch_size, device=device, dtype=dtype, seed=0,
                   **kwargs)
    fast = FastSAC(make_env(env_id), 1000, batch_size, device=device, dtype=dtype, seed=1,
                   **{"compile": False, **(fast_kwargs or {})}, **kwargs)
    copy_weights(ref, fast)
    return ref, fast


def max_param_diff(a, b) -> float:
    """Largest |difference| over every parameter, log_alpha included."""
    worst = (a.log_alpha.detach() - b.log_alpha.detach().to(a.device)).abs().max().item()
    for name in modules(a):
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters(),
                        strict=True):
            worst = max(worst, (p.detach() - q.detach().to(p.device)).abs().max().item())
    return worst


def max_adam_diff(a, b) -> float:
    """Largest |difference| of the Adam moments; the step counts must match exactly."""
    worst = 0.0
    for name in optimizers(a):
        sa, sb = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        if sa.keys() != sb.keys():
            raise AssertionError(f"{name}: parameters with state differ")
        for k in sa:
            if float(sa[k]["step"]) != float(sb[k]["step"]):
                raise AssertionError(f"{name}[{k}]: step {float(sa[k]['step'])} vs "
                                     f"{float(sb[k]['step'])}")
            for key in ("exp_avg", "exp_avg_sq"):
                worst = max(worst, (sa[k][key] - sb[k][key].to(sa[k][key].device))
                            .abs().max().item())
    return worst


def run_twins(ref, fast, n_updates: int, seed: int = 0, start_step: int = 1
              ) -> tuple[float, float]:
    """Feed both agents the same batches and noise for ``n_updates`` updates (numbered from
    ``start_step``, so the notebook's rule picks the policy steps). Returns the largest
    parameter difference after the first update and after the last."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    draws = ref._variant.noise_draws
    after_one = None
    for i in range(n_updates):
        batch = random_batch(rng, ref.batch_size, ref.obs_dim, ref.action_dim)
        noise = torch.randn(draws, ref.batch_size, ref.action_dim, dtype=torch.float64,
                            generator=gen)
        ref.total_step = fast.total_step = start_step + i
        ref.update_model(batch, noise)
        fast.update_model(batch, noise)
        if i == 0:
            after_one = max_param_diff(ref, fast)
    return after_one, max_param_diff(ref, fast)


def run_graph_twins(ref, fast, n_updates: int, seed: int = 0) -> tuple[float, float]:
    """The CUDA-graph path samples its own batch and draws its noise inside the graph: fill
    ``fast``'s buffer, then after each replay feed the reference the batch and noise it used."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        fast.memory.store(rng.normal(size=fast.obs_dim), rng.uniform(-1, 1, fast.action_dim),
                          rng.normal(), rng.normal(size=fast.obs_dim), rng.uniform() < 0.1)
    after_one = None
    keys = ("obs", "next_obs", "acts", "rews", "done")
    for step in range(1, n_updates + 1):
        ref.total_step = fast.total_step = step
        fast.update_model()
        batch, noise, _ = fast.engine._static
        ref.update_model({k: t.cpu().numpy() for k, t in zip(keys, batch, strict=True)},
                         noise.clone())
        if step == 1:
            after_one = max_param_diff(ref, fast)
    return after_one, max_param_diff(ref, fast)
