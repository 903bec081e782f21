"""The fused ops against the composite formula of both actor heads, opcheck, gradcheck,
torch.func, torch.compile."""

import sys

import pytest
import torch

from fastsac import ops
from fastsac.networks import NOTEBOOK_HEAD, SB3_HEAD, Actor
from fastsac.reference import tanh_normal_sample
from tests.conftest import CUDA, requires_cuda, simd_builds

HEADS = {"v1": NOTEBOOK_HEAD, "v2": SB3_HEAD}
H = NOTEBOOK_HEAD
LO, HI = H.log_std_min, H.log_std_max


def fused(m, s, e, head=H):
    return ops.tanh_normal(m, s, e, head.log_std_min, head.log_std_max, head.tanh_mean)


def fused_backward(g_a, g_lp, m, s, e, head=H):
    return torch.ops.fastsac.tanh_normal_backward(g_a, g_lp, m, s, e, head.log_std_min,
                                                  head.log_std_max, head.tanh_mean)


def test_extension_built():
    """The compiled extension must be what runs: a pure-torch fallback fails the suite."""
    assert ops.EXTENSION_LOADED, f"fastsac._C did not load: {ops.EXTENSION_ERROR}"
    ops.require_extension()
    assert torch._C._dispatch_has_kernel_for_dispatch_key("fastsac::tanh_normal", "CPU")
    if CUDA:
        assert ops.has_cuda_kernels(), "CUDA is available but the CUDA kernels were not built"


