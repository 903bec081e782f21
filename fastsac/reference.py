"""The eager reference: the notebook's SAC in plain PyTorch, step for step.

This is the baseline of every agreement test and benchmark, so it stays honest and
unoptimised: a numpy buffer sampling with ``np.random.choice`` (as the notebook does),
``torch.distributions.Normal`` for the policy, one ``backward()`` and ``optimizer.step()`` per
loss in the notebook's order, a Python loop for the Polyak update. The numbered comments refer
to the semantics list in docs/design.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Normal

from fastsac import distributed
from fastsac.base import AgentBase
from fastsac.buffer import check_transitions_state, load_transitions_state, transitions_state
from fastsac.rng_state import random_state_state, set_random_state_state


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
                       log_std_min: float, log_std_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(1) The actor head as the notebook writes it: tanh-squashed Normal with
    reparameterised noise ``eps``; returns ``(action, log_prob)`` with log_prob ``[..., 1]``."""
    mean = torch.tanh(mean_raw)
    log_std = torch.tanh(log_std_raw)
    log_std = log_std_min + 0.5 * (log_std_max - log_std_min) * (log_std + 1)
    std = torch.exp(log_std)
    dist = Normal(mean, std)
    z = mean + std * eps  # dist.rsample() with the given noise
    action = torch.tanh(z)
    log_prob = dist.log_prob(z) - torch.log(1 - action.pow(2) + 1e-7)
    return action, log_prob.sum(-1, keepdim=True)


class SACAgent(AgentBase):
    """The eager reference agent: the notebook's ``SACAgent`` on gymnasium. See
    :class:`fastsac.base.AgentBase` for the arguments."""

    def _make_memory(self, obs_dim, size, batch_size, act_dim, seed):
        return NumpyReplayBuffer(obs_dim, size, batch_size, act_dim, seed=seed)

    def _sample_actor(self, state: torch.Tensor, eps: torch.Tensor | None = None):
        mean_raw, log_std_raw = self.actor.heads(state)
        if eps is None:
            eps = self._noise(mean_raw.shape)
        return tanh_normal_sample(mean_raw, log_std_raw, eps, self.actor.log_std_min,
                                  self.actor.log_std_max)

    def _policy_action(self, state: np.ndarray) -> np.ndarray:
        state_t = torch.as_tensor(np.asarray(state), dtype=self.dtype, device=self.device)
        action, _ = self._sample_actor(state_t)
        return action.detach().cpu().numpy().astype(np.float32)

    def _as_tensor(self, array, shape) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=self.dtype,
                               device=self.device).reshape(shape)

    def update_model(self, batch: dict[str, Any] | None = None,
                     noise: torch.Tensor | None = None,
                     policy_step: bool | None = None) -> tuple[torch.Tensor, ...]:
        """One SAC update. ``batch`` (shaped like ``sample_batch()``) and ``noise`` (the actor's
        standard-normal eps, ``[batch, action_dim]``) override the buffer and the RNG, for
        agreement checks; ``policy_step`` says whether the actor and the V target step (``None``:
        the notebook's rule on ``total_step``; ``train`` passes its update count's).
        Returns ``(actor_loss, qf_loss, vf_loss, alpha_loss)``."""
        samples = self.memory.sample_batch() if batch is None else batch
        state = self._as_tensor(samples["obs"], (-1, self.obs_dim))
        next_state = self._as_tensor(samples["next_obs"], (-1, self.obs_dim))
        action = self._as_tensor(samples["acts"], (-1, self.action_dim))
        reward = self._as_tensor(samples["rews"], (-1, 1))
        done = self._as_tensor(samples["done"], (-1, 1))
        if noise is not None:
            noise = noise.to(device=self.device, dtype=self.dtype)

        # (2) one actor forward, used by every loss below
        new_action, log_prob = self._sample_actor(state, noise)

        # (3) alpha first
        alpha_loss = (-self.log_alpha.exp() * (log_prob + self.target_entropy).detach()).mean()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self._average_grads([self.log_alpha])
        self.alpha_optimizer.step()
        alpha = self.log_alpha.exp()  # the new value

        # (4) Q targets; terminated-only bootstrap mask
        mask = 1 - done
        q_1_pred = self.qf_1(state, action)
        q_2_pred = self.qf_2(state, action)
        v_target = self.vf_target(next_state)
        q_target = reward + self.gamma * v_target * mask
        qf_1_loss = F.mse_loss(q_1_pred, q_target.detach())
        qf_2_loss = F.mse_loss(q_2_pred, q_target.detach())

        # (5) V target
        v_pred = self.vf(state)
        q_pred = torch.min(self.qf_1(state, new_action), self.qf_2(state, new_action))
        v_target = q_pred - alpha * log_prob
        vf_loss = F.mse_loss(v_pred, v_target.detach())

        # (6) actor and Polyak every policy_update_freq steps; the Polyak update runs before V's
        # optimizer step, so it blends V's pre-step parameters.
        if self._is_policy_step(policy_step):
            advantage = q_pred - v_pred.detach()
            actor_loss = (alpha * log_prob - advantage).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()  # also reaches Q; the zero_grad below discards that
            self._average_grads(self.actor.parameters())
            self.actor_optimizer.step()
            self._target_soft_update()
        else:
            actor_loss = torch.zeros(1)

        # (7) Q1, Q2 and V step every update
        self.qf_1_optimizer.zero_grad()
        qf_1_loss.backward()
        self._average_grads(self.qf_1.parameters())
        self.qf_1_optimizer.step()
        self.qf_2_optimizer.zero_grad()
        qf_2_loss.backward()
        self._average_grads(self.qf_2.parameters())
        self.qf_2_optimizer.step()
        qf_loss = qf_1_loss + qf_2_loss
        self.vf_optimizer.zero_grad()
        vf_loss.backward()
        self._average_grads(self.vf.parameters())
        self.vf_optimizer.step()

        return actor_loss.data, qf_loss.data, vf_loss.data, alpha_loss.data

    def _average_grads(self, params) -> None:
        """Data-parallel: each gradient becomes its mean over the ranks before the step."""
        if self.world_size > 1:
            distributed.average_grads_(list(params), self.world_size)

    def _target_soft_update(self) -> None:
        """V_target <- tau * V + (1 - tau) * V_target, parameter by parameter."""
        tau = self.tau
        for t_param, l_param in zip(self.vf_target.parameters(), self.vf.parameters(),
                                    strict=True):
            t_param.data.copy_(tau * l_param.data + (1.0 - tau) * t_param.data)
