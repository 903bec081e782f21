"""Prototype: v1 update with one torch.func.grad pass over all networks (measurement only)."""
import torch
import torch.nn.functional as F
from fastsac.flat import unflatten
from fastsac.update import UpdateConfig, _power_step, kernel_thread_options, TILED_WIDTHS


class TanhNormal(torch.autograd.Function):
    @staticmethod
    def forward(mean_raw, log_std_raw, eps, lo, hi):
        return torch.ops.fastsac.tanh_normal(mean_raw, log_std_raw, eps, lo, hi)

    @staticmethod
    def setup_context(ctx, inputs, output):
        mean_raw, log_std_raw, eps, lo, hi = inputs
        ctx.save_for_backward(mean_raw, log_std_raw, eps)
        ctx.r = (lo, hi)

    @staticmethod
    def backward(ctx, g_a, g_lp):
        m, s, e = ctx.saved_tensors
        gm, gs = torch.ops.fastsac.tanh_normal_backward(g_a, g_lp, m, s, e, *ctx.r)
        return gm, gs, None, None, None


class Mm(torch.autograd.Function):
    @staticmethod
    def forward(a, b):
        return torch.ops.fastsac.mm(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return torch.ops.fastsac.mm(g, b.t()), torch.ops.fastsac.mm(a.t(), g)


class TiledLinear(torch.autograd.Function):
    @staticmethod
    def forward(x, w, wt, b):
        return torch.ops.fastsac.mm(x, wt) + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, wt, b = inputs
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return torch.ops.fastsac.mm(g, w), torch.ops.fastsac.mm(g.t(), x), None, g.sum(0)


def transposed(p, tiled):
    return [p[2 * i].detach().t().contiguous() if t else None for i, t in enumerate(tiled)]


def trunk(x, p, tiled, wt):
    for i in range(len(tiled)):
        if tiled[i]:
            x = torch.relu(TiledLinear.apply(x, p[2 * i], wt[i], p[2 * i + 1]))
        else:
            x = torch.relu(F.linear(x, p[2 * i], p[2 * i + 1]))
    return x


def critic(x, p, tiled, wt):
    return F.linear(trunk(x, p, tiled, wt), p[-2], p[-1])


def adam_(group, grad, cfg):
    params, exp_avg, exp_avg_sq, steps = group
    steps.add_(1)
    exp_avg.lerp_(grad, 1 - cfg.beta1)
    exp_avg_sq.mul_(cfg.beta2).addcmul_(grad, grad, value=1 - cfg.beta2)
    step = steps[0].to(params.dtype)
    step_size = cfg.lr / (1 - torch.pow(cfg.beta1, _power_step(step, cfg.beta1)))
    bc2 = torch.sqrt(1 - torch.pow(cfg.beta2, _power_step(step, cfg.beta2)))
    params.sub_(exp_avg / (exp_avg_sq.sqrt() / bc2 + cfg.adam_eps) * step_size)


def flat(gs):
    return torch.cat([g.reshape(-1) for g in gs])


def update(cfg: UpdateConfig, policy_step, state, batch, noise):
    tiled = cfg.tiled_layers
    pa = unflatten(state.actor[0], cfg.shapes["actor"])
    pq1 = unflatten(state.qf_1[0], cfg.shapes["critic_q"])
    pq2 = unflatten(state.qf_2[0], cfg.shapes["critic_q"])
    pv = unflatten(state.vf[0], cfg.shapes["critic_v"])
    pvt = unflatten(state.vf_target, cfg.shapes["critic_v"])
    log_alpha = state.log_alpha[0]
    obs, next_obs, acts, rews, done = batch
    wa, wq1, wq2, wv, wvt = (transposed(p, tiled) for p in (pa, pq1, pq2, pv, pvt))
    with torch.no_grad():
        q_target = rews + cfg.gamma * critic(next_obs, pvt, tiled, wvt) * (1 - done)
    sa = torch.cat((obs, acts), dim=-1)

    def losses(pa, pq1, pq2, pv):
        h = trunk(obs, pa, tiled, wa)
        log_std_raw = F.linear(h, pa[-4], pa[-3])
        mean_raw = F.linear(h, pa[-2], pa[-1])
        new_action, log_prob = TanhNormal.apply(mean_raw, log_std_raw, noise,
                                                cfg.log_std_min, cfg.log_std_max)
        gap = (log_prob + cfg.target_entropy).detach()
        alpha_before = log_alpha.exp()
        alpha_loss = (-alpha_before * gap).mean()
        alpha_grad = -(gap.mean(0)) * alpha_before
        # alpha's Adam step, functionally (the new alpha is used below)
        p, m, v, st = state.log_alpha
        st1 = st + 1
        m1 = m.lerp(alpha_grad, 1 - cfg.beta1)
        v1 = v * cfg.beta2 + alpha_grad * alpha_grad * (1 - cfg.beta2)
        s = st1[0].to(p.dtype)
        step_size = cfg.lr / (1 - torch.pow(cfg.beta1, _power_step(s, cfg.beta1)))
        bc2 = torch.sqrt(1 - torch.pow(cfg.beta2, _power_step(s, cfg.beta2)))
        p1 = p - m1 / (v1.sqrt() / bc2 + cfg.adam_eps) * step_size
        alpha = p1.exp().detach()
        q1 = critic(sa, pq1, tiled, wq1)
        q2 = critic(sa, pq2, tiled, wq2)
        qf_loss = F.mse_loss(q1, q_target) + F.mse_loss(q2, q_target)
        v_pred = critic(obs, pv, tiled, wv)
        s_new = torch.cat((obs, new_action), dim=-1)
        dq1 = [t.detach() for t in pq1]
        dq2 = [t.detach() for t in pq2]
        q_min = torch.minimum(critic(s_new, dq1, tiled, wq1), critic(s_new, dq2, tiled, wq2))
        vf_loss = F.mse_loss(v_pred, (q_min - alpha * log_prob).detach())
        total = qf_loss + vf_loss
        if policy_step:
            actor_loss = (alpha * log_prob - (q_min - v_pred.detach())).mean()
            total = total + actor_loss
        else:
            actor_loss = torch.zeros_like(vf_loss)
        return total, (actor_loss, qf_loss, vf_loss, alpha_loss, p1, m1, v1, st1)

    argnums = (0, 1, 2, 3) if policy_step else (1, 2, 3)
    grads, aux = torch.func.grad(losses, argnums=argnums, has_aux=True)(pa, pq1, pq2, pv)
    actor_loss, qf_loss, vf_loss, alpha_loss, p1, m1, v1, st1 = aux
    la = state.log_alpha
    la[0].copy_(p1); la[1].copy_(m1); la[2].copy_(v1); la[3].copy_(st1)
    if policy_step:
        ga, gq1, gq2, gv = grads
        adam_(state.actor, flat(ga), cfg)
        torch.ops.fastsac.polyak_([state.vf_target], [state.vf[0]], cfg.tau)
    else:
        gq1, gq2, gv = grads
    adam_(state.qf_1, flat(gq1), cfg)
    adam_(state.qf_2, flat(gq2), cfg)
    adam_(state.vf, flat(gv), cfg)
    return torch.stack((actor_loss, qf_loss, vf_loss, alpha_loss.reshape(())))


def make(cfg, compile=True):
    def fn(policy_step, state, batch, noise):
        return update(cfg, policy_step, state, batch, noise)
    if not compile:
        return fn
    return torch.compile(fn, fullgraph=True, dynamic=False,
                         options={"cpp_wrapper": True, **kernel_thread_options(cfg)})


def update_eager(cfg: UpdateConfig, policy_step, state, batch, noise):
    """The same losses, gradients by torch.autograd.grad w.r.t. the flat buffers (eager)."""
    tiled = cfg.tiled_layers
    flats = [state.actor[0], state.qf_1[0], state.qf_2[0], state.vf[0]]
    leaves = [f.detach().requires_grad_() for f in flats]
    with torch.enable_grad():
        pa = unflatten(leaves[0], cfg.shapes["actor"])
        pq1 = unflatten(leaves[1], cfg.shapes["critic_q"])
        pq2 = unflatten(leaves[2], cfg.shapes["critic_q"])
        pv = unflatten(leaves[3], cfg.shapes["critic_v"])
    pvt = unflatten(state.vf_target, cfg.shapes["critic_v"])
    log_alpha = state.log_alpha[0]
    obs, next_obs, acts, rews, done = batch
    with torch.no_grad():
        wa, wq1, wq2, wv, wvt = (transposed(p, tiled) for p in (pa, pq1, pq2, pv, pvt))
        q_target = rews + cfg.gamma * critic(next_obs, pvt, tiled, wvt) * (1 - done)
    sa = torch.cat((obs, acts), dim=-1)
    with torch.enable_grad():
        h = trunk(obs, pa, tiled, wa)
        log_std_raw = F.linear(h, pa[-4], pa[-3])
        mean_raw = F.linear(h, pa[-2], pa[-1])
        new_action, log_prob = TanhNormal.apply(mean_raw, log_std_raw, noise,
                                                cfg.log_std_min, cfg.log_std_max)
        gap = (log_prob + cfg.target_entropy).detach()
        alpha_before = log_alpha.exp()
        alpha_loss = (-alpha_before * gap).mean()
        adam_(state.log_alpha, -(gap.mean(0)) * alpha_before, cfg)
        alpha = log_alpha.exp()
        q1 = critic(sa, pq1, tiled, wq1)
        q2 = critic(sa, pq2, tiled, wq2)
        qf_loss = F.mse_loss(q1, q_target) + F.mse_loss(q2, q_target)
        v_pred = critic(obs, pv, tiled, wv)
        s_new = torch.cat((obs, new_action), dim=-1)
        dq1 = [t.detach() for t in pq1]
        dq2 = [t.detach() for t in pq2]
        q_min = torch.minimum(critic(s_new, dq1, tiled, wq1), critic(s_new, dq2, tiled, wq2))
        vf_loss = F.mse_loss(v_pred, (q_min - alpha * log_prob).detach())
        total = qf_loss + vf_loss
        if policy_step:
            actor_loss = (alpha * log_prob - (q_min - v_pred.detach())).mean()
            total = total + actor_loss
            ga, gq1, gq2, gv = torch.autograd.grad(total, leaves)
        else:
            actor_loss = torch.zeros_like(vf_loss)
            gq1, gq2, gv = torch.autograd.grad(total, leaves[1:])
    if policy_step:
        adam_(state.actor, ga, cfg)
        torch.ops.fastsac.polyak_([state.vf_target], [state.vf[0]], cfg.tau)
    adam_(state.qf_1, gq1, cfg)
    adam_(state.qf_2, gq2, cfg)
    adam_(state.vf, gv, cfg)
    return torch.stack((actor_loss.detach(), qf_loss.detach(), vf_loss.detach(), alpha_loss.reshape(())))


def make_eager(cfg):
    def fn(policy_step, state, batch, noise):
        return update_eager(cfg, policy_step, state, batch, noise)
    return fn