def _inputs(shape, dtype, device="cpu", scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda: (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(device, dtype)  # noqa: E731
    return make(), make(), torch.randn(shape, generator=g, dtype=torch.float64).to(device, dtype)


# inputs that stress the formula: saturated tanh of the mean and of log_std (tiny and large std)
REGIMES = {
    "normal": 1.0,
    "saturated": 12.0,
}


def assert_rel(got, want, tol, floor=0.0):
    """Norm-wise relative error: ||got - want|| <= tol * ||want|| + floor (and no NaN)."""
    got, want = got.double().cpu(), want.double().cpu()
    assert torch.isfinite(got).all()
    diff = torch.linalg.vector_norm(got - want).item()
    scale = torch.linalg.vector_norm(want).item()
    assert diff <= tol * scale + floor, f"||diff|| {diff:.3g}, ||want|| {scale:.3g}, tol {tol:.1g}"


def _unsaturated_rows(action):
    return (action.abs() < 0.999).all(-1)


def _composite64(m, s, e, head=H):
    return tanh_normal_sample(m.double().cpu(), s.double().cpu(), e.double().cpu(), head)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("shape", [(1, 1), (128, 1), (64, 6), (4, 5, 3)])
def test_forward_matches_composite(shape, regime, head):
    head = HEADS[head]
    m, s, e = _inputs(shape, torch.float64, scale=REGIMES[regime])
    action, log_prob = fused(m, s, e, head)
    ref_action, ref_log_prob = _composite64(m, s, e, head)
    assert action.shape == shape and log_prob.shape == (*shape[:-1], 1)
    assert_rel(action, ref_action, 1e-7)
    assert_rel(log_prob, ref_log_prob, 1e-7)
    # float32 kernel against the float64 composite (the float32 composite itself loses digits
    # when std is tiny; the fused form does not). Rows whose action saturates are left out of
    # the log-prob check: there log(1 - a^2 + 1e-7) is limited by the float32 rounding of a
    # itself, in any float32 implementation.
    m32, s32, e32 = m.float(), s.float(), e.float()
    action32, log_prob32 = fused(m32, s32, e32, head)
    ref_action, ref_log_prob = _composite64(m32, s32, e32, head)
    torch.testing.assert_close(action32.double(), ref_action, rtol=1e-4, atol=1e-5)
    rows = _unsaturated_rows(ref_action)
    assert_rel(log_prob32[rows], ref_log_prob[rows], 1e-4)
    assert torch.isfinite(log_prob32).all()


def test_std_extremes():
    """log_std at both ends of [-20, 2]: std = 2e-9 and std = 7.4."""
    m = torch.linspace(-3, 3, 40, dtype=torch.float64).reshape(20, 2)
    e = torch.randn(m.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for s_value in (-30.0, 30.0):
        s = torch.full_like(m, s_value)
        action, log_prob = fused(m, s, e)
        ref_action, ref_log_prob = _composite64(m, s, e)
        assert_rel(action, ref_action, 1e-7)
        assert_rel(log_prob, ref_log_prob, 1e-7)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("shape", [(1, 1), (128, 1), (64, 6), (4, 5, 3)])
def test_backward_matches_composite(shape, regime, head):
    head = HEADS[head]
    m, s, e = _inputs(shape, torch.float64, scale=REGIMES[regime], seed=1)
    g = torch.Generator().manual_seed(2)
    g_a = torch.randn(shape, dtype=torch.float64, generator=g)
    g_lp = torch.randn((*shape[:-1], 1), dtype=torch.float64, generator=g)

    def grads(fn, m, s):
        m = m.clone().requires_grad_()
        s = s.clone().requires_grad_()
        a, lp = fn(m, s)
        torch.autograd.backward((a, lp), (g_a.to(a.dtype), g_lp.to(a.dtype)))
        return m.grad, s.grad

    ref = grads(lambda m, s: tanh_normal_sample(m, s, e, head), m, s)
    got64 = grads(lambda m, s: fused(m, s, e, head), m, s)
    for got, want in zip(got64, ref, strict=True):
        assert_rel(got, want, 1e-7)
    fused32 = grads(lambda m, s: fused(m, s, e.float(), head), m.float(), s.float())
    rows = _unsaturated_rows(tanh_normal_sample(m, s, e, head)[0])
    for got, want in zip(fused32, ref, strict=True):
        # with an absolute floor: where tanh saturates, 1 - tanh^2 is exactly 0 in float32 and
        # ~1e-10 in float64, a relative error that says nothing about the kernel
        assert_rel(got[rows], want[rows], 1e-4, floor=1e-6)


@pytest.mark.parametrize("head", HEADS)
def test_fallback_kernels_match_extension(head):
    """The pure-torch fallback (used only when _C is missing) computes what the kernels do."""
    head = HEADS[head]
    args = (head.log_std_min, head.log_std_max, head.tanh_mean)
    m, s, e = _inputs((33, 4), torch.float64, scale=3.0)
    for x, y in zip(fused(m, s, e, head), ops._tanh_normal_torch(m, s, e, *args), strict=True):
        torch.testing.assert_close(x, y)
    g = torch.Generator().manual_seed(7)
    g_a = torch.randn(m.shape, dtype=torch.float64, generator=g)
    g_lp = torch.randn((33, 1), dtype=torch.float64, generator=g)
    got = fused_backward(g_a, g_lp, m, s, e, head)
    want = ops._tanh_normal_backward_torch(g_a, g_lp, m, s, e, *args)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize("head", HEADS)
def test_gradcheck_the_op_and_its_torch_func_form(head):
    """The op's registered autograd and ops.tanh_normal (the form torch.func runs) give the
    same gradients, and both pass gradcheck."""
    head = HEADS[head]
    args = (head.log_std_min, head.log_std_max, head.tanh_mean)
    m, s, e = _inputs((5, 3), torch.float64, seed=3, scale=0.5)
    m.requires_grad_()
    s.requires_grad_()
    assert torch.autograd.gradcheck(lambda m, s: fused(m, s, e, head), (m, s))
    assert torch.autograd.gradcheck(lambda m, s: torch.ops.fastsac.tanh_normal(m, s, e, *args),
                                    (m, s))

    def loss(m, s):
        a, lp = fused(m, s, e, head)
        return (a * a).sum() + lp.sum()

    got = torch.func.grad(loss, argnums=(0, 1))(m.detach(), s.detach())
    want = torch.autograd.grad(loss(m, s), (m, s))
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y)


def _opcheck_samples(device):
    samples = []
    for shape in [(1, 1), (7, 1), (16, 6), (2, 3, 6)]:
        for dtype in (torch.float32, torch.float64):
            m, s, e = _inputs(shape, dtype, device)
            samples.append((m.requires_grad_(), s.requires_grad_(), e))
    base = torch.randn(6, 8, dtype=torch.float64, device=device)
    samples.append((base.t().requires_grad_(), torch.randn(8, 6, dtype=torch.float64,
                    device=device).requires_grad_(), torch.randn(6, 8, device=device,
                    dtype=torch.float64).t()))  # non-contiguous
    return samples


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_opcheck_tanh_normal(device):
    for m, s, e in _opcheck_samples(device):
        for head in HEADS.values():
            torch.library.opcheck(torch.ops.fastsac.tanh_normal.default,
                                  (m, s, e, head.log_std_min, head.log_std_max, head.tanh_mean))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_opcheck_polyak(device):
    for dtype in (torch.float32, torch.float64):
        target = [torch.randn(4, 3, dtype=dtype, device=device), torch.randn(7, dtype=dtype,
                  device=device), torch.randn(5, 2, dtype=dtype, device=device).t()]
        source = [torch.randn_like(t) for t in target]
        torch.library.opcheck(torch.ops.fastsac.polyak_.default, (target, source, 0.05))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_polyak_matches_loop(device):
    g = torch.Generator().manual_seed(0)
    shapes = [(128, 3), (128,), (128, 128), (128,), (1, 128), (1,)] * 9  # 54 tensors: 2 chunks
    for dtype in (torch.float32, torch.float64):
        target = [torch.randn(s, generator=g, dtype=dtype).to(device) for s in shapes]
        source = [torch.randn(s, generator=g, dtype=dtype).to(device) for s in shapes]
        expected = [0.005 * s + (1.0 - 0.005) * t for t, s in zip(target, source, strict=True)]
        ops.polyak_(target, source, 0.005)
        for got, want in zip(target, expected, strict=True):
            atol = 1e-6 if dtype == torch.float32 else 1e-14
            torch.testing.assert_close(got, want, rtol=0, atol=atol)
    wide = torch.randn(6, 4, device=device)
    view = wide.t()  # non-contiguous target updated in place
    src = torch.randn(4, 6, device=device)
    want = 0.3 * src + 0.7 * view
    ops.polyak_([view], [src], 0.3)
    torch.testing.assert_close(wide.t(), want)


def test_best_simd_build_is_the_default():
    assert "portable" in simd_builds()
    assert ops.cpu_simd() == simd_builds()[-1]
    with pytest.raises(ValueError, match="not one of"):
        ops.cpu_simd("sse9")


# sizes around the vector widths (8, 16) and the 512-element chunk of the forward, and a row
# longer than a chunk
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (37, 6), (128, 6), (97, 1), (2, 700)])
def test_simd_builds_match_float64(simd, shape, head):
    head = HEADS[head]
    m, s, e = _inputs(shape, torch.float32, scale=2.0, seed=11)
    g = torch.Generator().manual_seed(12)
    g_a = torch.randn(shape, generator=g)
    g_lp = torch.randn((*shape[:-1], 1), generator=g)
    action, log_prob = fused(m, s, e, head)
    grads = fused_backward(g_a, g_lp, m, s, e, head)
    m64, s64, e64 = m.double(), s.double(), e.double()
    want_action, want_log_prob = fused(m64, s64, e64, head)  # float64: portable loops
    want_grads = fused_backward(g_a.double(), g_lp.double(), m64, s64, e64, head)
    # the v2 head's unbounded mean: z = mean + std * e rounds at the float32 ulp of the mean
    atol = 1e-6 if head.tanh_mean else 1e-6 * (1 + m.abs().max().item())
    torch.testing.assert_close(action.double(), want_action, rtol=1e-5, atol=atol)
    rows = _unsaturated_rows(want_action)
    assert_rel(log_prob[rows], want_log_prob[rows], 1e-5)
    for got, want in zip(grads, want_grads, strict=True):
        assert_rel(got[rows], want[rows], 1e-4, floor=1e-5)


