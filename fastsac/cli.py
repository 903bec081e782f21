"""``fastsac train | bench | check``: the command-line entry points."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence

# Settings of `fastsac train --preset NAME`; explicit options override them.
PRESETS: dict[str, dict] = {
    # the notebook's run: Pendulum, 128-128 nets
    "notebook": {"env": "Pendulum-v1", "frames": 50_000, "hidden": (128, 128), "lr": 3e-4,
                 "batch_size": 128, "memory_size": 100_000, "initial_random_steps": 10_000},
    # the SAC paper's MuJoCo settings (Haarnoja et al. 2018, appendix D): 256-256 nets, batch
    # 256, a 1M buffer, lr 3e-4 for every network, 1M frames; 10k random warm-up steps as the
    # notebook and the SB3/CleanRL MuJoCo recipes take (the paper's code uses 1k-10k)
    "mujoco": {"env": "HalfCheetah-v5", "frames": 1_000_000, "hidden": (256, 256), "lr": 3e-4,
               "batch_size": 256, "memory_size": 1_000_000, "initial_random_steps": 10_000},
}


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train FastSAC (default: the notebook's Pendulum run)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="notebook",
                   help="a set of defaults: 'notebook' (Pendulum, 128-128, batch 128) or "
                   "'mujoco' (SAC paper: 256-256, batch 256, 1M buffer, lr 3e-4)")
    p.add_argument("--env", default=None, help="gymnasium env id (Box actions); "
                   "default: the preset's")
    p.add_argument("--frames", type=int, default=None, help="env steps to train for")
    p.add_argument("--hidden", type=int, nargs="+", default=None, metavar="WIDTH",
                   help="hidden layer widths of every network, e.g. --hidden 256 256")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (all networks)")
    p.add_argument("--memory-size", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--initial-random-steps", type=int, default=None)
    p.add_argument("--num-envs", type=int, default=1,
                   help="envs stepped together (a gymnasium vector env when > 1); --frames "
                   "counts the transitions of all of them")
    p.add_argument("--vectorization", choices=("sync", "async"), default="sync",
                   help="with --num-envs > 1: step the envs in this process or one "
                   "subprocess each")
    p.add_argument("--updates-per-step", type=float, default=1.0,
                   help="gradient updates per collected transition (e.g. 0.25, 1, 4)")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument("--out", default=None, help="output folder (default: runs/<env>)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--eager", action="store_true", help="run the update uncompiled")
    p.add_argument("--test-episodes", type=int, default=10)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def resolve_train_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from ``--preset``."""
    preset = PRESETS[args.preset]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = os.path.join("runs", args.env.split("/")[-1].split("-")[0].lower())
    return args


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

    args = resolve_train_args(args)
    device = None if args.device == "auto" else args.device
    if args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    if args.num_envs < 1:
        raise ValueError(f"--num-envs must be >= 1, got {args.num_envs}")
    num_envs = None if args.num_envs == 1 else args.num_envs  # one env: the plain env
    try:
        env = make_env(args.env, num_envs=num_envs, vectorization=args.vectorization)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make env {args.env!r}: {exc}") from exc
    os.makedirs(args.out, exist_ok=True)
    agent = FastSAC(env, args.memory_size, args.batch_size,
                    initial_random_steps=args.initial_random_steps,
                    hidden_sizes=tuple(args.hidden), lr=args.lr,
                    updates_per_step=args.updates_per_step, device=device,
                    seed=args.seed, compile=not args.eager)
    envs = f"{args.num_envs} {args.vectorization} envs" if num_envs else "1 env"
    print(f"fastsac train: {args.env} ({envs}), {args.frames} frames, seed {args.seed}, "
          f"hidden {'-'.join(map(str, agent.hidden_sizes))}, batch {agent.batch_size}, "
          f"memory {agent.memory_size}, lr {agent.lr:g}, {args.updates_per_step:g} updates "
          f"per step, device {agent.device}, {'eager' if args.eager else 'compiled'} update",
          flush=True)
    start = time.perf_counter()
    history = agent.train(args.frames, plot_path=os.path.join(args.out, "learning_curve.png"),
                          progress=not args.no_progress)
    env.close()
    train_seconds = time.perf_counter() - start
    frames = agent.total_step  # a vector env's last step may collect up to N - 1 more
    agent.save(os.path.join(args.out, "checkpoint.pt"))
    _write_metrics(os.path.join(args.out, "metrics.csv"), history)
    seconds = time.perf_counter() - start  # the run: training and its outputs
    output_seconds = agent.output_seconds + seconds - train_seconds
    eval_env = make_env(args.env)
    eval_env.reset(seed=args.seed + 1)
    scores = agent.evaluate(args.test_episodes, env=eval_env)
    summary = {"env": args.env, "frames": args.frames, "seed": args.seed,
               "preset": args.preset, "hidden_sizes": list(agent.hidden_sizes),
               "batch_size": agent.batch_size, "memory_size": agent.memory_size,
               "lr": agent.lr, "initial_random_steps": agent.initial_random_steps,
               "num_envs": args.num_envs, "vectorization": args.vectorization,
               "updates_per_step": args.updates_per_step,
               "device": str(agent.device), "frames_collected": frames,
               "train_seconds": round(train_seconds, 1),
               "frames_per_second": round(frames / train_seconds, 1),
               # plots, metrics and the checkpoint: their share of the run's time
               "output_seconds": round(output_seconds, 3),
               "output_share": round(output_seconds / seconds, 5),
               "first_compiled_update_time": agent.first_compiled_update_time,
               "test_episodes": len(scores), "test_mean_return": float(np.mean(scores)),
               "test_returns": [round(s, 2) for s in scores]}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"trained {frames} frames in {train_seconds:.0f} s "
          f"({frames / train_seconds:.0f} frames/s)")
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
