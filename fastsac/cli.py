"""``fastsac train | bench | check``: the command-line entry points."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from fastsac import resume, run_log
from fastsac.base import INITIAL_RANDOM_STEPS, LEARNING_RATE, check_settings
from fastsac.envs import VECTORIZATIONS
from fastsac.networks import DEFAULT_HIDDEN_SIZES

# Settings of `fastsac train --preset NAME`; explicit options override them.
PRESETS: dict[str, dict] = {
    # the notebook's run: Pendulum, 128-128 nets
    "notebook": {"env": "Pendulum-v1", "frames": 50_000, "hidden": DEFAULT_HIDDEN_SIZES,
                 "lr": LEARNING_RATE, "batch_size": 128, "memory_size": 100_000,
                 "initial_random_steps": INITIAL_RANDOM_STEPS},
    # the SAC paper's MuJoCo settings (Haarnoja et al. 2018, appendix D): 256-256 nets, batch
    # 256, a 1M buffer, lr 3e-4 for every network, 1M frames; 10k random warm-up steps as the
    # notebook and the SB3/CleanRL MuJoCo recipes take (the paper's code uses 1k-10k)
    "mujoco": {"env": "HalfCheetah-v5", "frames": 1_000_000, "hidden": (256, 256),
               "lr": LEARNING_RATE, "batch_size": 256, "memory_size": 1_000_000,
               "initial_random_steps": INITIAL_RANDOM_STEPS},
}


# Defaults of the options no preset sets. Every option defaults to None on the command line,
# so --resume can tell the options given from the ones left unset.
# What a run writes in its --out folder.
METRICS_NAME, SUMMARY_NAME, PLOT_NAME = "metrics.csv", "summary.json", "learning_curve.png"
OUTPUT_FILES = (resume.CHECKPOINT_NAME, METRICS_NAME, SUMMARY_NAME, PLOT_NAME)
DEFAULTS: dict = {"preset": "notebook", "nproc": 1, "num_envs": 1, "vectorization": "sync",
                  "updates_per_step": 1.0, "seed": 777, "device": "auto", "eager": False,
                  "background_compile": True, "test_episodes": 10}


def _add_train(sub) -> None:
    # (no ArgumentDefaultsHelpFormatter: every option defaults to None here, see DEFAULTS;
    # the help texts name the real defaults)
    p = sub.add_parser("train", help="train FastSAC (default: the notebook's Pendulum run)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="a set of defaults: 'notebook' (Pendulum, 128-128, batch 128; the "
                   "default) or 'mujoco' (SAC paper: 256-256, batch 256, 1M buffer, lr 3e-4)")
    p.add_argument("--env", default=None, help="gymnasium env id (Box actions); "
                   "default: the preset's")
    p.add_argument("--frames", type=int, default=None,
                   help="env steps to train for (default: the preset's)")
    p.add_argument("--hidden", type=int, nargs="+", default=None, metavar="WIDTH",
                   help="hidden layer widths of every network, e.g. --hidden 256 256 (default: the "
                   "preset's)")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (all networks; default: the preset's)")
    p.add_argument("--memory-size", type=int, default=None,
                   help="replay buffer capacity (default: the preset's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="transitions per update (default: the preset's)")
    p.add_argument("--initial-random-steps", type=int, default=None,
                   help="random actions before learning starts (default: the preset's)")
    p.add_argument("--num-envs", type=int, default=None,
                   help="envs stepped together (a gymnasium vector env when > 1); --frames "
                   "counts the transitions of all of them (default 1)")
    p.add_argument("--vectorization", choices=VECTORIZATIONS, default=None,
                   help="with --num-envs > 1: step the envs in this process or one "
                   "subprocess each (default sync)")
    p.add_argument("--updates-per-step", type=float, default=None,
                   help="gradient updates per collected transition, e.g. 0.25, 1, 4 "
                   "(default 1)")
    p.add_argument("--seed", type=int, default=None, help="default 777")
    p.add_argument("--out", default=None, help="output folder (default: runs/<env>)")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--eager", action="store_const", const=True, default=None,
                   help="run the update uncompiled")
    p.add_argument("--no-background-compile", dest="background_compile",
                   action="store_const", const=False, default=None,
                   help="wait for the compiler instead of learning with the ahead-of-time "
                   "C++ update meanwhile (runs that repeat bitwise)")
    p.add_argument("--test-episodes", type=int, default=None, help="default 10")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="FRAMES",
                   help="write a resumable checkpoint every this many frames (default: a "
                   "tenth of --frames; also at least every 10 minutes, and at the end)")
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="data-parallel over N processes on this machine (torchrun); --frames "
                   "and --checkpoint-every count the transitions of all of them, "
                   "--batch-size, --memory-size and --initial-random-steps are per process "
                   "(default 1; under torchrun: its world size)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its checkpoint, with its settings, to its "
                   "total of frames")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out folder that holds a run")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def resolve_train_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from ``--preset`` and the defaults."""
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    preset = PRESETS[args.preset]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.checkpoint_every is None:
        args.checkpoint_every = max(1, args.frames // 10)
    if args.out is None:
        args.out = os.path.join("runs", args.env.split("/")[-1].split("-")[0].lower())
    return args


def _resumed_args(args: argparse.Namespace, config: dict | None) -> argparse.Namespace:
    """The run's recorded settings, for ``--resume DIR`` (``config``: already read, or None);
    options that contradict them are an error."""
    from fastsac import distributed

    if args.out is not None and os.path.abspath(args.out) != os.path.abspath(args.resume):
        raise ValueError(f"--resume {args.resume} writes to that folder; --out {args.out} "
                         "contradicts it")
    if config is None:
        _, config = resume.recorded_run(args.resume)
    world = distributed.current_world()
    if config["nproc"] != (world.size if world else 1):
        raise ValueError(f"{args.resume} is a run of {config['nproc']} processes; this is "
                         f"{world.size if world else 1} (resume it with fastsac train --resume, "
                         "which starts as many)")
    given = {key: getattr(args, key) for key in resume.RUN_KEYS}
    bad = resume.contradictions(given, config)
    if bad:
        raise ValueError(f"--resume {args.resume}: these options contradict the run's settings "
                         f"(leave them out to continue it as it was): {'; '.join(bad)}")
    config = {**config, **{key: given[key] for key in resume.AFTER_TRAINING
                           if given[key] is not None}}
    return argparse.Namespace(**config, out=args.resume, resume=args.resume, overwrite=False,
                              no_progress=args.no_progress)


def cmd_train(args: argparse.Namespace) -> int:
    from fastsac import distributed, launch

    nproc = args.nproc
    if nproc is not None and nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    if args.resume is not None and args.overwrite:
        raise ValueError("--overwrite starts a new run; --resume continues one: give one of them")
    config = None  # the settings of the run to resume, read once here
    if args.test_episodes is not None and args.test_episodes < 1:
        raise ValueError(f"--test-episodes must be >= 1, got {args.test_episodes}")
    if args.resume is not None and not distributed.launched_by_torchrun():
        _, config = resume.recorded_run(args.resume)  # a run of N processes resumes as N
        if nproc is not None and nproc != config["nproc"]:
            raise ValueError(f"--resume {args.resume}: --nproc {nproc} contradicts the run's "
                             f"{config['nproc']} processes (leave it out)")
        if config["nproc"] > 1:
            return launch.run_under_torchrun(config["nproc"], args.argv)
    elif nproc is not None and nproc > 1 and not distributed.launched_by_torchrun():
        _check_new_run(resolve_train_args(argparse.Namespace(**vars(args))))  # one message,
        return launch.run_under_torchrun(nproc, args.argv)  # not one per rank
    if not distributed.launched_by_torchrun():
        return _train(args, None, config)
    world = distributed.init_from_env(args.device)
    if nproc is not None and nproc != world.size:
        raise ValueError(f"--nproc {nproc} contradicts torchrun's world of {world.size}")
    args.nproc = world.size
    try:
        return _train(args, world, None)
    except RuntimeError as exc:
        if _lost_peers(exc):  # a collective failed: another rank died or hangs
            print(f"fastsac train: error: rank {world.rank} lost the other ranks (one died, or "
                  f"hung past {distributed.timeout_seconds():.0f} s): {exc}", file=sys.stderr)
            return 4
        raise
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _check_new_run(args: argparse.Namespace) -> None:
    """The settings of a new run, checked before anything starts (bad input: ValueError)."""
    if args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    if args.num_envs < 1:
        raise ValueError(f"--num-envs must be >= 1, got {args.num_envs}")
    if args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    check_settings(args.memory_size, args.batch_size,
                   initial_random_steps=args.initial_random_steps, hidden_sizes=tuple(args.hidden),
                   lr=args.lr, updates_per_step=args.updates_per_step, seed=args.seed)
    if not args.overwrite and os.path.exists(resume.checkpoint_path(args.out)):
        raise ValueError(f"{args.out} holds a run (its checkpoint.pt): continue it with "
                         f"--resume {args.out}, start afresh with --overwrite, or pick another "
                         "--out")


def _lost_peers(exc: RuntimeError) -> bool:
    """Whether ``exc`` is a collective that failed because another rank is gone or hangs
    (NCCL raises torch's DistError; gloo a RuntimeError naming gloo or the connection)."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout"))


def _train(args: argparse.Namespace, world, config: dict | None) -> int:
    """One process's run: the whole run, or one rank's share of a data-parallel one (rank 0
    alone writes outputs and evaluates). ``config``: the resumed run's settings, if read."""
    import gymnasium as gym
    import numpy as np

    from fastsac import FastSAC, make_env
    from fastsac.divergence import TrainingDiverged

    rank, nproc = (world.rank, world.size) if world else (0, 1)
    if args.resume is not None:
        args, resuming = _resumed_args(args, config), True
    else:
        args, resuming = resolve_train_args(args), False
        args.nproc = nproc
        _check_new_run(args)
    device = None if args.device == "auto" else args.device
    num_envs = None if args.num_envs == 1 else args.num_envs  # one env: the plain env
    # data-parallel ranks update in lockstep: a vector env resets in the step that ends an
    # episode, so every step is num_envs transitions on every rank
    autoreset = "SameStep" if world is not None else "NextStep"
    try:
        env = make_env(args.env, num_envs=num_envs, vectorization=args.vectorization,
                       autoreset=autoreset)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make env {args.env!r}: {exc}") from exc
    agent = FastSAC(env, args.memory_size, args.batch_size,
                    initial_random_steps=args.initial_random_steps,
                    hidden_sizes=tuple(args.hidden), lr=args.lr,
                    updates_per_step=args.updates_per_step, device=device,
                    seed=args.seed, compile=not args.eager,
                    background_compile=args.background_compile,
                    data_parallel=world is not None)
    checkpoint_file = resume.checkpoint_path(args.out)
    if resuming:
        try:
            agent.load(checkpoint_file)  # checked whole before anything is written
        except ValueError:
            env.close()
            raise
    agent.run_config = resume.run_config(args)
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        if args.overwrite:  # the old run's files go, so a kill before the first checkpoint
            for name in OUTPUT_FILES:  # cannot leave its checkpoint to be resumed
                if os.path.exists(os.path.join(args.out, name)):
                    os.unlink(os.path.join(args.out, name))
    envs = f"{args.num_envs} {args.vectorization} envs" if num_envs else "1 env"
    verb = f"resuming at frame {agent.total_step} of" if resuming else "train:"
    ranks = f" x {nproc} processes (data-parallel)" if world else ""
    if rank == 0:
        print(f"fastsac {verb} {args.env} ({envs}{ranks}), {args.frames} frames, seed "
              f"{args.seed}, hidden {'-'.join(map(str, agent.hidden_sizes))}, batch "
              f"{agent.batch_size}, memory {agent.memory_size}, lr {agent.lr:g}, "
              f"{args.updates_per_step:g} updates per step, device {agent.device}, "
              f"{'eager' if args.eager else 'compiled'} update", flush=True)
    resumed_from = agent.total_step
    start, started_at = time.perf_counter(), time.time()
    # data-parallel: --frames and --checkpoint-every count all ranks' transitions
    remaining = -(-args.frames // nproc) - agent.total_step
    try:
        if remaining > 0:
            history = agent.train(
                remaining, plot_path=os.path.join(args.out, PLOT_NAME) if rank == 0
                else None, progress=not args.no_progress and rank == 0,
                checkpoint_path=checkpoint_file,
                checkpoint_every=max(1, args.checkpoint_every // nproc),
                metrics_path=os.path.join(args.out, METRICS_NAME))
        else:  # the run had finished training: only its outputs are left to write
            history = agent.history
            run_log.write_metrics(os.path.join(args.out, METRICS_NAME), history)
            agent.output_seconds = 0.0
    except TrainingDiverged as exc:
        print(f"fastsac train: error: {exc}", file=sys.stderr)
        return 3
    finally:
        env.close()
    if rank != 0:  # rank 0 writes the outputs
        return 0
    train_seconds = time.perf_counter() - start
    # a vector env's last step may collect N - 1 more; data-parallel: every rank as many
    frames = (agent.total_step - resumed_from) * nproc
    seconds = time.perf_counter() - start  # the run: training and its outputs
    output_seconds = agent.output_seconds + seconds - train_seconds
    eval_env = make_env(args.env)
    try:
        eval_env.reset(seed=args.seed + 1)
        scores = agent.evaluate(args.test_episodes, env=eval_env)
    finally:
        eval_env.close()
    summary = {"env": args.env, "frames": args.frames, "seed": args.seed,
               "preset": args.preset, "hidden_sizes": list(agent.hidden_sizes),
               "batch_size": agent.batch_size, "memory_size": agent.memory_size,
               "lr": agent.lr, "initial_random_steps": agent.initial_random_steps,
               "num_envs": args.num_envs, "vectorization": args.vectorization,
               "nproc": nproc, "effective_batch_size": agent.batch_size * nproc,
               "updates_per_step": args.updates_per_step,
               "device": str(agent.device), "resumed_from_frame": resumed_from,
               "frames_collected": frames,
               "train_seconds": round(train_seconds, 1),
               "frames_per_second": round(frames / max(train_seconds, 1e-9), 1),
               # plots, metrics and checkpoints: their share of the run's time
               "output_seconds": round(output_seconds, 3),
               "output_share": round(output_seconds / max(seconds, 1e-9), 5),
               # seconds from the start of training (not from launch) to the first update
               # compiled by inductor, and to the first by the C++ op while it compiled (None:
               # none ran; CUDA runs record neither)
               "first_compiled_update_train_s": _seconds_after(
                   agent.first_compiled_update_time, started_at),
               "first_native_update_train_s": _seconds_after(
                   agent.first_native_update_time, started_at),
               # the same as Unix times, for a caller that timed the launch (cold_start.py)
               "first_compiled_update_time": agent.first_compiled_update_time,
               "first_native_update_time": agent.first_native_update_time,
               "test_episodes": len(scores), "test_mean_return": float(np.mean(scores)),
               "test_returns": [round(s, 2) for s in scores]}
    with open(os.path.join(args.out, SUMMARY_NAME), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"trained {frames} frames in {train_seconds:.0f} s "
          f"({frames / max(train_seconds, 1e-9):.0f} frames/s)")
    print(f"outputs in {args.out}/: {', '.join(OUTPUT_FILES)}")
    print(f"mean return over {len(scores)} test episodes: {np.mean(scores):.1f}")
    return 0


def _seconds_after(when: float | None, start: float) -> float | None:
    return None if when is None else round(when - start, 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="fastsac", description="Fast, verified Soft Actor-Critic for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="{train,bench,check}")
    _add_train(sub)
    from fastsac import bench_cli, check_cli

    bench_cli.add_parser(sub)
    check_cli.add_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
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
