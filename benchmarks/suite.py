"""``fastsac bench``: the benchmark suite, results written to benchmarks/results/.

Kernel micro-benchmarks (tanh_normal fused vs composite for both heads, polyak_, fastsac::mm vs
torch.mm), buffer sampling at 1e3..1e6 stored, one update (eager reference / FastSAC's engine run
eagerly / compiled / compiled + CUDA graph) for SAC v1 and v2, select_action latency, and
end-to-end training frames/s on Pendulum-v1 with the notebook's settings for FastSAC, the eager
reference and Stable-Baselines3 (when installed). Each group's variants are timed interleaved
and reported as medians and as ratios against the group's baseline. The cases are
benchmarks/harness.py's; benchmarks/peers.py compares FastSAC v2 with SB3 at several shapes.

    fastsac bench [--quick] [--device auto|cpu|cuda] [--only ops,buffer,update,select,e2e]
    python -m benchmarks.suite ...   (the same, from the repository's root)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from benchmarks import harness
from fastsac.errors import ConfigError

PARTS = ("ops", "buffer", "update", "select", "e2e")  # the parts of the suite, for --only


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fastsac bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer sizes, rounds and frames")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: the CPU, and CUDA if present")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end training runs")
    p.add_argument("--no-sb3", action="store_true", help="leave Stable-Baselines3 out")
    p.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(PARTS)}")
    return p


def devices_for(choice: str) -> list[str]:
    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device")
    return [choice]


def parts_of(only: str | None, no_e2e: bool) -> set[str]:
    parts = {p.strip() for p in only.split(",") if p.strip()} if only else set(PARTS)
    unknown = parts - set(PARTS)
    if unknown or not parts:
        raise ConfigError(f"--only: unknown part(s) {', '.join(sorted(unknown)) or '(none)'}; "
                          f"choose from {', '.join(PARTS)}")
    if no_e2e:
        parts.discard("e2e")
    return parts


def to_markdown(report: dict) -> str:
    lines = [f"# fastsac bench, {report['date']}", "", *harness.machine_lines(report["machine"]),
             f"- mode: {'quick' if report['quick'] else 'full'}; {report['seconds']:.0f} s", ""]
    if report["micro"]:
        lines += ["## Micro-benchmarks (median per call; ratio = baseline time / this time)", "",
                  "| group | variant | median | spread | vs baseline |",
                  "|---|---|---:|---:|---:|"]
        for row in report["micro"]:
            mark = " (baseline)" if row["baseline"] else ""
            lines.append(f"| {row['group']} | {row['name']}{mark} | "
                         f"{harness.fmt_time(row['median_s'])} | {row['spread']:.0%} | "
                         f"{row['speedup_vs_baseline']:.2f}x |")
    if report["e2e"]:
        lines += ["", "## Training speed (frames/s in the update phase, median of rounds)", "",
                  "| run | variant | frames/s | vs reference |", "|---|---|---:|---:|"]
        for row in report["e2e"]:
            lines.append(f"| {row['group']} | {row['name']} | {row['frames_per_s']:.0f} | "
                         f"{row['speedup_vs_reference']:.2f}x |")
    return "\n".join(lines) + "\n"


def to_chart(report: dict, path: str) -> None:
    """Speedup of every fast variant over its group's baseline, one bar each (log scale)."""
    from matplotlib.figure import Figure

    bars = [(f"{r['group']} | {r['name']}", r["speedup_vs_baseline"]) for r in report["micro"]
            if not r["baseline"]]
    bars += [(f"{r['group']} | {r['name']}", r["speedup_vs_reference"]) for r in report["e2e"]
             if not r["name"].startswith("reference")]
    if not bars:
        return
    labels, values = zip(*bars, strict=True)
    fig = Figure(figsize=(10, 0.42 * len(bars) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(values)), values,
            color=["tab:green" if v >= 1 else "tab:red" for v in values])
    ax.set_yticks(range(len(values)), labels, fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speedup over the group's baseline (composite / numpy / eager reference)")
    ax.invert_yaxis()
    machine = report["machine"].get("gpu") or report["machine"]["cpu"]
    ax.set_title(f"fastsac bench {report['date']}: {machine}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def groups_for(parts: set[str], devices: list[str], quick: bool) -> list[list[harness.Case]]:
    groups: list[list[harness.Case]] = []
    for device in devices:
        if "ops" in parts:
            groups += harness.by_group(harness.tanh_normal_cases(
                device, batches=(1, 128, 4096) if quick else (1, 128, 4096, 65536)))
            groups += harness.by_group(harness.polyak_cases(device))
            if device == "cpu":
                groups += harness.by_group(harness.mm_cases(
                    ((128, 128, 128),) if quick else ((128, 128, 128), (256, 128, 128))))
        if "update" in parts:
            groups += [harness.update_cases(device, variant) for variant in ("v1", "v2")]
        if "select" in parts:
            groups.append(harness.select_action_cases(device))
    if "buffer" in parts:
        groups += harness.by_group(harness.buffer_cases(
            (1_000, 100_000, 1_000_000) if quick else (1_000, 10_000, 100_000, 1_000_000)))
    return groups


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `fastsac bench -- --quick`: the separator reaches us
        argv = argv[1:]
    args = parser().parse_args(argv)
    parts = parts_of(args.only, args.no_e2e)
    devices = devices_for(args.device)
    info = harness.machine_info(devices[-1])
    start = time.perf_counter()
    micro = []
    for cases in groups_for(parts, devices, args.quick):
        print(f"timing {cases[0].group} ...", flush=True)
        micro += harness.time_group(cases, rounds=5 if args.quick else 9)
    e2e = []
    if "e2e" in parts:
        for device in devices:
            print(f"timing end-to-end training on {device} ...", flush=True)
            # full: the notebook's 10,000 random steps first, so every buffer holds 10k-16k
            # transitions while it is timed, as in the notebook's run
            e2e += harness.time_e2e(device, frames=300 if args.quick else 2000, rounds=3,
                                    warmup_random=500 if args.quick else 10_000,
                                    with_sb3=not args.no_sb3)
    report = {"date": harness.today(), "quick": args.quick, "machine": info,
              "parts": sorted(parts), "micro": micro, "e2e": e2e,
              "seconds": round(time.perf_counter() - start, 1)}
    stem = os.path.join(args.out, f"{harness.machine_slug(info)}-{report['date']}"
                        f"{'-quick' if args.quick else ''}")
    markdown = to_markdown(report)
    harness.write_report(stem, report, markdown)
    to_chart(report, stem + ".png")
    print(markdown)
    print(f"wrote {stem}.json, .md, .png ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        print(f"fastsac bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