def test_simd_rows_do_not_depend_on_the_batch(simd):
    """A row's float32 result is the same bits alone or at any place in a batch (the last
    partial vector runs the same code as the full ones)."""
    m, s, e = _inputs((45, 6), torch.float32, scale=2.0, seed=13)
    g_a, g_lp = torch.randn(45, 6), torch.randn(45, 1)
    batch = fused(m, s, e)
    batch_grads = fused_backward(g_a, g_lp, m, s, e)
    for r in (0, 17, 44):
        one = fused(m[r:r + 1], s[r:r + 1], e[r:r + 1])
        one_grads = fused_backward(g_a[r:r + 1], g_lp[r:r + 1], m[r:r + 1], s[r:r + 1],
                                   e[r:r + 1])
        for x, y in zip((*one, *one_grads), (*batch, *batch_grads), strict=True):
            assert torch.equal(x, y[r:r + 1])


def test_simd_polyak_rounds_like_the_loop(simd):
    g = torch.Generator().manual_seed(14)
    target = [torch.randn(n, generator=g) for n in (1, 15, 16, 17, 129, 40000)]
    source = [torch.randn_like(t) for t in target]
    want = [0.005 * s + (1.0 - 0.005) * t for t, s in zip(target, source, strict=True)]
    ops.polyak_(target, source, 0.005)
    for got, w in zip(target, want, strict=True):
        assert torch.equal(got, w)


