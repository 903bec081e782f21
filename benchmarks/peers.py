"""fastsac v2 against Stable-Baselines3's SAC on the same algorithm, interleaved in one run.

Both run SAC v2 (two Q critics with Polyak targets, no V, automatic entropy tuning) with the
same settings: gamma 0.99, tau 0.005, lr 3e-4, a 1M buffer, ``--warmup`` uniform random steps
before learning starts, one gradient step of one batch per env step, the same networks. Shapes:

- ``notebook``: Pendulum-v1, 128-128 networks, batch 128 (the notebook's shape);
- ``pendulum256``: Pendulum-v1, 256-256, batch 256;
- ``halfcheetah``: HalfCheetah-v5, 256-256, batch 256 (the SAC paper's MuJoCo shape).

1. Training frames/s in the update phase: each agent first takes its random warm-up steps and
   50 updates (FastSAC compiles its update there: ``background_compile=False``), then both train
   ``--frames`` frames in turn (``FastSAC.train`` / ``SAC.learn(reset_num_timesteps=False)``),
   for ``--rounds`` rounds, the order reversed every other round. Reported: the medians, and
   the median and range of the per-round ratios fastsac / SB3.
2. One update against its matrix products' floor, at the same shapes, interleaved the same way
   (harness.time_group): FastSAC's compiled update and SB3's ``train()`` of one gradient step,
   each on a buffer full of random transitions, next to the floor.

The floor is measured, not computed. FastSAC's update runs once eagerly (its engine: the same
function the compiled graph is traced from) under a dispatch mode that records every matrix
product it calls (``aten::mm``, ``aten::addmm``, ``fastsac::mm``) with copies of its operands,
shapes and strides kept (a transposed view stays one); the floor is those calls alone, replayed
in a tight loop on the same thread count. For v2 with 2 critics and 2 hidden layers that is 49
products per update: forward, the actor on obs and on next_obs (2 hidden layers and 2 heads
each: 8), the 2 critics on (s, a), the 2 target critics on (s', a') and the 2 critics on
(s, ã) (3 layers each: 18); backward, the critics on (s, a) (every layer's weight gradient and
the input gradients of the 2 upper layers: 10), the critics on (s, ã) (input gradients of
every layer, to reach ã: 6) and the actor on obs (weight gradients of 4 layers, input gradients
of both heads and of the second hidden layer: 7). Where FastSAC tiles the 128-wide
hidden-to-hidden products (the AVX-512 build), they are ``fastsac::mm`` calls, and the frozen
critics' tiled layers also compute a weight gradient (2 more: 51); the MKL floor then replays
the same products all in ``torch.mm``/``addmm``. Not counted: bias gradients, activations,
the tanh-Normal head, the losses, Adam and Polyak, sampling the batch. The compiled graph may
call a product differently (inductor picks its own layouts and may drop the frozen critics'
weight gradients), so "x floor" is the update's time over what its products take alone as the
eager engine calls them. SB3's update runs more products than these (its actor loss
backpropagates into the critics' weights too), so its ratio to the same floor is larger by
construction as well as by overhead.

Threads: ``torch.set_num_threads(--threads)`` (default 1) for both: one core each is the fair
comparison here, and on a shared machine the steadiest. The SIMD build of fastsac's CPU kernels
is the one fastsac picks; run the whole script under ``FASTSAC_CPU_SIMD=avx2`` to measure the
AVX2 build on an AVX-512 CPU (it is part of the file name).

    python benchmarks/peers.py [--shapes notebook,pendulum256,halfcheetah] [--threads 1]
        [--rounds 7] [--frames N] [--warmup 2000] [--no-training] [--no-updates] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from benchmarks import harness
from benchmarks.harness import Shape
from fastsac import FastSAC, ops

SHAPES = {
    "notebook": Shape("notebook", "Pendulum-v1", (128, 128), 128, 1_000_000),
    "pendulum256": Shape("pendulum256", "Pendulum-v1", (256, 256), 256, 1_000_000),
    "halfcheetah": Shape("halfcheetah", "HalfCheetah-v5", (256, 256), 256, 1_000_000),
}
FRAMES = {"notebook": 1500, "pendulum256": 800, "halfcheetah": 600}  # per round, each agent
FAST, SB3 = "fastsac v2", "Stable-Baselines3 SAC"


def time_training(shape: Shape, frames: int, rounds: int, warmup: int) -> dict:
    runners = {FAST: harness.fastsac_runner(FastSAC, shape, warmup),
               SB3: harness.sb3_runner(shape, warmup)}
    fps = harness.interleave_runners(runners, frames, rounds)
    ratios = [f / s for f, s in zip(fps[FAST], fps[SB3], strict=True)]
    return {"shape": shape.name, "label": shape.label, "frames_per_round": frames,
            "rounds": rounds, "warmup": warmup, "fps": fps,
            "median_fps": {name: statistics.median(v) for name, v in fps.items()},
            "ratios": ratios, "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)]}


def to_markdown(report: dict) -> str:
    threads = report["threads"]
    lines = [f"# fastsac v2 against Stable-Baselines3's SAC, {report['date']}", "",
             *harness.machine_lines(report["machine"]),
             f"- {threads} torch thread{'s' if threads > 1 else ''} each; load average at the "
             f"end: {report['loadavg_end']}; {report['seconds']:.0f} s in all"
             f"{'; quick mode' if report['quick'] else ''}", ""]
    if report["training"]:
        lines += ["## Training frames/s (update phase; medians of interleaved rounds)", "",
                  "Same algorithm (SAC v2, 2 critics, auto entropy) and settings (gamma 0.99, "
                  "tau 0.005, lr 3e-4, 1M buffer, 1 update per step); ratio: the median of the "
                  "per-round ratios fastsac / SB3, and their range.", "",
                  "| shape | frames/round x rounds | fastsac v2 | SB3 | fastsac / SB3 | range |",
                  "|---|---:|---:|---:|---:|---|"]
        for r in report["training"]:
            lo, hi = r["ratio_range"]
            lines.append(f"| {r['label']} | {r['frames_per_round']} x {r['rounds']} | "
                         f"{r['median_fps'][FAST]:.0f} | {r['median_fps'][SB3]:.0f} | "
                         f"{r['ratio']:.2f}x | {lo:.2f}-{hi:.2f}x |")
    if report["updates"]:
        lines += ["", "## One update against its matrix products' floor (median per update)",
                  "", "x floor: this time / the floor's (the products alone, as FastSAC's "
                  "update calls them); spread: (max - min) / median over the rounds.", "",
                  "| shape | variant | median | spread | x floor |", "|---|---|---:|---:|---:|"]
        for r in report["updates"]:
            name = r["name"]
            if "products" in r:
                name += f" ({r['products']} products, {r['tiled_products']} in fastsac::mm)"
            lines.append(f"| {r['group'].removeprefix('one update ')} | {name} | "
                         f"{r['median_s'] * 1e3:.3f} ms | {r['spread']:.0%} | "
                         f"{r['over_baseline']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"of {','.join(SHAPES)}")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved training rounds")
    p.add_argument("--frames", type=int, default=None,
                   help=f"frames per round and agent (default per shape: {FRAMES})")
    p.add_argument("--warmup", type=int, default=2000, help="random steps before learning")
    p.add_argument("--update-rounds", type=int, default=9)
    p.add_argument("--no-training", action="store_true")
    p.add_argument("--no-updates", action="store_true")
    p.add_argument("--quick", action="store_true", help="a smoke run: tiny frames and rounds")
    p.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = p.parse_args(argv)
    unknown = set(args.shapes.split(",")) - set(SHAPES)
    if unknown:
        p.error(f"--shapes: unknown {sorted(unknown)}; choose from {','.join(SHAPES)}")
    shapes = [SHAPES[name] for name in args.shapes.split(",")]
    if args.quick:  # a smoke run: small buffers, few frames
        shapes = [Shape(s.name, s.env_id, s.hidden_sizes, s.batch_size, 20_000) for s in shapes]
    if not harness.sb3_available():
        raise SystemExit("peers.py needs stable-baselines3 (pip install fastsac[bench])")
    torch.set_num_threads(args.threads)
    info = harness.machine_info("cpu")
    start = time.perf_counter()
    training, updates = [], []
    if not args.no_training:
        for shape in shapes:
            frames = args.frames or (50 if args.quick else FRAMES[shape.name])
            rounds = 2 if args.quick else args.rounds
            print(f"training {shape.label}: {rounds} rounds of {frames} frames ...", flush=True)
            training.append(time_training(shape, frames, rounds,
                                          300 if args.quick else args.warmup))
            r = training[-1]
            print(f"  fastsac {r['median_fps'][FAST]:.0f} frames/s, SB3 "
                  f"{r['median_fps'][SB3]:.0f}: {r['ratio']:.2f}x", flush=True)
    if not args.no_updates:
        for shape in shapes:
            cases = harness.floor_cases(shape, args.threads, eager=False)
            print(f"timing {cases[0].group} ...", flush=True)
            updates += harness.time_group(cases, rounds=3 if args.quick else args.update_rounds,
                                          budget_s=0.02 if args.quick else 0.2)
    torch.set_num_threads(args.threads)
    report = {"date": harness.today(), "quick": args.quick, "threads": args.threads,
              "simd": ops.cpu_simd(), "machine": info, "training": training,
              "updates": updates, "expected_v2_products": harness.expected_v2_products(),
              "loadavg_end": harness.machine_info("cpu")["loadavg"],
              "seconds": round(time.perf_counter() - start, 1)}
    harness.publish(args.out, f"peers-{report['simd']}-{args.threads}t", report,
                    to_markdown(report), args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
