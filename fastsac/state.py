"""The agent's learnable state, named once.

Every place that walks the agent's networks and optimizers reads this module: checkpoints
(``fastsac.checkpoint``), agreement checks (``fastsac.agreement``), the update function's
signature (``fastsac.update.sac_update`` takes an :data:`UpdateState`), FastSAC's flat buffers
and its CUDA-graph capture. Adding a network means adding it here (docs/design.md, "The agent's
state").
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import torch

# (attribute on the agent, attribute of its optimizer or None), in the order of the update's
# arguments. log_alpha is a tensor, the others are modules.
SLOTS: tuple[tuple[str, str | None], ...] = (
    ("actor", "actor_optimizer"),
    ("qf_1", "qf_1_optimizer"),
    ("qf_2", "qf_2_optimizer"),
    ("vf", "vf_optimizer"),
    ("log_alpha", "alpha_optimizer"),
    ("vf_target", None),
)
SLOT_NAMES = tuple(name for name, _ in SLOTS)
MODULES = tuple(name for name in SLOT_NAMES if name != "log_alpha")
OPTIMIZERS = tuple(opt for _, opt in SLOTS if opt is not None)
OPTIMIZER_OF = dict(SLOTS)

# The update's tensors, one field per slot: an Adam group ``(params, exp_avg, exp_avg_sq,
# steps)`` of flat buffers (fastsac.flat) for a trained slot, the parameter buffer alone for
# vf_target. torch.compile takes it as one argument and guards each tensor in it.
UpdateState = namedtuple("UpdateState", SLOT_NAMES)

# A sampled batch, in the order the update takes it (the keys of ``sample_batch()``).
BATCH_KEYS = ("obs", "next_obs", "acts", "rews", "done")
Batch = namedtuple("Batch", BATCH_KEYS)


def state_tensors(state: UpdateState) -> list[torch.Tensor]:
    """Every tensor of an :data:`UpdateState`, in order: each trained slot's Adam group, then
    vf_target's parameter buffer (the C++ update's state list; what a CUDA-graph capture saves
    and restores)."""
    out: list[torch.Tensor] = []
    for slot in state:
        out.extend(slot if isinstance(slot, tuple) else (slot,))
    return out


def slot_parameters(agent: Any, name: str) -> list[torch.Tensor]:
    """The tensors of one slot, in registration order (``[log_alpha]`` for log_alpha)."""
    if name == "log_alpha":
        return [agent.log_alpha]
    return list(getattr(agent, name).parameters())


def optimizer_of(agent: Any, name: str) -> torch.optim.Optimizer | None:
    opt = OPTIMIZER_OF[name]
    return None if opt is None else getattr(agent, opt)
