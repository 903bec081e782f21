"""The SAC update as one C++ op built ahead of time (``fastsac::sac_update_``,
csrc/sac_update_cpu.cpp): what ``FastSAC.train`` runs on CPU while torch.compile builds the
update's graph.

Why: with empty caches the compiled graph takes long to build (docs/design.md, "Cold
start"). The eager Python update could bridge that time, but far slower than the compiled
update; this op is the same explicit backward (``fastsac.update.sac_update``, step for step)
without Python between its ops, so the first updates of a run already run close to the
compiled graph's speed (with the SIMD builds of the CPU kernels; BENCHMARKS.md has the
numbers). It takes the
agent's flat buffers (``fastsac.state.UpdateState``) and updates them in place, like the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from fastsac import ops
from fastsac.state import Batch, UpdateState, state_tensors
from fastsac.update import UpdateConfig


def available(device: torch.device | str, world_size: int = 1) -> bool:
    """Whether the op can run an update: an extension that has it (a build older than the op
    does not), on CPU, one process (a data-parallel update averages gradients, which only the
    Python update does)."""
    return (ops.EXTENSION_LOADED and torch.device(device).type == "cpu" and world_size == 1
            and ops.has_kernel("fastsac::sac_update_", "CPU"))


def make_native_update(cfg: UpdateConfig) -> Callable[..., torch.Tensor]:
    """``update(policy_step, state, batch, noise)`` like ``fastsac.update.make_update``'s,
    running ``fastsac::sac_update_``. Returns ``[actor_loss, qf_loss, vf_loss, alpha_loss]``."""
    if cfg.world_size != 1:
        raise ValueError("the native update runs one process's update (world_size 1), got "
                         f"world_size {cfg.world_size}")
    ops.require_extension()
    hidden = list(cfg.hidden_sizes)
    tiled = [i for i, on in enumerate(cfg.tiled_layers) if on]

    def update(policy_step: bool, state: UpdateState, batch: Batch,
               noise: torch.Tensor) -> torch.Tensor:
        return torch.ops.fastsac.sac_update_(
            state_tensors(state), *batch, noise, hidden, tiled, cfg.gamma, cfg.tau,
            cfg.target_entropy, cfg.log_std_min, cfg.log_std_max, cfg.lr, cfg.beta1, cfg.beta2,
            cfg.adam_eps, bool(policy_step))

    return update


def run_natively(agent) -> None:
    """Make an uncompiled ``FastSAC``'s ``update_model`` run the C++ op on every call, as
    ``train`` does while the graph compiles: for agreement checks and benchmarks."""
    if agent.compile:
        raise ValueError("run_natively takes an agent built with compile=False")
    if agent._bridge_fn is agent._eager_fn:
        raise RuntimeError("this agent's update cannot run as the C++ op (see available())")
    agent._update_fn = agent._bridge_fn
