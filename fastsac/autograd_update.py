"""The SAC update with autograd's gradients (``torch.func.grad``) instead of the hand-written
backward of ``fastsac.update``: the same losses, alpha step, Adam and Polyak, traced into one
compiled graph all the same (the actor head as torch ops, not the fused op). It exists to
measure the explicit backward against autograd in the same compiled graph
(benchmarks/backward_vs_autograd.py; docs/design.md, section 8) and is checked against the
reference like every update (tests/test_autograd_update.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fastsac.flat import unflatten
from fastsac.ops import _tanh_normal_torch
from fastsac.state import Batch, UpdateState
from fastsac.update import UpdateConfig, adam_step, kernel_thread_options, step_networks


def _trunk(x, p, layers):
    for i in range(layers):
        x = torch.relu(F.linear(x, p[2 * i], p[2 * i + 1]))
    return x


def _critic(x, p, layers):
    return F.linear(_trunk(x, p, layers), p[-2], p[-1])


def autograd_sac_update(cfg: UpdateConfig, policy_step: bool, state: UpdateState, batch: Batch,
                        noise: torch.Tensor) -> torch.Tensor:
    """``fastsac.update.sac_update`` with each network's gradients from ``torch.func.grad`` of
    its loss (the other networks held constant, as the notebook's separate backward passes
    and zero_grads do)."""
    layers = len(cfg.hidden_sizes)
    pa = unflatten(state.actor[0], cfg.shapes["actor"])
    pq1 = unflatten(state.qf_1[0], cfg.shapes["critic_q"])
    pq2 = unflatten(state.qf_2[0], cfg.shapes["critic_q"])
    pv = unflatten(state.vf[0], cfg.shapes["critic_v"])
    pvt = unflatten(state.vf_target, cfg.shapes["critic_v"])
    log_alpha = state.log_alpha[0]
    obs, next_obs, acts, rews, done = batch

    def actor_sample(p):
        # the head's formula in torch ops: functorch transforms cannot run the C++ autograd of
        # fastsac::tanh_normal; at 256 wide the head is a small share of the update either way
        h = _trunk(obs, p, layers)
        return _tanh_normal_torch(F.linear(h, p[-2], p[-1]), F.linear(h, p[-4], p[-3]), noise,
                                  cfg.log_std_min, cfg.log_std_max)

    new_action, log_prob = actor_sample(pa)
    entropy_gap = log_prob + cfg.target_entropy
    alpha_before = log_alpha.exp()
    alpha_loss = (-alpha_before * entropy_gap).mean()
    adam_step(state.log_alpha, [-(entropy_gap.mean(0)) * alpha_before], cfg)
    alpha_now = log_alpha.exp()

    q_target = rews + cfg.gamma * _critic(next_obs, pvt, layers) * (1 - done)
    sa = torch.cat((obs, acts), dim=-1)

    def q_loss(p):
        err = _critic(sa, p, layers) - q_target
        return (err * err).mean()

    q1_grads, q1_loss = torch.func.grad_and_value(q_loss)(pq1)
    q2_grads, q2_loss = torch.func.grad_and_value(q_loss)(pq2)
    s_new = torch.cat((obs, new_action), dim=-1)
    q_min = torch.minimum(_critic(s_new, pq1, layers), _critic(s_new, pq2, layers))
    v_target = q_min - alpha_now * log_prob

    def v_loss(p):
        err = _critic(obs, p, layers) - v_target
        return (err * err).mean()

    v_grads, vf_loss = torch.func.grad_and_value(v_loss)(pv)
    if policy_step:
        v = _critic(obs, pv, layers)

        def actor_loss_of(p):
            action, lp = actor_sample(p)
            s_a = torch.cat((obs, action), dim=-1)
            qm = torch.minimum(_critic(s_a, pq1, layers), _critic(s_a, pq2, layers))
            return (alpha_now * lp - (qm - v)).mean()

        actor_grads, actor_loss = torch.func.grad_and_value(actor_loss_of)(pa)
    else:
        actor_loss, actor_grads = torch.zeros_like(vf_loss), None
    step_networks(cfg, state, actor_grads, q1_grads, q2_grads, v_grads)
    return torch.stack((actor_loss, q1_loss + q2_loss, vf_loss, alpha_loss.reshape(())))


def make_autograd_update(cfg: UpdateConfig, compile: bool) -> Callable[..., torch.Tensor]:
    """``autograd_sac_update`` with ``cfg`` bound, compiled like ``fastsac.update.make_update``
    on CPU (one graph, C++ wrapper, the same kernel threads)."""

    def update(policy_step, state, batch, noise):
        return autograd_sac_update(cfg, policy_step, state, batch, noise)

    if not compile:
        return update
    return torch.compile(update, fullgraph=True, dynamic=False,
                         options={"cpp_wrapper": True, **kernel_thread_options(cfg)})
