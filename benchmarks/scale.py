"""Benchmarks at the shapes people train, side by side in one run, written to benchmarks/results/:

- update_model() against the floor of its own matrix products, the eager reference and
  Stable-Baselines3, per shape (notebook 128-128 batch 128 100k buffer; SAC paper 256-256 batch
  256 1M buffer) and per thread count (1 and all of torch's);
- training frames/s in the update phase per shape on 1 thread: FastSAC, the reference and SB3's
  SAC with the same networks, batch, buffer and learning rate.

The SIMD build of the CPU kernels is the one fastsac picks (``FASTSAC_CPU_SIMD=avx2`` forces the
AVX2 build on an AVX-512 CPU); it is part of the file name.

    python benchmarks/scale.py [--quick] [--shapes notebook,mujoco] [--threads 1,2] [--no-sb3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import time

import torch

from fastsac import bench, bench_scale, ops
from fastsac.bench_cli import machine_slug, write_report


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# fastsac scale benchmarks, {report['date']}", "",
             f"- CPU: {m['cpu']} ({m['cores']} cores); SIMD build: {report['simd']}",
             f"- torch {m['torch']}, stable-baselines3 {m['stable_baselines3']}, "
             f"gymnasium {m['gymnasium']}", "",
             "## update_model() (median per update; x floor = this time / its products' time)",
             "", "| group | variant | median | x floor | vs reference |",
             "|---|---|---:|---:|---:|"]
    for r in report["updates"]:
        ref = f"{r['speedup_vs_reference']:.2f}x" if r["speedup_vs_reference"] else ""
        lines.append(f"| {r['group']} | {r['name']} | {r['median_s'] * 1e3:.3f} ms | "
                     f"{r['floor_ratio']:.2f} | {ref} |")
    if report["training"]:
        lines += ["", "## Training frames/s (update phase, median of rounds)", "",
                  "| run | variant | frames/s | vs reference | vs SB3 |",
                  "|---|---|---:|---:|---:|"]
        for r in report["training"]:
            sb3 = f"{r['speedup_vs_sb3']:.2f}x" if r["speedup_vs_sb3"] else ""
            lines.append(f"| {r['group']} | {r['name']} | {r['frames_per_s']:.0f} | "
                         f"{r['speedup_vs_reference']:.2f}x | {sb3} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and frames")
    p.add_argument("--shapes", default="notebook,mujoco")
    p.add_argument("--threads", default=None, help="comma-separated counts (default: 1,all)")
    p.add_argument("--no-sb3", action="store_true")
    p.add_argument("--no-training", action="store_true")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args()
    all_threads = torch.get_num_threads()
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else sorted({1, all_threads}))
    shapes = [bench_scale.SHAPES[name] for name in args.shapes.split(",")]
    start = time.perf_counter()
    updates, training = [], []
    for shape in shapes:
        for n in threads:
            cases = bench_scale.update_floor_cases(shape, n, with_sb3=not args.no_sb3)
            print(f"timing {cases[0].group} ...", flush=True)
            updates += bench_scale.time_update_group(cases, rounds=5 if args.quick else 15,
                                                     calls=2 if args.quick else 5)
    if not args.no_training:
        for shape in shapes:
            print(f"timing training on {shape.env_id} ...", flush=True)
            frames = {"notebook": 2000, "mujoco": 500}[shape.name] // (2 if args.quick else 1)
            training += bench_scale.time_training(shape, frames=frames, rounds=5, threads=1,
                                                  with_sb3=not args.no_sb3)
    torch.set_num_threads(all_threads)
    info = bench.machine_info("cpu")
    report = {"date": datetime.date.today().isoformat(), "simd": ops.cpu_simd(), "machine": info,
              "updates": updates, "training": training,
              "seconds": round(time.perf_counter() - start, 1)}
    stem = os.path.join(args.out, f"{machine_slug(info)}-{report['date']}-scale-{report['simd']}"
                        f"{'-quick' if args.quick else ''}")
    markdown = to_markdown(report)
    write_report(stem, report, markdown)
    print(markdown)
    print(f"wrote {stem}.json, .md ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
