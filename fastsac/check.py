"""``fastsac check``: is the fast path still right on this machine?

One table: each fused op against its composite formula (both actor heads), and the update of
every fast path (the engine eager, compiled, compiled on CUDA, as a CUDA graph) against the eager
reference after 1 and after N updates, for every variant, with the tolerance and PASS/FAIL.
Exits 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from fastsac import agreement, ops
from fastsac.agreement import tolerance
from fastsac.errors import ConfigError
from fastsac.networks import NOTEBOOK_HEAD, SB3_HEAD, Actor
from fastsac.reference import tanh_normal_sample
from fastsac.variants import VARIANTS


@dataclass
class Row:
    check: str
    path: str
    device: str
    value: float
    tol: float

    @property
    def passed(self) -> bool:
        return self.value == self.value and self.value <= self.tol  # NaN fails


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double().cpu(), want.double().cpu()
    return (torch.linalg.vector_norm(got - want)
            / torch.linalg.vector_norm(want).clamp_min(1e-30)).item()


def op_rows(device: str, dtype: torch.dtype) -> list[Row]:
    """tanh_normal forward and backward against the float64 composite (each head), polyak_
    against the loop, and on CPU policy_action against the composite actor."""
    g = torch.Generator().manual_seed(0)
    tol = tolerance("op", dtype)
    rows = []
    for head in (NOTEBOOK_HEAD, SB3_HEAD):
        m, s, e = (torch.randn(512, 6, generator=g, dtype=torch.float64) for _ in range(3))
        m64, s64 = m.clone().requires_grad_(), s.clone().requires_grad_()
        want = tanh_normal_sample(m64, s64, e, head)
        # rows whose action saturates are limited by float32 itself, in any implementation
        keep = (want[0].abs() < 0.999).all(-1) if dtype == torch.float32 else slice(None)
        md, sd = (x.to(device, dtype).requires_grad_() for x in (m, s))
        got = ops.tanh_normal(md, sd, e.to(device, dtype), head.log_std_min, head.log_std_max,
                              head.tanh_mean)
        grads = [torch.randn(512, 6, generator=g, dtype=torch.float64),
                 torch.randn(512, 1, generator=g, dtype=torch.float64)]
        torch.autograd.backward(want, grads)
        torch.autograd.backward(got, [x.to(device, dtype) for x in grads])
        name = "v1 head" if head.tanh_mean else "v2 head"
        rows.append(Row(f"tanh_normal ({name})", "fused op", device,
                        max(_rel(x[keep], y[keep]) for x, y in zip(got, want, strict=True)), tol))
        rows.append(Row(f"tanh_normal backward ({name})", "fused op", device,
                        max(_rel(md.grad[keep], m64.grad[keep]), _rel(sd.grad[keep],
                                                                     s64.grad[keep])), tol))
    target = [torch.randn(shape, generator=g, dtype=dtype) for shape in ((128, 3), (128, 128))]
    source = [torch.randn(t.shape, generator=g, dtype=dtype) for t in target]
    got = [t.to(device, copy=True) for t in target]
    ops.polyak_(got, [x.to(device) for x in source], 5e-3)
    rows.append(Row("polyak_", "fused op", device, max(
        (x.cpu() - (5e-3 * y + (1.0 - 5e-3) * t)).abs().max().item()
        for x, y, t in zip(got, source, target, strict=True)), tolerance("polyak", dtype)))
    if torch.device(device).type == "cpu":
        a, b = (torch.randn(128, 128, generator=g, dtype=torch.float64) for _ in range(2))
        rows.append(Row(f"mm ({ops.kernel_build()} build)", "fused op", "cpu",
                        _rel(torch.ops.fastsac.mm(a.to(dtype).t(), b.to(dtype)), a.t() @ b), tol))
        for head in (NOTEBOOK_HEAD, SB3_HEAD):
            actor = Actor(3, 6, (64, 64), head).double()
            state = torch.randn(5, 3, generator=g, dtype=torch.float64)
            with torch.no_grad():
                mean_raw, log_std_raw = actor.heads(state)
                want, _ = tanh_normal_sample(mean_raw, log_std_raw, torch.zeros_like(mean_raw),
                                             head)
                got = torch.ops.fastsac.policy_action(
                    state.to(dtype), [p.to(dtype) for p in actor.parameters()], None,
                    head.log_std_min, head.log_std_max, head.tanh_mean)
            rows.append(Row(f"policy_action ({'v1' if head.tanh_mean else 'v2'}, "
                            "deterministic)", "fused op", "cpu", _rel(got, want), tol))
    return rows


def update_rows(variant: str, path: str, device: str, dtype: torch.dtype, n: int,
                **fast_kwargs) -> list[Row]:
    critics = min(3, VARIANTS[variant].n_critics.stop - 1)  # more than two where it may
    ref, fast = agreement.twin_agents(device=device, dtype=dtype, variant=variant,
                                      n_critics=critics, fast_kwargs=fast_kwargs)
    if fast.engine.use_cuda_graph:
        one, many = agreement.run_graph_twins(ref, fast, n)
    else:
        one, many = agreement.run_twins(ref, fast, n)
    label = f"{variant}, {critics} critics"
    return [Row(f"{label} update x1", path, device, one, tolerance("update x1", dtype)),
            Row(f"{label} update x{n}", path, device, many, tolerance("update xN", dtype))]


def run_checks(devices: list[str], dtype: torch.dtype, updates: int = 60,
               compiled: bool = True) -> list[Row]:
    rows: list[Row] = []
    for device in devices:
        rows += op_rows(device, dtype)
        for variant in VARIANTS:
            rows += update_rows(variant, "engine, eager", device, dtype, updates, compile=False)
            if compiled:
                rows += update_rows(variant, "engine, compiled", device, dtype, updates,
                                    compile=True, cuda_graph=False)
                if device == "cuda":
                    rows += update_rows(variant, "compiled + CUDA graph", device, dtype,
                                        updates, compile=True, cuda_graph=True)
    return rows


def format_table(rows: list[Row]) -> str:
    header = f"{'check':<36} {'fast path':<22} {'device':<6} {'difference':>11} " \
             f"{'tolerance':>10}  result"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.check:<36} {r.path:<22} {r.device:<6} {r.value:>11.3e} {r.tol:>10.0e}"
                     f"  {'PASS' if r.passed else 'FAIL'}")
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
        raise ConfigError(f"--updates must be >= 2, got {args.updates}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    devices = (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]) \
        if args.device == "auto" else [args.device]
    if not ops.EXTENSION_LOADED:
        print(f"WARNING: fastsac._C is not loaded ({ops.EXTENSION_ERROR}); checking the "
              "pure-torch FALLBACK ops")
    start = time.perf_counter()
    rows = run_checks(devices, getattr(torch, args.dtype), args.updates, not args.no_compile)
    print(format_table(rows))
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed ({args.dtype}, "
          f"{time.perf_counter() - start:.0f} s)")
    return 1 if failed else 0
