"""``fastsac bench``: the benchmark suite, with results written to benchmarks/results/.

Kernel micro-benchmarks (tanh_normal, polyak_), buffer sampling at 1e3..1e6, one update
(eager reference / eager + fused ops / compiled / compiled + CUDA graph), select_action latency,
and end-to-end training frames/s on Pendulum-v1 for FastSAC, the eager reference and
Stable-Baselines3 (when installed). Each group's variants are timed interleaved and reported as
medians and as ratios against the group's baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import time

from fastsac import bench
from fastsac.base import devices_for

# the parts of the suite, for --only
PARTS = ("ops", "buffer", "update", "select", "e2e")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmark suite; writes JSON, Markdown and a PNG chart",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer sizes and frames")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end training runs")
    p.add_argument("--no-sb3", action="store_true", help="leave Stable-Baselines3 out")
    p.add_argument("--only", default=None,
                   help=f"comma-separated subset: {','.join(PARTS)}")


def write_report(stem: str, report: dict, markdown: str) -> None:
    """``stem.json`` (the raw report) and ``stem.md`` (its tables), folders made as needed."""
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown)


def machine_slug(info: dict) -> str:
    name = info.get("gpu") or info["cpu"]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return f"{slug}-{info['cores']}c"


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# fastsac bench, {report['date']}", "",
             f"- CPU: {m['cpu']} ({m['cores']} cores, torch threads {m['torch_threads']})",
             f"- GPU: {m.get('gpu', 'none')}",
             f"- torch {m['torch']}, numpy {m['numpy']}, numba {m['numba']}, "
             f"gymnasium {m['gymnasium']}, stable-baselines3 {m['stable_baselines3']}",
             f"- extension: {m['extension']}; mode: {'quick' if report['quick'] else 'full'}",
             ""]
    groups: dict[str, list[dict]] = {}
    for row in report["micro"]:
        groups.setdefault(row["group"], []).append(row)
    lines += ["## Micro-benchmarks (median per call; ratio = baseline time / this time)", "",
              "| group | variant | median | vs baseline |", "|---|---|---:|---:|"]
    for group, rows in groups.items():
        for row in rows:
            mark = " (baseline)" if row["baseline"] else ""
            lines.append(f"| {group} | {row['name']}{mark} | {_fmt_time(row['median_s'])} | "
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

    bars = [(f"{r['group']}\n{r['name']}", r["speedup_vs_baseline"]) for r in report["micro"]
            if not r["baseline"]]
    bars += [(f"{r['group']}\n{r['name']}", r["speedup_vs_reference"]) for r in report["e2e"]
             if not r["name"].startswith("reference")]
    fig = Figure(figsize=(10, 0.42 * len(bars) + 1.5))
    ax = fig.add_subplot(1, 1, 1)
    labels, values = zip(*bars, strict=True) if bars else ((), ())
    ax.barh(range(len(values)), values, color=["tab:green" if v >= 1 else "tab:red"
                                                for v in values])
    ax.set_yticks(range(len(values)), [label.replace("\n", " | ") for label in labels],
                  fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("speedup over the baseline (notebook / eager reference); >1 is faster")
    ax.invert_yaxis()
    machine = report["machine"].get("gpu") or report["machine"]["cpu"]
    ax.set_title(f"fastsac bench {report['date']}: {machine}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def _by_group(cases: list[bench.Case]) -> list[list[bench.Case]]:
    """Cases split into their groups, in first-seen order."""
    return [[c for c in cases if c.group == g] for g in dict.fromkeys(c.group for c in cases)]


def run(args: argparse.Namespace) -> int:
    devices = devices_for(args.device)
    only = set(args.only.split(",")) if args.only else set(PARTS)
    if only - set(PARTS):
        raise ValueError(f"--only: unknown part(s) {', '.join(sorted(only - set(PARTS)))}; "
                         f"choose from {', '.join(PARTS)}")
    if args.no_e2e:
        only.discard("e2e")
    quick = args.quick
    start = time.perf_counter()
    groups: list[list[bench.Case]] = []
    for device in devices:
        if "ops" in only:
            cases = bench.tanh_normal_cases(device, batches=(1, 128, 4096) if quick
                                            else (1, 128, 4096, 65536))
            groups += _by_group(cases) + _by_group(bench.polyak_cases(device))
            if device == "cpu":
                groups += _by_group(bench.mm_cases(((128, 128, 128),) if quick else
                                                   ((128, 128, 128), (256, 128, 128))))
        if "update" in only:
            groups.append(bench.update_cases(device))
        if "select" in only:
            groups.append(bench.select_action_cases(device))
    if "buffer" in only:
        cases = bench.buffer_cases((1_000, 100_000, 1_000_000) if quick
                                   else (1_000, 10_000, 100_000, 1_000_000))
        groups += _by_group(cases)
    micro = []
    for cases in groups:
        print(f"timing {cases[0].group} ...", flush=True)
        micro += bench.time_group(cases, rounds=5 if quick else 9)
    e2e = []
    if "e2e" in only:
        for device in devices:
            print(f"timing end-to-end training on {device} ...", flush=True)
            # full: the notebook's 10,000 random steps first, so every agent's buffer holds
            # 10k-16k transitions while it is timed (as in the notebook's run)
            e2e += bench.time_e2e(device, frames=300 if quick else 2000, rounds=3,
                                  warmup_random=500 if quick else 10_000,
                                  with_sb3=not args.no_sb3)
    info = bench.machine_info(devices[-1])
    report = {"date": datetime.date.today().isoformat(), "quick": quick, "machine": info,
              "micro": micro, "e2e": e2e, "seconds": round(time.perf_counter() - start, 1)}
    suffix = "-quick" if quick else ""
    stem = os.path.join(args.out, f"{machine_slug(info)}-{report['date']}{suffix}")
    markdown = to_markdown(report)
    write_report(stem, report, markdown)
    to_chart(report, stem + ".png")
    print(markdown)
    print(f"wrote {stem}.json, .md, .png ({report['seconds']:.0f} s)")
    return 0