# (M, K, N): SAC's 128-wide layers, tile edges (8 rows, 32 columns), K = 1, and the narrow
# outputs that the op hands to torch.mm
MM_SHAPES = [(128, 128, 128), (37, 5, 40), (128, 4, 128), (128, 1, 128), (9, 128, 17),
             (1, 128, 128), (128, 128, 1), (0, 3, 16), (3, 0, 16)]


@pytest.mark.parametrize("shape", MM_SHAPES)
def test_mm_matches_torch(simd, shape):
    m, k, n = shape
    g = torch.Generator().manual_seed(m * 1000 + k * 10 + n)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    want = a.double() @ b.double()
    for a_in, b_in in ((a, b), (a.t().contiguous().t(), b), (a, b.t().contiguous().t())):
        got = torch.ops.fastsac.mm(a_in, b_in)  # transposed a: strided reads; transposed b: copy
        assert got.shape == (m, n) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5 * max(k, 1) ** 0.5)
    a64, b64 = a.double(), b.double()
    torch.testing.assert_close(torch.ops.fastsac.mm(a64, b64), a64 @ b64, rtol=1e-12, atol=1e-12)


def test_mm_bits_do_not_depend_on_threads():
    a, b = torch.randn(128, 128), torch.randn(128, 128)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = torch.ops.fastsac.mm(a, b)
        torch.set_num_threads(2)
        two = torch.ops.fastsac.mm(a, b)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)


def test_opcheck_mm_and_the_tiled_linear_gradients():
    """fastsac::mm is differentiated through ops.linear (the update's form): its gradients are
    F.linear's."""
    for dtype in (torch.float32, torch.float64):
        for m, k, n in ((8, 4, 32), (5, 3, 2), (33, 17, 40)):
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            torch.library.opcheck(torch.ops.fastsac.mm.default, (a, b),
                                  test_utils=("test_schema", "test_faketensor",
                                              "test_aot_dispatch_dynamic"))
            torch.library.opcheck(torch.ops.fastsac.mm.default, (a.t(), a),
                                  test_utils=("test_schema", "test_faketensor"))
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: ops.linear(x, w, b, w.detach().t()
                                                               .contiguous()), (x, w, b))
    got = torch.func.grad(lambda x, w, b: ops.linear(x, w, b, w.t().contiguous()).square().sum(),
                          argnums=(0, 1, 2))(x.detach(), w.detach(), b.detach())
    want = torch.autograd.grad(torch.nn.functional.linear(x, w, b).square().sum(), (x, w, b))
    for g1, g2 in zip(got, want, strict=True):
        torch.testing.assert_close(g1, g2)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        torch.ops.fastsac.mm(torch.randn(2, 3), torch.randn(4, 5))


