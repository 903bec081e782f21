"""The agent's learnable state, named once: which networks an agent has, which optimizer trains
each, which are Polyak targets of which, and log_alpha. Everything that walks the whole state
reads :func:`slots_of`: construction, checkpoints, the fast engine's flat buffers, the
agreement checks, the divergence checks and the data-parallel broadcast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fastsac.variants import Variant


@dataclass(frozen=True)
class Slot:
    """``name``: the agent's attribute (a module, or the tensor ``log_alpha``); ``optimizer``:
    its optimizer's attribute, None for a Polyak target; ``target_of``: the network it follows."""

    name: str
    optimizer: str | None
    target_of: str | None = None


def slots_of(variant: Variant, n_critics: int) -> tuple[Slot, ...]:
    """The networks in construction order, then log_alpha."""
    nets = tuple(Slot(s.name, None if s.target_of else f"{s.name}_optimizer", s.target_of)
                 for s in variant.networks(n_critics))
    return (*nets, Slot("log_alpha", "alpha_optimizer"))


def parameters(agent: Any, slot: Slot) -> list[torch.Tensor]:
    """A slot's tensors, in registration order."""
    if slot.name == "log_alpha":
        return [agent.log_alpha]
    return list(getattr(agent, slot.name).parameters())


def modules(agent: Any) -> list[str]:
    return [s.name for s in agent.slots if s.name != "log_alpha"]


def optimizers(agent: Any) -> list[str]:
    return [s.optimizer for s in agent.slots if s.optimizer is not None]
