"""The networks: a tanh-squashed Gaussian actor and Q / V critics, at any depth and width.

Hidden layers are ``hidden1 .. hiddenN`` (the notebook's names, numbered on), then the heads:
the actor's ``log_std_layer`` and ``mu_layer``, a critic's ``out``. Parameters are registered in
that order, so state_dicts move between the reference agent, FastSAC and notebook checkpoints,
and a network's parameter list is ``[hidden1.weight, hidden1.bias, ..., heads]``: the functional
forms below (:func:`trunk`, :func:`critic`, :func:`actor_heads`) read that list, and the modules'
own forwards call them, so an MLP's forward is written once for the modules and for the fast
update's flat buffers.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastsac import ops

LAST_LAYER_INIT = 3e-3


@dataclass(frozen=True)
class Head:
    """The actor's head (docs/design.md, "The actor heads"): whether the mean is squashed by
    tanh, and the range the log-std is squashed into."""

    tanh_mean: bool
    log_std_min: float
    log_std_max: float


# the notebook's head (SAC v1); SB3's and CleanRL's (v2: unbounded mean, CleanRL's log-std range)
NOTEBOOK_HEAD = Head(tanh_mean=True, log_std_min=-20.0, log_std_max=2.0)
SB3_HEAD = Head(tanh_mean=False, log_std_min=-5.0, log_std_max=2.0)


def check_hidden_sizes(hidden_sizes: Any) -> tuple[int, ...]:
    """``hidden_sizes`` as a tuple of positive ints; ``ValueError``/``TypeError`` otherwise."""
    if isinstance(hidden_sizes, (str, bytes)) or not hasattr(hidden_sizes, "__iter__"):
        raise TypeError(f"hidden_sizes must be a sequence of ints such as (256, 256), got "
                        f"{hidden_sizes!r}")
    sizes = tuple(hidden_sizes)
    if not sizes:
        raise ValueError("hidden_sizes must name at least one hidden layer, got ()")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise TypeError(f"hidden_sizes must hold ints, got {hidden_sizes!r}")
        if int(size) < 1:
            raise ValueError(f"hidden_sizes must be positive, got {hidden_sizes!r}")
    return tuple(int(s) for s in sizes)


# ---- the functional forward, over a parameter list in registration order ------------------
def trunk(x: torch.Tensor, p: Sequence[torch.Tensor], layers: int,
          wt: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
    """The ReLU layers every network starts with. ``wt[i]``: layer i's transposed weight, for
    a product in ``fastsac::mm``'s tiles (``ops.linear``), or None for torch's. Run eagerly, the
    ReLU works in place on the product while it is still in cache, instead of on fresh memory
    (BENCHMARKS.md, "Cold start"); compiled, inductor fuses it either way."""
    relu = torch.relu if torch.compiler.is_compiling() else torch.relu_
    for i in range(layers):
        x = relu(ops.linear(x, p[2 * i], p[2 * i + 1], None if wt is None else wt[i]))
    return x


def critic(x: torch.Tensor, p: Sequence[torch.Tensor], layers: int,
           wt: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
    """A critic's value ``[..., 1]`` of its input (a Q critic's: state and action concatenated)."""
    return F.linear(trunk(x, p, layers, wt), p[-2], p[-1])


def actor_heads(x: torch.Tensor, p: Sequence[torch.Tensor], layers: int,
                wt: Sequence[torch.Tensor | None] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The raw (pre-squash) outputs ``(mean_raw, log_std_raw)`` of the actor's two heads."""
    h = trunk(x, p, layers, wt)
    return F.linear(h, p[-2], p[-1]), F.linear(h, p[-4], p[-3])


# ---- the modules ----------------------------------------------------------------------------
def init_layer_uniform(layer: nn.Linear, init_w: float = LAST_LAYER_INIT) -> nn.Linear:
    """Last layers start near zero: uniform(-3e-3, 3e-3) weights and biases."""
    nn.init.uniform_(layer.weight, -init_w, init_w)
    nn.init.uniform_(layer.bias, -init_w, init_w)
    return layer


class Trunk(nn.Module):
    """The hidden ReLU layers, registered as ``hidden1 .. hiddenN``."""

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.hidden_sizes = check_hidden_sizes(hidden_sizes)
        widths = (in_dim, *self.hidden_sizes)
        for i in range(len(self.hidden_sizes)):
            setattr(self, f"hidden{i + 1}", nn.Linear(widths[i], widths[i + 1]))

    @property
    def layers(self) -> int:
        return len(self.hidden_sizes)


class Actor(Trunk):
    """Tanh-squashed Gaussian policy: a ReLU trunk, a log-std head and a mean head."""

    def __init__(self, in_dim: int, out_dim: int, hidden_sizes: Sequence[int] = (128, 128),
                 head: Head = NOTEBOOK_HEAD):
        super().__init__(in_dim, hidden_sizes)
        self.head = head
        last = self.hidden_sizes[-1]
        self.log_std_layer = init_layer_uniform(nn.Linear(last, out_dim))
        self.mu_layer = init_layer_uniform(nn.Linear(last, out_dim))

    def heads(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs ``(mean_raw, log_std_raw)`` of the mean and log-std layers."""
        return actor_heads(state, list(self.parameters()), self.layers)

    def forward(self, state: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``(action, log_prob)`` through the fused op (``eps`` drawn when not given)."""
        mean_raw, log_std_raw = self.heads(state)
        if eps is None:
            eps = torch.randn_like(mean_raw)
        h = self.head
        return ops.tanh_normal(mean_raw, log_std_raw, eps, h.log_std_min, h.log_std_max,
                               h.tanh_mean)


class CriticQ(Trunk):
    """Q(s, a): a ReLU trunk on the concatenated state and action, one output."""

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int] = (128, 128)):
        super().__init__(in_dim, hidden_sizes)
        self.out = init_layer_uniform(nn.Linear(self.hidden_sizes[-1], 1))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return critic(torch.cat((state, action), dim=-1), list(self.parameters()), self.layers)


class CriticV(Trunk):
    """V(s): a ReLU trunk, one output."""

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int] = (128, 128)):
        super().__init__(in_dim, hidden_sizes)
        self.out = init_layer_uniform(nn.Linear(self.hidden_sizes[-1], 1))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return critic(state, list(self.parameters()), self.layers)
