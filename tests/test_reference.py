"""The eager reference against an independent derivation of one update, in float64, for SAC v1
and for v2 (a direct transcription of docs/design.md's equations, not the variant's code).

The expected parameters are computed here from scratch: the networks as plain functions of
their weights, each loss written from the math, its gradient by autograd w.r.t. that loss's own
network only, and Adam's first step in closed form (p - lr * g / (|g| + eps)).
"""

import math

import numpy as np
import pytest
import torch

from fastsac import SACAgent, make_env
from tests.conftest import random_batch

LR, ADAM_EPS = 3e-4, 1e-8


def mlp(params, prefix, x):
    h = torch.relu(x @ params[f"{prefix}hidden1.weight"].T + params[f"{prefix}hidden1.bias"])
    return torch.relu(h @ params[f"{prefix}hidden2.weight"].T + params[f"{prefix}hidden2.bias"])


def critic(params, x):
    return mlp(params, "", x) @ params["out.weight"].T + params["out.bias"]


def actor_sample(params, s, eps, v2=False):
    h = mlp(params, "", s)
    mu = h @ params["mu_layer.weight"].T + params["mu_layer.bias"]
    mean = mu if v2 else torch.tanh(mu)  # v2: an unbounded mean, log std squashed into [-5, 2]
    lo, hi = (-5, 2) if v2 else (-20, 2)
    log_std = lo + 0.5 * (hi - lo) * (torch.tanh(h @ params["log_std_layer.weight"].T
                                                 + params["log_std_layer.bias"]) + 1)
    std = torch.exp(log_std)
    z = mean + std * eps
    a = torch.tanh(z)
    normal = -((z - mean) ** 2) / (2 * std**2) - log_std - 0.5 * math.log(2 * math.pi)
    return a, (normal - torch.log(1 - a**2 + 1e-7)).sum(-1, keepdim=True)


def first_adam_step(params, loss):
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], retain_graph=True)
    return {n: (params[n] - LR * g / (g.abs() + ADAM_EPS)).detach()
            for n, g in zip(names, grads, strict=True)}


def leaf_copy(module):
    return {n: p.detach().clone().requires_grad_() for n, p in module.named_parameters()}


def test_one_policy_update_matches_independent_derivation():
    agent = SACAgent(make_env(), 1000, 16, device="cpu", dtype=torch.float64, seed=3)
    rng = np.random.default_rng(0)
    batch = random_batch(rng, 16, 3, 1)
    eps = torch.randn(16, 1, dtype=torch.float64)
    P = {name: leaf_copy(getattr(agent, name)) for name in ("actor", "qf_1", "qf_2", "vf",
                                                             "vf_target")}
    log_alpha = agent.log_alpha.detach().clone().requires_grad_()
    s = torch.tensor(batch["obs"], dtype=torch.float64)
    s2 = torch.tensor(batch["next_obs"], dtype=torch.float64)
    a = torch.tensor(batch["acts"], dtype=torch.float64).reshape(-1, 1)
    r = torch.tensor(batch["rews"], dtype=torch.float64).reshape(-1, 1)
    d = torch.tensor(batch["done"], dtype=torch.float64).reshape(-1, 1)

    new_a, log_prob = actor_sample(P["actor"], s, eps)
    alpha_loss = (-log_alpha.exp() * (log_prob.detach() - 1.0)).mean()  # target entropy -1
    (g_alpha,) = torch.autograd.grad(alpha_loss, [log_alpha])
    new_log_alpha = log_alpha.detach() - LR * g_alpha / (g_alpha.abs() + ADAM_EPS)
    alpha = new_log_alpha.exp()

    y = (r + 0.99 * critic(P["vf_target"], s2) * (1 - d)).detach()
    sa, s_new = torch.cat([s, a], 1), torch.cat([s, new_a], 1)
    want = {
        "qf_1": first_adam_step(P["qf_1"], ((critic(P["qf_1"], sa) - y) ** 2).mean()),
        "qf_2": first_adam_step(P["qf_2"], ((critic(P["qf_2"], sa) - y) ** 2).mean()),
    }
    q_new = torch.min(critic(P["qf_1"], s_new), critic(P["qf_2"], s_new))
    v = critic(P["vf"], s)
    want["vf"] = first_adam_step(P["vf"], ((v - (q_new - alpha * log_prob).detach()) ** 2).mean())
    want["actor"] = first_adam_step(P["actor"], (alpha * log_prob - (q_new - v.detach())).mean())
    want["vf_target"] = {n: 5e-3 * P["vf"][n].detach() + (1 - 5e-3) * P["vf_target"][n].detach()
                         for n in P["vf_target"]}

    agent.total_step = 2  # a policy step
    losses = agent.update_model(batch, eps)

    torch.testing.assert_close(agent.log_alpha.detach(), new_log_alpha, rtol=0, atol=1e-14)
    for name, params in want.items():
        got = dict(getattr(agent, name).named_parameters())
        for n, value in params.items():
            torch.testing.assert_close(got[n].detach(), value, rtol=0, atol=1e-12,
                                       msg=f"{name}.{n}")
    torch.testing.assert_close(losses[3], alpha_loss.detach(), rtol=1e-12, atol=0)