@pytest.mark.parametrize("head", HEADS)
def test_policy_action_matches_fallback_and_opcheck(head):
    head = HEADS[head]
    args = (head.log_std_min, head.log_std_max, head.tanh_mean)
    for dtype in (torch.float32, torch.float64):
        actor = Actor(5, 3, (16, 8), head).to(dtype)
        params = [p.detach() for p in actor.parameters()]
        state, eps = torch.randn(5, dtype=dtype), torch.randn(3, dtype=dtype)
        for noise in (eps, None):  # a sample, and the deterministic action
            got = torch.ops.fastsac.policy_action(state, params, noise, *args)
            want = ops._policy_action_torch(state, params, noise, *args)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            torch.library.opcheck(torch.ops.fastsac.policy_action.default,
                                  (state, params, noise, *args))
        zero = torch.ops.fastsac.policy_action(state, params, torch.zeros(3, dtype=dtype), *args)
        assert torch.equal(torch.ops.fastsac.policy_action(state, params, None, *args), zero)
        rows = torch.randn(4, 5, dtype=dtype)
        together = torch.ops.fastsac.policy_action(rows, params, None, *args)
        for r in range(4):
            assert torch.equal(together[r], torch.ops.fastsac.policy_action(rows[r], params,
                                                                            None, *args))
    params = [p.detach() for p in Actor(5, 3).parameters()]
    state, eps = torch.randn(5), torch.randn(3)
    with pytest.raises(RuntimeError, match="2 per hidden layer"):
        torch.ops.fastsac.policy_action(state, params[:5], eps, LO, HI)
    with pytest.raises(RuntimeError, match="heads do not take"):
        torch.ops.fastsac.policy_action(state, params[:6], eps, LO, HI)
    with pytest.raises(RuntimeError, match="hidden1 does not take 4 inputs"):
        torch.ops.fastsac.policy_action(torch.randn(4), params, eps, LO, HI)
    for head_bias in (-3, -1):  # log_std_layer's, mu_layer's: one value short
        short = list(params)
        short[head_bias] = short[head_bias][:-1]
        with pytest.raises(RuntimeError, match="heads' biases must hold 3 values"):
            torch.ops.fastsac.policy_action(state, short, eps, LO, HI)


