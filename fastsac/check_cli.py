"""``fastsac check``: is the fast path still right on this machine?

Runs the agreement harness on CPU (and CUDA when available) and prints one table: each fused op
against the notebook's composite formula, and the full update of every fast path (eager with
the fused ops, the ahead-of-time C++ update, compiled, compiled on CUDA, CUDA graph) against
the eager reference after 1 and after N updates, with the tolerance and PASS/FAIL. Exits 1 on
any FAIL.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from fastsac import agreement, native_update, ops
from fastsac.agent import FastSAC
from fastsac.base import devices_for
from fastsac.reference import tanh_normal_sample

# (float32, float64) tolerances: max |diff| for parameters and Polyak; norm-wise relative for ops
TOLERANCES = {
    "op": (1e-4, 1e-7),
    "polyak": (1e-6, 1e-14),
    "update x1": (1e-5, 1e-12),
    "update xN": (5e-4, 1e-10),
}


def update_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(after one update, after many): the largest parameter difference from the reference
    that the agreement checks accept, in ``dtype`` (the tests use the same bounds)."""
    f64 = dtype == torch.float64
    return TOLERANCES["update x1"][f64], TOLERANCES["update xN"][f64]


@dataclass
class Row:
    check: str
    path: str
    device: str
    max_abs: float
    max_rel: float
    tol: float
    metric: str  # which of max_abs / max_rel the tolerance applies to

    @property
    def passed(self) -> bool:
        value = self.max_abs if self.metric == "abs" else self.max_rel
        return bool(np.isfinite(value)) and value <= self.tol


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double().cpu(), want.double().cpu()
    return (torch.linalg.vector_norm(got - want) /
            torch.linalg.vector_norm(want).clamp_min(1e-30)).item()


def _abs(got: torch.Tensor, want: torch.Tensor) -> float:
    return (got.double().cpu() - want.double().cpu()).abs().max().item()


def op_rows(device: str, dtype: torch.dtype) -> list[Row]:
    """tanh_normal forward/backward vs the float64 composite; polyak_ vs the notebook's loop."""
    tol_op = TOLERANCES["op"][dtype == torch.float64]
    g = torch.Generator().manual_seed(0)
    m, s, e = (torch.randn(512, 6, generator=g, dtype=torch.float64) for _ in range(3))
    ref_a, ref_lp = tanh_normal_sample(m, s, e, ops.LOG_STD_MIN, ops.LOG_STD_MAX)
    # rows whose action saturates are limited by float32 itself in any implementation
    rows = (ref_a.abs() < 0.999).all(-1) if dtype == torch.float32 else slice(None)
    md, sd, ed = (x.to(device, dtype, copy=True) for x in (m, s, e))
    md.requires_grad_()
    sd.requires_grad_()
    a, lp = ops.tanh_normal(md, sd, ed)
    out = [Row("tanh_normal forward", "fused op", device,
               max(_abs(a[rows], ref_a[rows]), _abs(lp[rows], ref_lp[rows])),
               max(_rel(a[rows], ref_a[rows]), _rel(lp[rows], ref_lp[rows])), tol_op, "rel")]
    g_a = torch.randn(512, 6, generator=g, dtype=torch.float64)
    g_lp = torch.randn(512, 1, generator=g, dtype=torch.float64)
    m64, s64 = m.clone().requires_grad_(), s.clone().requires_grad_()
    torch.autograd.backward(tanh_normal_sample(m64, s64, e, ops.LOG_STD_MIN, ops.LOG_STD_MAX),
                            (g_a, g_lp))
    torch.autograd.backward((a, lp), (g_a.to(device, dtype), g_lp.to(device, dtype)))
    pairs = ((md.grad[rows], m64.grad[rows]), (sd.grad[rows], s64.grad[rows]))
    out.append(Row("tanh_normal backward", "fused op", device,
                   max(_abs(x, y) for x, y in pairs), max(_rel(x, y) for x, y in pairs), tol_op,
                   "rel"))
    target = [torch.randn(shape, generator=g, dtype=dtype) for shape in ((128, 3), (128, 128))]
    source = [torch.randn(t.shape, generator=g, dtype=dtype) for t in target]
    want = [5e-3 * s_ + (1.0 - 5e-3) * t for t, s_ in zip(target, source, strict=True)]
    got = [t.to(device) for t in target]
    ops.polyak_(got, [s_.to(device) for s_ in source], 5e-3)
    pairs = list(zip(got, want, strict=True))
    out.append(Row("polyak_", "fused op", device, max(_abs(x, y) for x, y in pairs),
                   max(_rel(x, y) for x, y in pairs),
                   TOLERANCES["polyak"][dtype == torch.float64], "abs"))
    if torch.device(device).type == "cpu":
        out += _cpu_op_rows(g, dtype, tol_op)
    return out


