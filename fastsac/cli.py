"""``fastsac train | bench | check``: the command-line entry points."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train FastSAC (default: the notebook's Pendulum run)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1", help="gymnasium env id (Box actions)")
    p.add_argument("--frames", type=int, default=50_000, help="env steps to train for")
    p.add_argument("--memory-size", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--initial-random-steps", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--out", default="runs/pendulum", help="output folder")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--eager", action="store_true", help="run the update uncompiled")
    p.add_argument("--test-episodes", type=int, default=10)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _write_metrics(path: str, history: dict[str, list[float]]) -> None:
    keys = list(history)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["episode", *keys])
        for i, row in enumerate(zip(*(history[k] for k in keys), strict=True), start=1):
            writer.writerow([i, *(f"{v:.6g}" for v in row)])


def cmd_train(args: argparse.Namespace) -> int:
    import gymnasium as gym
    import numpy as np

    from fastsac import FastSAC, make_env

    device = None if args.device == "auto" else args.device
    if args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    try:
        env = make_env(args.env)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make env {args.env!r}: {exc}") from exc
    os.makedirs(args.out, exist_ok=True)
    agent = FastSAC(env, args.memory_size, args.batch_size,
                    initial_random_steps=args.initial_random_steps, device=device,
                    seed=args.seed, compile=not args.eager)
    print(f"fastsac train: {args.env}, {args.frames} frames, seed {args.seed}, "
          f"device {agent.device}, {'eager' if args.eager else 'compiled'} update", flush=True)
    start = time.perf_counter()
    history = agent.train(args.frames, plot_path=os.path.join(args.out, "learning_curve.png"),
                          progress=not args.no_progress)
    seconds = time.perf_counter() - start
    agent.save(os.path.join(args.out, "checkpoint.pt"))
    _write_metrics(os.path.join(args.out, "metrics.csv"), history)
    eval_env = make_env(args.env)
    eval_env.reset(seed=args.seed + 1)
    scores = agent.evaluate(args.test_episodes, env=eval_env)
    summary = {"env": args.env, "frames": args.frames, "seed": args.seed,
               "device": str(agent.device), "train_seconds": round(seconds, 1),
               "frames_per_second": round(args.frames / seconds, 1),
               "test_episodes": len(scores), "test_mean_return": float(np.mean(scores)),
               "test_returns": [round(s, 2) for s in scores]}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"trained {args.frames} frames in {seconds:.0f} s ({args.frames / seconds:.0f} frames/s)")
    print(f"outputs in {args.out}/: learning_curve.png, checkpoint.pt, metrics.csv, summary.json")
    print(f"mean return over {len(scores)} test episodes: {np.mean(scores):.1f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastsac", description="Fast, verified Soft Actor-Critic for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="{train,bench,check}")
    _add_train(sub)
    from fastsac import bench_cli, check_cli

    bench_cli.add_parser(sub)
    check_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"train": cmd_train, "bench": bench_cli.run, "check": check_cli.run}
    try:
        return handlers[args.command](args)
    except (ValueError, TypeError) as exc:  # bad input: say what, not where
        print(f"fastsac {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