def test_bad_inputs_raise():
    m = torch.randn(4, 2)
    with pytest.raises(RuntimeError, match="same shape"):
        fused(m, torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(RuntimeError, match="float32 or float64"):
        fused(m.half(), m.half(), m.half())
    with pytest.raises(RuntimeError, match="differ in length"):
        ops.polyak_([torch.zeros(2)], [], 0.1)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ops.polyak_([torch.zeros(2)], [torch.zeros(3)], 0.1)


@pytest.mark.compile
def test_compile_fullgraph_uses_both_ops():
    """Both ops trace into one graph with no break, run through inductor, and tanh_normal's
    registered autograd traces into the compiled backward."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    def step(m, s, e, targets, sources):
        action, log_prob = torch.ops.fastsac.tanh_normal(m, s, e, LO, HI)
        ops.polyak_(targets, sources, 0.1)
        return action * 2, log_prob.sum()

    compiled = torch.compile(step, fullgraph=True)
    m, s, e = _inputs((8, 2), torch.float32)
    targets = [torch.randn(3, 3), torch.randn(3)]
    sources = [torch.randn(3, 3), torch.randn(3)]
    eager_targets = [t.clone() for t in targets]
    results = []
    for fn, tgt in ((step, eager_targets), (compiled, targets)):
        mg, sg = m.clone().requires_grad_(), s.clone().requires_grad_()
        out = fn(mg, sg, e, tgt, sources)
        (out[0].sum() + out[1]).backward()
        results.append((*out, mg.grad, sg.grad))
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want)
    for x, y in zip(targets, eager_targets, strict=True):
        torch.testing.assert_close(x, y)
    assert not torch._dynamo.utils.counters["graph_break"]


@requires_cuda
def test_cuda_matches_cpu():
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        m, s, e = _inputs((300, 6), dtype, scale=3.0)
        g_a, g_lp = torch.randn_like(m), torch.randn(300, 1, dtype=dtype)
        for head in HEADS.values():
            cpu = fused(m, s, e, head)
            gpu = fused(m.cuda(), s.cuda(), e.cuda(), head)
            for x, y in zip(gpu, cpu, strict=True):
                torch.testing.assert_close(x.cpu(), y, rtol=tol, atol=tol)
            cpu_b = fused_backward(g_a, g_lp, m, s, e, head)
            gpu_b = fused_backward(g_a.cuda(), g_lp.cuda(), m.cuda(), s.cuda(), e.cuda(), head)
            for x, y in zip(gpu_b, cpu_b, strict=True):
                torch.testing.assert_close(x.cpu(), y, rtol=tol * 10, atol=tol * 10)


@requires_cuda
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("regime", REGIMES)
def test_cuda_matches_composite(regime, head):
    head = HEADS[head]
    m, s, e = _inputs((256, 6), torch.float64, "cuda", scale=REGIMES[regime])
    action, log_prob = fused(m, s, e, head)
    ref_action, ref_log_prob = _composite64(m, s, e, head)
    torch.testing.assert_close(action.cpu(), ref_action, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(log_prob.cpu(), ref_log_prob, rtol=1e-7, atol=1e-6)


def _adam_case(dtype, n=(40, 3, 300), seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(k, generator=g, dtype=torch.float64).to(dtype) for k in n]
    grads = [torch.randn(k, generator=g, dtype=torch.float64).to(dtype) for k in n]
    return params, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_op_steps_as_torch_optim_adam(simd, dtype):
    """fastsac::adam_ on a flat buffer against torch.optim.Adam on the separate tensors, three
    steps, weight decay on; and against its own pure-torch fallback."""
    params, grads = _adam_case(dtype)
    settings = torch.tensor([1e-2, 0.8, 0.99, 1e-6, 0.1], dtype=torch.float64)
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.Adam(ref, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    flat = torch.cat(params)
    state = (flat.clone(), torch.zeros_like(flat), torch.zeros_like(flat),
             torch.zeros(len(params)))
    fallback = tuple(t.clone() for t in state)
    for step in range(3):
        scaled = [g * (step + 1) for g in grads]
        for p, g in zip(ref, scaled, strict=True):
            p.grad = g.clone()
        opt.step()
        torch.ops.fastsac.adam_(*state, scaled, settings)
        ops.adam_torch_(*fallback, scaled, settings)
    want = torch.cat([p.detach() for p in ref])
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(state[0], want, rtol=tol, atol=tol)
    torch.testing.assert_close(state[0], fallback[0], rtol=tol, atol=tol)
    assert state[3].tolist() == [3.0, 3.0, 3.0]
    torch.testing.assert_close(state[2], torch.cat([opt.state[p]["exp_avg_sq"] for p in ref]),
                               rtol=tol, atol=tol * 1e-3)


def test_opcheck_adam_and_bad_input():
    params, grads = _adam_case(torch.float64)
    flat = torch.cat(params)
    args = (flat, torch.zeros_like(flat), torch.zeros_like(flat), torch.zeros(3), grads,
            torch.tensor([1e-3, 0.9, 0.999, 1e-8, 0.0], dtype=torch.float64))
    torch.library.opcheck(torch.ops.fastsac.adam_.default, args,
                          test_utils=("test_schema", "test_faketensor"))
    with pytest.raises(RuntimeError, match="gradients for 43 parameters"):
        torch.ops.fastsac.adam_(*args[:4], grads[:2], args[5])


def test_tiles_run_where_they_were_measured_to_pay(monkeypatch):
    """By default the tiles run with the AVX-512 build on an AMD CPU only; FASTSAC_TILES=1/0
    forces them on or off where the AVX-512 build runs, and nothing turns them on elsewhere."""
    if sys.platform.startswith("linux"):
        assert ops.cpu_vendor() != ""
    monkeypatch.setattr(ops, "cpu_simd", lambda request=None: "avx512")
    monkeypatch.delenv("FASTSAC_TILES", raising=False)
    for vendor, want in (("AuthenticAMD", True), ("GenuineIntel", False), ("", False)):
        monkeypatch.setattr(ops, "cpu_vendor", lambda v=vendor: v)
        assert ops.tiles_pay() is want, vendor
    monkeypatch.setenv("FASTSAC_TILES", "1")
    assert ops.tiles_pay()  # on an Intel CPU too
    monkeypatch.setenv("FASTSAC_TILES", "0")
    monkeypatch.setattr(ops, "cpu_vendor", lambda: "AuthenticAMD")
    assert not ops.tiles_pay()
    monkeypatch.setenv("FASTSAC_TILES", "1")
    monkeypatch.setattr(ops, "cpu_simd", lambda request=None: "avx2")
    assert not ops.tiles_pay()
