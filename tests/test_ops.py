"""The fused ops against the notebook's composite formula, opcheck, gradcheck, torch.compile."""

import pytest
import torch

from fastsac import ops
from fastsac.reference import tanh_normal_sample
from tests.conftest import CUDA, requires_cuda

LO, HI = ops.LOG_STD_MIN, ops.LOG_STD_MAX


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


def _composite64(m, s, e):
    return tanh_normal_sample(m.double().cpu(), s.double().cpu(), e.double().cpu(), LO, HI)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("shape", [(1, 1), (128, 1), (64, 6), (4, 5, 3)])
def test_forward_matches_composite(shape, regime):
    m, s, e = _inputs(shape, torch.float64, scale=REGIMES[regime])
    action, log_prob = ops.tanh_normal(m, s, e)
    ref_action, ref_log_prob = _composite64(m, s, e)
    assert action.shape == shape and log_prob.shape == (*shape[:-1], 1)
    assert_rel(action, ref_action, 1e-7)
    assert_rel(log_prob, ref_log_prob, 1e-7)
    # float32 kernel against the float64 composite (the float32 composite itself loses digits
    # when std is tiny; the fused form does not). Rows whose action saturates are left out of
    # the log-prob check: there log(1 - a^2 + 1e-7) is limited by the float32 rounding of a
    # itself, in any float32 implementation.
    m32, s32, e32 = m.float(), s.float(), e.float()
    action32, log_prob32 = ops.tanh_normal(m32, s32, e32)
    ref_action, ref_log_prob = _composite64(m32, s32, e32)
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
        action, log_prob = ops.tanh_normal(m, s, e)
        ref_action, ref_log_prob = _composite64(m, s, e)
        assert_rel(action, ref_action, 1e-7)
        assert_rel(log_prob, ref_log_prob, 1e-7)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("shape", [(1, 1), (128, 1), (64, 6), (4, 5, 3)])
def test_backward_matches_composite(shape, regime):
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

    ref = grads(lambda m, s: tanh_normal_sample(m, s, e, LO, HI), m, s)
    fused = grads(lambda m, s: ops.tanh_normal(m, s, e), m, s)
    for got, want in zip(fused, ref, strict=True):
        assert_rel(got, want, 1e-7)
    fused32 = grads(lambda m, s: ops.tanh_normal(m, s, e.float()), m.float(), s.float())
    rows = _unsaturated_rows(tanh_normal_sample(m, s, e, LO, HI)[0])
    for got, want in zip(fused32, ref, strict=True):
        # with an absolute floor: where tanh saturates, 1 - tanh^2 is exactly 0 in float32 and
        # ~1e-10 in float64, a relative error that says nothing about the kernel
        assert_rel(got[rows], want[rows], 1e-4, floor=1e-6)


def test_fallback_kernels_match_extension():
    """The pure-torch fallback (used only when _C is missing) computes what the kernels do."""
    m, s, e = _inputs((33, 4), torch.float64, scale=3.0)
    a, lp = ops.tanh_normal(m, s, e)
    fa, flp = ops._tanh_normal_torch(m, s, e, LO, HI)
    torch.testing.assert_close(a, fa)
    torch.testing.assert_close(lp, flp)
    g = torch.Generator().manual_seed(7)
    g_a = torch.randn(m.shape, dtype=torch.float64, generator=g)
    g_lp = torch.randn((33, 1), dtype=torch.float64, generator=g)
    got = torch.ops.fastsac.tanh_normal_backward(g_a, g_lp, m, s, e, LO, HI)
    want = ops._tanh_normal_backward_torch(g_a, g_lp, m, s, e, LO, HI)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y)


def test_gradcheck():
    m, s, e = _inputs((5, 3), torch.float64, seed=3)
    m.requires_grad_()
    s.requires_grad_()
    assert torch.autograd.gradcheck(lambda m, s: ops.tanh_normal(m, s, e), (m, s))


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
        torch.library.opcheck(torch.ops.fastsac.tanh_normal.default, (m, s, e, LO, HI))


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


def test_bad_inputs_raise():
    m = torch.randn(4, 2)
    with pytest.raises(RuntimeError, match="same shape"):
        ops.tanh_normal(m, torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(RuntimeError, match="float32 or float64"):
        ops.tanh_normal(m.half(), m.half(), m.half())
    with pytest.raises(RuntimeError, match="differ in length"):
        ops.polyak_([torch.zeros(2)], [], 0.1)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        ops.polyak_([torch.zeros(2)], [torch.zeros(3)], 0.1)


@pytest.mark.compile
def test_compile_fullgraph_uses_both_ops():
    """Both ops trace into one graph with no break, and run through inductor."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()

    def step(m, s, e, targets, sources):
        action, log_prob = ops.tanh_normal(m, s, e)
        ops.polyak_(targets, sources, 0.1)
        return action * 2, log_prob.sum()

    compiled = torch.compile(step, fullgraph=True)
    m, s, e = _inputs((8, 2), torch.float32)
    targets = [torch.randn(3, 3), torch.randn(3)]
    sources = [torch.randn(3, 3), torch.randn(3)]
    eager_targets = [t.clone() for t in targets]
    want = step(m, s, e, eager_targets, sources)
    got = compiled(m, s, e, targets, sources)
    for x, y in zip(got, want, strict=True):
        torch.testing.assert_close(x, y)
    for x, y in zip(targets, eager_targets, strict=True):
        torch.testing.assert_close(x, y)
    assert not torch._dynamo.utils.counters["graph_break"]


@requires_cuda
def test_cuda_matches_cpu():
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        m, s, e = _inputs((300, 6), dtype, scale=3.0)
        g_a, g_lp = torch.randn_like(m), torch.randn(300, 1, dtype=dtype)
        cpu = ops.tanh_normal(m, s, e)
        gpu = ops.tanh_normal(m.cuda(), s.cuda(), e.cuda())
        for x, y in zip(gpu, cpu, strict=True):
            torch.testing.assert_close(x.cpu(), y, rtol=tol, atol=tol)
        cpu_b = torch.ops.fastsac.tanh_normal_backward(g_a, g_lp, m, s, e, LO, HI)
        gpu_b = torch.ops.fastsac.tanh_normal_backward(g_a.cuda(), g_lp.cuda(), m.cuda(), s.cuda(),
                                                       e.cuda(), LO, HI)
        for x, y in zip(gpu_b, cpu_b, strict=True):
            torch.testing.assert_close(x.cpu(), y, rtol=tol * 10, atol=tol * 10)


@requires_cuda
@pytest.mark.parametrize("regime", REGIMES)
def test_cuda_matches_composite(regime):
    m, s, e = _inputs((256, 6), torch.float64, "cuda", scale=REGIMES[regime])
    action, log_prob = ops.tanh_normal(m, s, e)
    ref_action, ref_log_prob = _composite64(m, s, e)
    torch.testing.assert_close(action.cpu(), ref_action, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(log_prob.cpu(), ref_log_prob, rtol=1e-7, atol=1e-6)