def _cpu_op_rows(g: torch.Generator, dtype: torch.dtype, tol: float) -> list[Row]:
    """The CPU-only ops: fastsac::mm (the update's products) against a float64 product, and
    fastsac::policy_action (select_action) against the actor's composite formula."""
    from fastsac.networks import Actor

    a, b = (torch.randn(128, 128, generator=g, dtype=torch.float64) for _ in range(2))
    got = torch.ops.fastsac.mm(a.to(dtype).t(), b.to(dtype))
    want = a.t() @ b
    rows = [Row(f"mm ({ops.kernel_build()} build)", "fused op", "cpu", _abs(got, want),
                _rel(got, want), tol, "rel")]
    actor = Actor(3, 6).double()
    state, eps = (torch.randn(n, generator=g, dtype=torch.float64) for n in (3, 6))
    with torch.no_grad():
        want, _ = tanh_normal_sample(*actor.heads(state), eps, ops.LOG_STD_MIN,
                                     ops.LOG_STD_MAX)
        got = torch.ops.fastsac.policy_action(
            state.to(dtype), [p.to(dtype) for p in actor.parameters()], eps.to(dtype),
            ops.LOG_STD_MIN, ops.LOG_STD_MAX)
    rows.append(Row("policy_action", "fused op", "cpu", _abs(got, want), _rel(got, want), tol,
                    "rel"))
    return rows


def _update_rows(path: str, device: str, dtype: torch.dtype, n: int, fast_cls=None,
                 **kwargs) -> list[Row]:
    ref, fast = agreement.twin_agents(device=device, dtype=dtype,
                                      fast_cls=fast_cls or FastSAC, **kwargs)
    one, _ = agreement.run_twins(ref, fast, 1, check_losses=False)
    rel_one = agreement.max_param_rel_diff(ref, fast)
    _, many = agreement.run_twins(ref, fast, n - 1, seed=1, start_step=2, check_losses=False)
    rel_many = agreement.max_param_rel_diff(ref, fast)
    f64 = dtype == torch.float64
    return [Row("update x1", path, device, one, rel_one, TOLERANCES["update x1"][f64], "abs"),
            Row(f"update x{n}", path, device, many, rel_many, TOLERANCES["update xN"][f64], "abs")]


def _graph_rows(device: str, dtype: torch.dtype, n: int) -> list[Row]:
    """The CUDA-graph path draws its own batch and noise: replay them through the reference."""
    ref, fast = agreement.twin_agents(device=device, dtype=dtype, compile=True, cuda_graph=True)
    one, many = agreement.run_graph_twins(ref, fast, n)
    f64 = dtype == torch.float64
    return [Row("update x1", "compiled + CUDA graph", device, *one, TOLERANCES["update x1"][f64],
                "abs"),
            Row(f"update x{n}", "compiled + CUDA graph", device, *many,
                TOLERANCES["update xN"][f64], "abs")]


def run_checks(devices: list[str], dtype: torch.dtype, updates: int = 60,
               compiled: bool = True, fast_cls=None) -> list[Row]:
    rows: list[Row] = []
    for device in devices:
        rows += op_rows(device, dtype)
        rows += _update_rows("eager + fused ops", device, dtype, updates, fast_cls, compile=False)
        if native_update.available(device):
            rows += _update_rows("C++ op (compile bridge)", device, dtype, updates, fast_cls,
                                 native=True, compile=False)
        if compiled:
            rows += _update_rows("compiled", device, dtype, updates, fast_cls, compile=True,
                                 cuda_graph=False)
            if device == "cuda":
                rows += _graph_rows(device, dtype, updates)
    return rows


def format_table(rows: list[Row]) -> str:
    header = f"{'check':<22} {'fast path':<24} {'device':<6} {'max |diff|':>11} " \
             f"{'max rel':>10} {'tolerance':>14}  result"
    lines = [header, "-" * len(header)]
    for r in rows:
        tol = f"{r.metric} <= {r.tol:.0e}"
        lines.append(f"{r.check:<22} {r.path:<24} {r.device:<6} {r.max_abs:>11.3e} "
                     f"{r.max_rel:>10.3e} {tol:>14}  {'PASS' if r.passed else 'FAIL'}")
    return "\n".join(lines)


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="agreement report: eager reference vs every fast path",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="float64 runs the exact mode (tolerances ~1e-10)")
    p.add_argument("--updates", type=int, default=60, help="N in 'after N updates'")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, and CUDA when available")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled paths")


def run(args: argparse.Namespace) -> int:
    if args.updates < 2:
        raise ValueError(f"--updates must be >= 2, got {args.updates}")
    devices = devices_for(args.device)
    if not ops.EXTENSION_LOADED:
        print(f"WARNING: fastsac._C is not loaded ({ops.EXTENSION_ERROR}); checking the "
              "pure-torch FALLBACK ops")
    start = time.perf_counter()
    rows = run_checks(devices, getattr(torch, args.dtype), args.updates, not args.no_compile)
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed "
          f"({args.dtype}, {time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0
