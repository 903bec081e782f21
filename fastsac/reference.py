"""The eager reference: SAC in plain PyTorch, the way the math reads. The baseline of every
agreement check and benchmark, so it stays honest and unoptimised: the notebook's numpy buffer
(``np.random.choice`` sampling), the actor head as ``torch.distributions.Normal``, and each
network descending its own loss with its own ``torch.optim.Adam``, in the variant's order
(docs/design.md, section 2). The losses are the variant's (``fastsac.variants``), the ones the
fast engine runs: what differs is everything around them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.distributions import Normal

from fastsac import distributed
from fastsac.agent import Agent
from fastsac.buffer import check_transitions_state, load_transitions_state, transitions_state
from fastsac.networks import Head
from fastsac.rng_state import random_state_state, set_random_state_state
from fastsac.state import parameters


class NumpyReplayBuffer:
    """The notebook's numpy buffer (any action dim, its own seeded RandomState)."""

    def __init__(self, obs_dim: int, size: int, batch_size: int = 32, act_dim: int = 1,
                 seed: int | None = None):
        self.obs_buf = np.zeros([size, obs_dim], dtype=np.float32)
        self.next_obs_buf = np.zeros([size, obs_dim], dtype=np.float32)
        self.acts_buf = np.zeros([size, act_dim], dtype=np.float32)
        self.rews_buf = np.zeros([size], dtype=np.float32)
        self.done_buf = np.zeros([size], dtype=np.float32)
        self.max_size, self.batch_size, self.act_dim = size, batch_size, act_dim
        self.ptr, self.size = 0, 0
        self.rng = np.random.RandomState(seed)

    def store(self, obs, act, rew, next_obs, done) -> None:
        self.obs_buf[self.ptr] = obs
        self.next_obs_buf[self.ptr] = next_obs
        self.acts_buf[self.ptr] = act
        self.rews_buf[self.ptr] = rew
        self.done_buf[self.ptr] = done
        self.ptr = (self.ptr + 1) % self.max_size
        self.size = min(self.size + 1, self.max_size)

    def store_batch(self, obs, act, rew, next_obs, done) -> None:
        """N transitions (a vector env's step), one ``store`` each."""
        for row in zip(obs, act, rew, next_obs, done, strict=True):
            self.store(*row)

    def sample_batch(self) -> dict[str, np.ndarray]:
        idxs = self.rng.choice(self.size, size=self.batch_size, replace=False)
        acts = self.acts_buf[idxs]
        return dict(obs=self.obs_buf[idxs], next_obs=self.next_obs_buf[idxs],
                    acts=acts.reshape(-1) if self.act_dim == 1 else acts,
                    rews=self.rews_buf[idxs], done=self.done_buf[idxs])

    def __len__(self) -> int:
        return self.size

    def state_dict(self) -> dict[str, Any]:
        return {**transitions_state(self), "sampler": "numpy-randomstate",
                "rng": random_state_state(self.rng)}

    def check_state_dict(self, state: dict[str, Any]) -> None:
        check_transitions_state(self, state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_transitions_state(self, state)
        if state.get("sampler") == "numpy-randomstate":  # another buffer's stream does not
            set_random_state_state(self.rng, state["rng"])  # carry over


def tanh_normal_sample(mean_raw: torch.Tensor, log_std_raw: torch.Tensor, eps: torch.Tensor,
                       head: Head) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor head: a tanh-squashed Normal, reparameterised with noise ``eps``; returns
    ``(action, log_prob)`` with log_prob ``[..., 1]``."""
    mean = torch.tanh(mean_raw) if head.tanh_mean else mean_raw
    lo, hi = head.log_std_min, head.log_std_max
    log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std_raw) + 1)
    std = torch.exp(log_std)
    dist = Normal(mean, std)
    z = mean + std * eps  # dist.rsample() with the given noise
    action = torch.tanh(z)
    log_prob = dist.log_prob(z) - torch.log(1 - action.pow(2) + 1e-7)
    return action, log_prob.sum(-1, keepdim=True)


class ModuleNets:
    """The agent's modules, as a variant's loss evaluates them. ``frozen`` changes nothing here:
    each network's gradient is taken from its own loss alone."""

    def __init__(self, agent: Agent):
        self.agent = agent

    def critic(self, name: str, *inputs: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        return getattr(self.agent, name)(*inputs)

    def sample(self, obs: torch.Tensor, eps: torch.Tensor, frozen: bool = False):
        return tanh_normal_sample(*self.agent.actor.heads(obs), eps, self.agent._variant.head)


class ReferenceEngine:
    """The reference's update and acting (the engine interface ``fastsac.agent.Agent`` uses)."""

    def __init__(self, agent: Agent):
        self.agent = agent

    def _tensor(self, array, width: int) -> torch.Tensor:
        a = self.agent
        return torch.as_tensor(np.asarray(array), dtype=a.dtype, device=a.device).reshape(-1, width)

    def update(self, policy_step: bool, batch: dict | None,
               noise: torch.Tensor | None) -> torch.Tensor:
        a, variant = self.agent, self.agent._variant
        samples = a.memory.sample_batch() if batch is None else batch
        o, d = a.obs_dim, a.action_dim
        tensors = tuple(self._tensor(samples[k], w) for k, w in
                        (("obs", o), ("next_obs", o), ("acts", d), ("rews", 1), ("done", 1)))
        if noise is None:
            noise = a._noise((variant.noise_draws, tensors[0].shape[0], d))
        nets = ModuleNets(a)
        sample = nets.sample(tensors[0], noise[0])  # one actor forward, used by every loss
        # alpha first: the losses see its new value
        alpha_loss = (-a.log_alpha.exp() * (sample[1] + a.target_entropy).detach()).mean()
        self._descend(a.alpha_optimizer, [a.log_alpha],
                      torch.autograd.grad(alpha_loss, [a.log_alpha], retain_graph=True))
        losses = variant.losses(nets, tensors, sample, a.log_alpha.exp().detach(), a.config,
                                noise)
        # every gradient from the parameters as the update began, each network's from its own
        # loss; then the steps
        stepped = [s for s in a.slots if s.optimizer and s.name != "log_alpha"
                   and (policy_step or s.name != "actor")]
        grads = {s.name: torch.autograd.grad(losses[s.name], parameters(a, s), retain_graph=True)
                 for s in stepped}
        polyak = variant.polyak_every_update or policy_step
        if polyak and not variant.polyak_after_step:  # the targets blend the pre-step networks
            self._polyak()
        for s in stepped:
            self._descend(getattr(a, s.optimizer), parameters(a, s), grads[s.name])
        if polyak and variant.polyak_after_step:
            self._polyak()
        return variant.report({k: v.detach() for k, v in losses.items()}, alpha_loss.detach(),
                              policy_step, a.config.n_critics)

    def _descend(self, optimizer, params, grads) -> None:
        """One Adam step with these gradients (data-parallel: averaged over the ranks first)."""
        if self.agent.world_size > 1:
            grads = distributed.average_flat(list(grads), self.agent.world_size)
        for p, g in zip(params, grads, strict=True):
            p.grad = g.detach().clone()
        optimizer.step()
        optimizer.zero_grad()

    def _polyak(self) -> None:
        """target <- tau * source + (1 - tau) * target, parameter by parameter."""
        a, tau = self.agent, self.agent.config.tau
        for s in a.slots:
            if s.target_of is not None:
                with torch.no_grad():
                    for t, p in zip(getattr(a, s.name).parameters(),
                                    getattr(a, s.target_of).parameters(), strict=True):
                        t.copy_(tau * p + (1.0 - tau) * t)

    def act(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        a = self.agent
        x = torch.as_tensor(np.asarray(states), dtype=a.dtype, device=a.device)
        with torch.no_grad():
            mean_raw, log_std_raw = a.actor.heads(x)
            eps = torch.zeros_like(mean_raw) if deterministic else a._noise(mean_raw.shape)
            action, _ = tanh_normal_sample(mean_raw, log_std_raw, eps, a._variant.head)
        return action.cpu().numpy().astype(np.float32)

    def finite_check_tensors(self) -> dict[str, list[torch.Tensor]]:
        return {s.name: parameters(self.agent, s) for s in self.agent.slots}

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def after_load(self) -> None: ...


class SACAgent(Agent):
    """The eager reference agent: :class:`fastsac.agent.Agent` with the notebook's numpy buffer
    and the :class:`ReferenceEngine`."""

    def _make_memory(self, seed: int | None) -> NumpyReplayBuffer:
        c = self.config
        return NumpyReplayBuffer(self.obs_dim, c.memory_size, c.batch_size, self.action_dim,
                                 seed=seed)

    def _make_engine(self) -> ReferenceEngine:
        return ReferenceEngine(self)
