"""The SAC variants: each one a loss function over the networks, and its registration.

A loss function takes ``(nets, batch, sample, alpha, cfg, noise)``:

- ``nets`` evaluates the agent's networks by name: ``nets.critic(name, *inputs)`` and
  ``nets.sample(states, eps)`` (the actor's ``(action, log_prob)``); ``frozen=True`` evaluates
  them with their parameters held constant, so a loss reaches the inputs (the actor's action)
  but not those parameters;
- ``batch``: ``(obs, next_obs, acts, rews, done)``, ``[B, .]`` tensors;
- ``sample``: the actor's ``(action, log_prob)`` on ``obs``, drawn with ``noise[0]``;
- ``alpha``: the temperature after this update's alpha step, a constant;
- ``cfg``: the agent's :class:`fastsac.settings.SACConfig`; ``noise``: ``[noise_draws, B, A]``.

It returns one loss per trained network. Every engine runs the same function: the eager
reference (``fastsac.reference``) descends each network's own loss with ``torch.optim.Adam``; the
fast engine (``fastsac.engine``) takes every gradient in one pass over their sum, which is why
the losses hold the other networks ``frozen`` wherever the math holds them constant (the
agreement tests catch a loss that does not). docs/design.md, section 2, has both variants step
by step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fastsac.networks import NOTEBOOK_HEAD, SB3_HEAD, Head


@dataclass(frozen=True)
class NetSpec:
    """One network of a variant: its attribute name, its kind (``"actor"``, ``"q"`` for Q(s, a),
    ``"v"`` for V(s)) and, for a Polyak target, the network it follows."""

    name: str
    kind: str
    target_of: str | None = None


def v1_losses(nets, batch, sample, alpha, cfg, noise) -> dict[str, torch.Tensor]:
    """SAC v1, the notebook's (docs/design.md, section 2.1, steps 4-6)."""
    obs, next_obs, acts, rews, done = batch
    new_action, log_prob = sample
    q_target = (rews + cfg.gamma * nets.critic("vf_target", next_obs) * (1 - done)).detach()
    losses = {name: F.mse_loss(nets.critic(name, obs, acts), q_target)
              for name in ("qf_1", "qf_2")}
    v = nets.critic("vf", obs)
    q_new = torch.minimum(nets.critic("qf_1", obs, new_action, frozen=True),
                          nets.critic("qf_2", obs, new_action, frozen=True))
    losses["vf"] = F.mse_loss(v, (q_new - alpha * log_prob).detach())
    losses["actor"] = (alpha * log_prob - (q_new - v.detach())).mean()
    return losses


def v2_losses(nets, batch, sample, alpha, cfg, noise) -> dict[str, torch.Tensor]:
    """SAC v2, SB3's and CleanRL's: n critics with Polyak targets, no V (section 2.2)."""
    obs, next_obs, acts, rews, done = batch
    new_action, log_prob = sample
    critics = [f"qf_{i + 1}" for i in range(cfg.n_critics)]
    next_action, next_log_prob = nets.sample(next_obs, noise[1], frozen=True)
    q_next = torch.stack([nets.critic(f"{name}_target", next_obs, next_action)
                          for name in critics]).amin(0)
    y = (rews + cfg.gamma * (1 - done) * (q_next - alpha * next_log_prob)).detach()
    losses = {name: 0.5 * ((nets.critic(name, obs, acts) - y) ** 2).mean() for name in critics}
    q_new = torch.stack([nets.critic(name, obs, new_action, frozen=True)
                         for name in critics]).amin(0)
    losses["actor"] = (alpha * log_prob - q_new).mean()
    return losses


@dataclass(frozen=True)
class Variant:
    """A variant's registration: what the engines and the agent need besides its loss."""

    name: str
    losses: Callable[..., dict[str, torch.Tensor]]
    head: Head
    networks: Callable[[int], tuple[NetSpec, ...]]  # n_critics -> the networks, built in order
    n_critics: range  # the numbers of Q critics it takes
    noise_draws: int  # standard-normal draws of [B, A] per update
    polyak_every_update: bool  # else on policy steps only
    polyak_after_step: bool  # the targets blend their networks after this update's Adam step
    defaults: dict  # its defaults of the settings whose defaults differ between variants
    summary: str

    def report(self, losses: dict[str, torch.Tensor], alpha_loss: torch.Tensor,
               policy_step: bool, n_critics: int) -> torch.Tensor:
        """The losses reported, as one tensor in ``loss_names``'s order (the actor's NaN on an
        update without a policy step: none was taken)."""
        q = [s.name for s in self.networks(n_critics) if s.kind == "q" and s.target_of is None]
        found = {"actor": losses["actor"] if policy_step else torch.full_like(alpha_loss,
                                                                             float("nan")),
                 "qf": sum(losses[name] for name in q), "vf": losses.get("vf"),
                 "alpha": alpha_loss}
        return torch.stack([found[k].reshape(()) for k in self.loss_names(n_critics)])

    def loss_names(self, n_critics: int) -> tuple[str, ...]:
        """The losses reported, in ``update_model``'s order: actor, qf (the Q critics' sum), vf
        (where there is a V), alpha."""
        kinds = {spec.kind for spec in self.networks(n_critics) if spec.target_of is None}
        return ("actor", "qf", *(("vf",) if "v" in kinds else ()), "alpha")


def _v1_networks(n_critics: int) -> tuple[NetSpec, ...]:
    # the notebook's construction order, so a seed gives the notebook's initial weights
    return (NetSpec("actor", "actor"), NetSpec("vf", "v"), NetSpec("vf_target", "v", "vf"),
            NetSpec("qf_1", "q"), NetSpec("qf_2", "q"))


def _v2_networks(n_critics: int) -> tuple[NetSpec, ...]:
    critics = [f"qf_{i + 1}" for i in range(n_critics)]
    return (NetSpec("actor", "actor"), *(NetSpec(name, "q") for name in critics),
            *(NetSpec(f"{name}_target", "q", name) for name in critics))


VARIANTS: dict[str, Variant] = {
    "v1": Variant("v1", v1_losses, NOTEBOOK_HEAD, _v1_networks, range(2, 3), noise_draws=1,
                  polyak_every_update=False, polyak_after_step=False,
                  defaults={"policy_update_freq": 2, "hidden_sizes": (128, 128)},
                  summary="the notebook's SAC: twin Q, V with a Polyak target"),
    "v2": Variant("v2", v2_losses, SB3_HEAD, _v2_networks, range(2, 11), noise_draws=2,
                  polyak_every_update=True, polyak_after_step=True,
                  defaults={"policy_update_freq": 1, "hidden_sizes": (256, 256)},
                  summary="SB3's and CleanRL's SAC: n critics with Polyak targets, no V"),
}
