"""The notebook's three networks. Module and parameter names match the notebook exactly
(``hidden1``, ``hidden2``, ``log_std_layer``, ``mu_layer``, ``out``), in the same registration
order, so state_dicts and optimizer states move between the reference agent, FastSAC and
notebook checkpoints."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastsac.ops import LOG_STD_MAX, LOG_STD_MIN, tanh_normal

HIDDEN = 128
LAST_LAYER_INIT = 3e-3


def init_layer_uniform(layer: nn.Linear, init_w: float = LAST_LAYER_INIT) -> nn.Linear:
    """Last layers start near zero: uniform(-3e-3, 3e-3) weights and biases."""
    nn.init.uniform_(layer.weight, -init_w, init_w)
    nn.init.uniform_(layer.bias, -init_w, init_w)
    return layer


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy: 128-128 ReLU trunk, a mean head and a log-std head."""

    def __init__(self, in_dim: int, out_dim: int, log_std_min: float = LOG_STD_MIN,
                 log_std_max: float = LOG_STD_MAX):
        super().__init__()
        self.log_std_min = float(log_std_min)
        self.log_std_max = float(log_std_max)
        self.hidden1 = nn.Linear(in_dim, HIDDEN)
        self.hidden2 = nn.Linear(HIDDEN, HIDDEN)
        self.log_std_layer = init_layer_uniform(nn.Linear(HIDDEN, out_dim))
        self.mu_layer = init_layer_uniform(nn.Linear(HIDDEN, out_dim))

    def heads(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (pre-tanh) outputs of the mean and log-std layers."""
        x = F.relu(self.hidden1(state))
        x = F.relu(self.hidden2(x))
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


class CriticQ(nn.Module):
    """Q(s, a): 128-128 ReLU on the concatenated state and action."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.hidden1 = nn.Linear(in_dim, HIDDEN)
        self.hidden2 = nn.Linear(HIDDEN, HIDDEN)
        self.out = init_layer_uniform(nn.Linear(HIDDEN, 1))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat((state, action), dim=-1)
        x = F.relu(self.hidden1(x))
        x = F.relu(self.hidden2(x))
        return self.out(x)


class CriticV(nn.Module):
    """V(s): 128-128 ReLU."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.hidden1 = nn.Linear(in_dim, HIDDEN)
        self.hidden2 = nn.Linear(HIDDEN, HIDDEN)
        self.out = init_layer_uniform(nn.Linear(HIDDEN, 1))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.hidden1(state))
        x = F.relu(self.hidden2(x))
        return self.out(x)
