"""Helpers for agreement tests: twin agents with equal weights, parameter differences."""

from __future__ import annotations

import torch

from fastsac import FastSAC, SACAgent, make_env

MODULES = ("actor", "vf", "vf_target", "qf_1", "qf_2")


def twin_agents(device="cpu", dtype=torch.float32, compile=False, env_id="Pendulum-v1",
                batch_size=32, **kwargs):
    """A reference agent and a FastSAC agent with identical initial weights."""
    ref = SACAgent(make_env(env_id), 1000, batch_size, device=device, dtype=dtype, seed=0)
    fast = FastSAC(make_env(env_id), 1000, batch_size, device=device, dtype=dtype, seed=1,
                   compile=compile, **kwargs)
    copy_weights(ref, fast)
    return ref, fast


def copy_weights(src, dst) -> None:
    with torch.no_grad():
        for name in MODULES:
            getattr(dst, name).load_state_dict(getattr(src, name).state_dict())
        dst.log_alpha.copy_(src.log_alpha)


def max_param_diff(a, b) -> float:
    """Largest |difference| over every parameter, log_alpha included."""
    worst = (a.log_alpha.detach() - b.log_alpha.detach()).abs().max().item()
    for name in MODULES:
        for p, q in zip(getattr(a, name).parameters(), getattr(b, name).parameters(), strict=True):
            worst = max(worst, (p.detach() - q.detach().to(p.device)).abs().max().item())
    return worst


def max_adam_diff(a, b) -> float:
    """Largest |difference| of the Adam moments, and the step counts must match exactly."""
    worst = 0.0
    for name in ("alpha_optimizer", "actor_optimizer", "vf_optimizer", "qf_1_optimizer",
                 "qf_2_optimizer"):
        sa, sb = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        assert sa.keys() == sb.keys(), name
        for k in sa:
            assert float(sa[k]["step"]) == float(sb[k]["step"]), (name, k)
            for key in ("exp_avg", "exp_avg_sq"):
                diff = (sa[k][key] - sb[k][key].to(sa[k][key].device)).abs().max().item()
                worst = max(worst, diff)
    return worst