def test_non_policy_step_leaves_actor_and_target():
    agent = SACAgent(make_env(), 1000, 16, device="cpu", dtype=torch.float64, seed=3)
    actor = [p.detach().clone() for p in agent.actor.parameters()]
    target = [p.detach().clone() for p in agent.vf_target.parameters()]
    agent.total_step = 1
    losses = agent.update_model(random_batch(np.random.default_rng(0), 16, 3, 1))
    assert losses[0].shape == (1,) and losses[0].item() == 0.0  # the notebook's torch.zeros(1)
    assert all(torch.equal(p, q) for p, q in zip(agent.actor.parameters(), actor, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(agent.vf_target.parameters(), target,
                                                 strict=True))
    assert agent.actor_optimizer.state_dict()["state"] == {}


@pytest.mark.parametrize("n_critics", [2, 3])
def test_one_v2_update_matches_the_equations(n_critics):
    """y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' fresh;
    each critic on 0.5 mean (Q_i(s, a) - y)^2; the actor on alpha log pi(a~|s) - min_i Q_i(s, a~);
    alpha first, as in v1; every target Q'_i <- tau Q_i + (1 - tau) Q'_i after the critics step."""
    agent = SACAgent(make_env(), 1000, 16, device="cpu", dtype=torch.float64, seed=4,
                     variant="v2", n_critics=n_critics, hidden_sizes=(32, 32))
    critics = [f"qf_{i + 1}" for i in range(n_critics)]
    rng = np.random.default_rng(1)
    batch = random_batch(rng, 16, 3, 1)
    noise = torch.randn(2, 16, 1, dtype=torch.float64)
    P = {name: leaf_copy(getattr(agent, name)) for name in
         ("actor", *critics, *(f"{c}_target" for c in critics))}
    log_alpha = agent.log_alpha.detach().clone().requires_grad_()
    s, s2 = (torch.tensor(batch[k], dtype=torch.float64) for k in ("obs", "next_obs"))
    a = torch.tensor(batch["acts"], dtype=torch.float64).reshape(-1, 1)
    r, d = (torch.tensor(batch[k], dtype=torch.float64).reshape(-1, 1) for k in ("rews", "done"))

    a_tilde, log_prob = actor_sample(P["actor"], s, noise[0], v2=True)
    alpha_loss = (-log_alpha.exp() * (log_prob.detach() - 1.0)).mean()
    (g_alpha,) = torch.autograd.grad(alpha_loss, [log_alpha])
    alpha = (log_alpha.detach() - LR * g_alpha / (g_alpha.abs() + ADAM_EPS)).exp()
    a2, log_prob2 = actor_sample(P["actor"], s2, noise[1], v2=True)
    q_next = torch.stack([critic(P[f"{c}_target"], torch.cat([s2, a2], 1))
                          for c in critics]).min(0).values
    y = (r + 0.99 * (1 - d) * (q_next - alpha * log_prob2)).detach()
    want = {c: first_adam_step(P[c], 0.5 * ((critic(P[c], torch.cat([s, a], 1)) - y) ** 2)
                               .mean()) for c in critics}
    q_pi = torch.stack([critic(P[c], torch.cat([s, a_tilde], 1)) for c in critics]).min(0).values
    want["actor"] = first_adam_step(P["actor"], (alpha * log_prob - q_pi).mean())
    for c in critics:
        want[f"{c}_target"] = {n: 5e-3 * want[c][n] + (1 - 5e-3) * P[f"{c}_target"][n].detach()
                               for n in P[f"{c}_target"]}

    agent.update_model(batch, noise, policy_step=True)
    for name, params in want.items():
        got = dict(getattr(agent, name).named_parameters())
        for n, value in params.items():
            torch.testing.assert_close(got[n].detach(), value, rtol=0, atol=1e-12,
                                       msg=f"{name}.{n}")
