"""The notebook's three networks, at any depth and width (``hidden_sizes``).

The hidden layers are ``hidden1``, ``hidden2``, ... ``hiddenN`` (the notebook's names for its
two layers, numbered on for deeper nets), then the heads: the actor's ``log_std_layer`` and
``mu_layer``, the critics' ``out``. Registration order is that order, so state_dicts and
optimizer states move between the reference agent, FastSAC and notebook checkpoints, and the
parameter lists are ``[hidden1.weight, hidden1.bias, ..., heads]`` (docs/design.md, "Architecture
as data").
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fastsac.ops import LOG_STD_MAX, LOG_STD_MIN, tanh_normal

DEFAULT_HIDDEN_SIZES = (128, 128)
LAST_LAYER_INIT = 3e-3


def check_hidden_sizes(hidden_sizes: Any) -> tuple[int, ...]:
    """``hidden_sizes`` as a tuple of positive ints; ``ValueError``/``TypeError`` otherwise."""
    if isinstance(hidden_sizes, (str, bytes)) or not hasattr(hidden_sizes, "__iter__"):
        raise TypeError("hidden_sizes must be a sequence of ints such as (256, 256), got "
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


def init_layer_uniform(layer: nn.Linear, init_w: float = LAST_LAYER_INIT) -> nn.Linear:
    """Last layers start near zero: uniform(-3e-3, 3e-3) weights and biases."""
    nn.init.uniform_(layer.weight, -init_w, init_w)
    nn.init.uniform_(layer.bias, -init_w, init_w)
    return layer


class Trunk(nn.Module):
    """The ReLU layers every network starts with, registered as ``hidden1 .. hiddenN``."""

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.hidden_sizes = check_hidden_sizes(hidden_sizes)
        widths = (in_dim, *self.hidden_sizes)
        for i in range(len(self.hidden_sizes)):
            setattr(self, f"hidden{i + 1}", nn.Linear(widths[i], widths[i + 1]))

    def hidden_layers(self) -> list[nn.Linear]:
        return [getattr(self, f"hidden{i + 1}") for i in range(len(self.hidden_sizes))]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden_layers():
            x = F.relu(layer(x))
        return x


class Actor(Trunk):
    """Tanh-squashed Gaussian policy: a ReLU trunk, a log-std head and a mean head."""

    def __init__(self, in_dim: int, out_dim: int,
                 hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
                 log_std_min: float = LOG_STD_MIN, log_std_max: float = LOG_STD_MAX):
        super().__init__(in_dim, hidden_sizes)
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)
        last = self.hidden_sizes[-1]
        self.log_std_layer = init_layer_uniform(nn.Linear(last, out_dim))
        self.mu_layer = init_layer_uniform(nn.Linear(last, out_dim))

    def heads(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (pre-tanh) outputs of the mean and log-std layers."""
        x = self.trunk(state)
        return self.mu_layer(x), self.log_std_layer(x)

    def forward(self, state: torch.Tensor,
                eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``(action, log_prob)`` through the fused ``fastsac::tanh_normal`` op.

        ``eps`` is the standard-normal noise; drawn here when not given.
        """
        mean_raw, log_std_raw = self.heads(state)
        if eps is None:
            eps = torch.randn_like(mean_raw)
        return tanh_normal(mean_raw, log_std_raw, eps, self.log_std_min, self.log_std_max)


class CriticQ(Trunk):
    """Q(s, a): a ReLU trunk on the concatenated state and action, one output."""

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES):
        super().__init__(in_dim, hidden_sizes)
        self.out = init_layer_uniform(nn.Linear(self.hidden_sizes[-1], 1))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(torch.cat((state, action), dim=-1)))


class CriticV(Trunk):
    """V(s): a ReLU trunk, one output."""

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES):
        super().__init__(in_dim, hidden_sizes)
        self.out = init_layer_uniform(nn.Linear(self.hidden_sizes[-1], 1))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(state))
