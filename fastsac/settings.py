"""The agent's settings, typed and checked in one place: :class:`SACConfig`.

Everything that decides what an agent learns is a field here, with its type, default and a line
of help. The agents' constructors take these as their arguments (their defaults are read from
here, and a test holds the two to each other), ``fastsac train`` makes one flag per field, a
checkpoint records them and ``FastSAC.from_checkpoint`` rebuilds the agent from them, and the
presets are sets of them. Where a default differs between the variants (``policy_update_freq``,
``hidden_sizes``), the field defaults to ``None``: the variant's own default.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from fastsac.errors import ConfigError
from fastsac.networks import check_hidden_sizes
from fastsac.variants import VARIANTS


def _help(text: str, **kwargs) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class SACConfig:
    """The settings of a SAC agent (see each field's help, or ``fastsac train --help``)."""

    memory_size: int = _help("replay buffer capacity, in transitions", default=1_000_000)
    batch_size: int = _help("transitions per update", default=256)
    gamma: float = _help("discount factor, in (0, 1]", default=0.99)
    tau: float = _help("Polyak factor of the target networks, in (0, 1]", default=0.005)
    initial_random_steps: int = _help(
        "steps of uniform random actions before the policy acts and updates start",
        default=10_000)
    policy_update_freq: int | None = _help(
        "the actor (and in v1 the V target) steps every this many updates (default: v1 2, v2 1)",
        default=None)
    variant: str = _help("'v1' (the notebook's: twin Q, V with a Polyak target) or 'v2' "
                         "(SB3's and CleanRL's: n critics with Polyak targets, no V)",
                         default="v1")
    n_critics: int = _help("Q critics (v1: 2; v2: 2 to 10)", default=2)
    hidden_sizes: tuple[int, ...] | None = _help(
        "widths of every network's hidden ReLU layers (default: v1 128 128, v2 256 256)",
        default=None)
    lr: float = _help("Adam's learning rate, for every network and for log_alpha", default=3e-4)
    updates_per_step: float = _help("gradient updates per collected transition (0.25, 1, 4 ...)",
                                    default=1.0)
    target_entropy: float | None = _help(
        "the entropy alpha is tuned towards (default: -action_dim)", default=None)
    seed: int | None = _help("seeds the weights, warm-up actions, replay sampling, noise and "
                             "first env reset", default=None)

    def __post_init__(self) -> None:
        variant = VARIANTS.get(self.variant)
        if variant is None:
            raise ConfigError(f"variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        checked = {
            "memory_size": _int("memory_size", self.memory_size, 1),
            "gamma": _unit("gamma", self.gamma), "tau": _unit("tau", self.tau),
            "initial_random_steps": _int("initial_random_steps", self.initial_random_steps, 0),
            "policy_update_freq": _int("policy_update_freq", variant.defaults[
                "policy_update_freq"] if self.policy_update_freq is None
                else self.policy_update_freq, 1),
            "n_critics": _int("n_critics", self.n_critics, variant.n_critics.start,
                              variant.n_critics.stop - 1, f"for variant {self.variant!r}"),
            "hidden_sizes": _sizes(variant.defaults["hidden_sizes"] if self.hidden_sizes is None
                                   else self.hidden_sizes),
            "lr": _positive("lr", self.lr),
            "updates_per_step": float(update_ratio(self.updates_per_step)),
            "target_entropy": None if self.target_entropy is None
            else _real("target_entropy", self.target_entropy),
            "seed": None if self.seed is None else _int("seed", self.seed, 0),
        }
        checked["batch_size"] = _int("batch_size", self.batch_size, 1, checked["memory_size"],
                                     f"(memory_size is {checked['memory_size']})")
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> SACConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values (checkpoints, summaries)."""
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SACConfig:
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ConfigError(f"unknown settings {sorted(unknown)}")
        return cls(**values)

    def differences(self, other: SACConfig, mine: str = "checkpoint",
                    theirs: str = "agent") -> list[str]:
        """``name: mine X, theirs Y`` for every setting that differs."""
        return [f"{name}: {mine} {getattr(self, name)!r}, {theirs} {getattr(other, name)!r}"
                for name in FIELDS if getattr(self, name) != getattr(other, name)]


FIELDS = tuple(f.name for f in dataclasses.fields(SACConfig))
HELP = {f.name: f.metadata["help"] for f in dataclasses.fields(SACConfig)}
DEFAULTS = {f.name: f.default for f in dataclasses.fields(SACConfig)}

# `fastsac train --preset NAME`: an env, a run length and settings; options given override them.
PRESETS: dict[str, dict[str, Any]] = {
    # the notebook's run: Pendulum, SAC v1, 128-128 nets, batch 128, a 100k buffer
    "notebook": {"env": "Pendulum-v1", "frames": 50_000, "variant": "v1", "batch_size": 128,
                 "memory_size": 100_000, "hidden_sizes": (128, 128)},
    # SB3's SAC with the SAC paper's MuJoCo settings: v2, 256-256, batch 256, a 1M buffer,
    # lr 3e-4, 1M frames, learning from 10k random steps (SB3's and CleanRL's MuJoCo recipes)
    "mujoco": {"env": "HalfCheetah-v5", "frames": 1_000_000, "variant": "v2", "batch_size": 256,
               "memory_size": 1_000_000, "hidden_sizes": (256, 256), "lr": 3e-4,
               "initial_random_steps": 10_000},
}


def update_ratio(value: Any) -> Fraction:
    """``updates_per_step`` as an exact fraction (0.29 is 29/100), so counts never drift."""
    exact = Fraction(_positive("updates_per_step", value)).limit_denominator(1_000_000)
    if exact == 0:
        raise ConfigError(f"updates_per_step must be at least 1e-6, got {value}")
    return exact


# ---- checks: ConfigError (a ValueError) or a TypeError, naming the setting --------------------
def _real(name: str, value: Any, within: Callable[[float], bool] = math.isfinite,
          bound: str = "finite") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not within(value):
        raise ConfigError(f"{name} must be {bound}, got {value}")
    return float(value)


def _int(name: str, value: Any, low: int, high: float = math.inf, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        bound = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
        raise ConfigError(f"{name} must be {bound}{' ' + why if why else ''}, got {value}")
    return int(value)


def _unit(name: str, value: Any) -> float:
    return _real(name, value, lambda v: 0.0 < v <= 1.0, "in (0, 1]")


def _positive(name: str, value: Any) -> float:
    return _real(name, _real(name, value), lambda v: v > 0, "> 0")  # finite, then positive


def _sizes(value: Any) -> tuple[int, ...]:
    try:
        return check_hidden_sizes(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
