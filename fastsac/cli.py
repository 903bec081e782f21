"""``fastsac train | check | bench``: the command line. ``train`` has one flag per setting of
:class:`fastsac.settings.SACConfig` (their help is the settings' own), plus the run's options.

Errors of fastsac's own (bad settings, a bad checkpoint) are one line and exit status 2; an
error raised anywhere else, inside a user's env say, shows its traceback."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from fastsac import resume
from fastsac.errors import ConfigError, FastSACError, TrainingDiverged
from fastsac.settings import FIELDS, HELP, PRESETS, SACConfig

METRICS_NAME, SUMMARY_NAME, PLOT_NAME = "metrics.csv", "summary.json", "learning_curve.png"
OUTPUT_FILES = (resume.CHECKPOINT_NAME, METRICS_NAME, "eval.csv", SUMMARY_NAME, PLOT_NAME)
# the run's options that no preset sets, and their defaults (every flag defaults to None on the
# command line, so --resume can tell the options given from those left unset)
RUN_DEFAULTS: dict[str, Any] = {"preset": "notebook", "env_kwargs": None, "nproc": 1,
                                "num_envs": 1, "vectorization": "sync", "seed": 777,
                                "device": "auto", "eager": False, "background_compile": True,
                                "test_episodes": 10, "stochastic_test": False,
                                "eval_every": None, "eval_episodes": 5}


def count(text: str) -> int:
    """An int flag that takes ``100000``, ``1e5`` or ``100_000``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("give a JSON object, e.g. '{\"g\": 9.81}'")
    return value


def _setting_flags(p: argparse.ArgumentParser) -> None:
    """One flag per SACConfig field, its type from the field's."""
    for f in dataclasses.fields(SACConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        if f.name == "hidden_sizes":
            p.add_argument(flag, "--hidden", dest=f.name, type=int, nargs="+", metavar="WIDTH",
                           default=None, help=HELP[f.name])
        elif f.name == "variant":
            from fastsac.variants import VARIANTS

            p.add_argument(flag, choices=sorted(VARIANTS), default=None, help=HELP[f.name])
        else:
            convert = count if kind.startswith("int") else float
            p.add_argument(flag, type=convert, default=None, help=HELP[f.name])


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an agent (default: the notebook's Pendulum run)",
                       description="Train FastSAC. Options left out come from --preset, then "
                       "from the defaults in the help.")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="'notebook' (Pendulum, v1, 128-128, batch 128; the default) or 'mujoco' "
                   "(HalfCheetah-v5, v2, 256-256, batch 256, 1M buffer: SB3's settings)")
    p.add_argument("--env", default=None, help="gymnasium env id ('module:Env-v0' imports "
                   "module first); default: the preset's")
    p.add_argument("--env-kwargs", type=_json_dict, default=None, metavar="JSON",
                   help="keyword arguments of the env's constructor, as a JSON object")
    p.add_argument("--frames", type=count, default=None,
                   help="transitions to train for (1e5 is fine); default: the preset's")
    _setting_flags(p)
    p.add_argument("--num-envs", type=count, default=None,
                   help="envs stepped together, a gymnasium vector env when > 1 (default 1)")
    p.add_argument("--vectorization", choices=("sync", "async"), default=None,
                   help="with --num-envs > 1: in this process or one subprocess each")
    p.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    p.add_argument("--eager", action="store_const", const=True, default=None,
                   help="run the update uncompiled")
    p.add_argument("--no-background-compile", dest="background_compile",
                   action="store_const", const=False, default=None,
                   help="wait for the compiler instead of learning with the eager update "
                   "meanwhile (runs that repeat bitwise)")
    p.add_argument("--test-episodes", type=count, default=None,
                   help="deterministic test episodes after training (default 10)")
    p.add_argument("--stochastic-test", action="store_const", const=True, default=None,
                   help="sample the test episodes' actions instead of the squashed mean")
    p.add_argument("--eval-every", type=count, default=None, metavar="FRAMES",
                   help="evaluate deterministic episodes every this many frames, into "
                   "eval.csv and the plot")
    p.add_argument("--eval-episodes", type=count, default=None, help="per evaluation (5)")
    p.add_argument("--checkpoint-every", type=count, default=None, metavar="FRAMES",
                   help="a resumable checkpoint every this many frames (default: a tenth of "
                   "--frames; also every 10 minutes and at the end)")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="TensorBoard event files in DIR (needs the tensorboard package)")
    p.add_argument("--nproc", type=count, default=None, metavar="N",
                   help="data-parallel over N processes on this machine (torchrun); --frames "
                   "counts all of them, --batch-size and --memory-size are per process")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="continue the run in DIR from its checkpoint, with its settings; with "
                   "--frames N, extend it to N frames")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out folder that holds a run")
    p.add_argument("--out", default=None, help="output folder (default: runs/<env>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_train_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from ``--preset``, then the defaults."""
    if args.preset is None:
        args.preset = RUN_DEFAULTS["preset"]
    for key, value in {**PRESETS[args.preset], **RUN_DEFAULTS}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.checkpoint_every is None:
        args.checkpoint_every = max(1, args.frames // 10)
    if args.out is None:
        args.out = os.path.join("runs", args.env.split(":")[-1].split("/")[-1].split("-")[0]
                                .lower())
    return args


def settings_of(args: argparse.Namespace) -> SACConfig:
    values = {k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None}
    if "hidden_sizes" in values:
        values["hidden_sizes"] = tuple(values["hidden_sizes"])
    return SACConfig(**values)


def _resumed_args(args: argparse.Namespace, config: dict) -> argparse.Namespace:
    """The run's recorded options for ``--resume DIR``; given options that contradict them
    are an error (but ``--frames`` may extend the run, and outputs may change)."""
    from fastsac import distributed

    if args.out is not None and os.path.abspath(args.out) != os.path.abspath(args.resume):
        raise ConfigError(f"--resume {args.resume} writes to that folder; --out {args.out} "
                          "contradicts it")
    world = distributed.current_world()
    if config["nproc"] != (world.size if world else 1):
        raise ConfigError(f"{args.resume} is a run of {config['nproc']} processes; this is "
                          f"{world.size if world else 1}")
    given = {key: getattr(args, key) for key in config if hasattr(args, key)}
    if given.get("hidden_sizes") is not None:
        given["hidden_sizes"] = list(given["hidden_sizes"])
    bad = resume.contradictions(given, config)
    if bad:
        raise ConfigError(f"--resume {args.resume}: these options contradict the run's "
                          f"settings (leave them out to continue it): {'; '.join(bad)}")
    if args.frames is not None and args.frames < config["frames"]:
        raise ConfigError(f"--resume {args.resume}: --frames {args.frames} is fewer than the "
                          f"run's {config['frames']}")
    merged = {**config, **{k: v for k, v in given.items() if v is not None}}
    return argparse.Namespace(**merged, out=args.resume, resume=args.resume, overwrite=False,
                              no_progress=args.no_progress, tensorboard=args.tensorboard)


def cmd_train(args: argparse.Namespace) -> int:
    from fastsac import distributed, launch

    if args.resume is not None and args.overwrite:
        raise ConfigError("--overwrite starts a new run; --resume continues one: give one")
    config = None
    if args.resume is not None and not distributed.launched_by_torchrun():
        _, config = resume.recorded_run(args.resume)  # a run of N processes resumes as N
        if args.nproc is not None and args.nproc != config["nproc"]:
            raise ConfigError(f"--resume {args.resume}: --nproc {args.nproc} contradicts the "
                              f"run's {config['nproc']} processes (leave it out)")
        if config["nproc"] > 1:
            return launch.run_under_torchrun(config["nproc"], args.argv)
    elif args.nproc is not None and args.nproc > 1 and not distributed.launched_by_torchrun():
        _check_new_run(resolve_train_args(argparse.Namespace(**vars(args))))  # one message,
        return launch.run_under_torchrun(args.nproc, args.argv)  # not one per rank
    if not distributed.launched_by_torchrun():
        return _train(args, None, config)
    world = distributed.init_from_env(args.device)
    if args.nproc is not None and args.nproc != world.size:
        raise ConfigError(f"--nproc {args.nproc} contradicts torchrun's world of {world.size}")
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


def _check_counts(args: argparse.Namespace) -> None:
    for name in ("frames", "num_envs", "checkpoint_every", "test_episodes", "eval_episodes",
                 "eval_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _check_new_run(args: argparse.Namespace) -> SACConfig:
    """The settings of a new run, checked before anything starts."""
    _check_counts(args)
    settings = settings_of(args)
    if not args.overwrite and os.path.exists(resume.checkpoint_path(args.out)):
        raise ConfigError(f"{args.out} holds a run (its checkpoint.pt): continue it with "
                          f"--resume {args.out}, start afresh with --overwrite, or pick another "
                          "--out")
    return settings


def _lost_peers(exc: RuntimeError) -> bool:
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout"))


def _make_env(args: argparse.Namespace, num_envs: int | None, autoreset: str):
    import gymnasium as gym

    from fastsac import make_env

    try:
        return make_env(args.env, num_envs=num_envs, vectorization=args.vectorization,
                        autoreset=autoreset, env_kwargs=args.env_kwargs)
    except (gym.error.Error, ModuleNotFoundError) as exc:  # an unknown id, a missing package
        raise ConfigError(f"cannot make env {args.env!r}: {exc}") from exc


def _train(args: argparse.Namespace, world, config: dict | None) -> int:
    """One process's run: the whole run, or one rank's share (rank 0 alone writes outputs)."""
    import numpy as np

    from fastsac import FastSAC

    rank, nproc = (world.rank, world.size) if world else (0, 1)
    resuming = args.resume is not None
    if resuming:
        if config is None:
            _, config = resume.recorded_run(args.resume)
        args = _resumed_args(args, config)
        _check_counts(args)
        settings = settings_of(args)
    else:
        args = resolve_train_args(args)
        args.nproc = nproc
        settings = _check_new_run(args)
        vars(args).update(settings.to_dict())  # recorded resolved, for --resume to compare
    num_envs = None if args.num_envs == 1 else args.num_envs  # one env: the plain env
    # data-parallel ranks update in lockstep: a vector env resets in the step that ends an
    # episode, so every step is num_envs transitions on every rank
    env = _make_env(args, num_envs, "SameStep" if world is not None else "NextStep")
    agent = FastSAC(env, **settings.to_dict(), device=args.device,
                    compile=not args.eager, background_compile=args.background_compile,
                    data_parallel=world is not None)
    checkpoint_file = resume.checkpoint_path(args.out)
    if resuming:
        try:
            agent.load(checkpoint_file)
        except FastSACError:
            env.close()
            raise
    agent.run_config = resume.run_config(args)
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
        if args.overwrite:  # the old run's files go first: a kill before the first
            for name in OUTPUT_FILES:  # checkpoint cannot leave it to be resumed
                if os.path.exists(os.path.join(args.out, name)):
                    os.unlink(os.path.join(args.out, name))
    envs = f"{args.num_envs} {args.vectorization} envs" if num_envs else "1 env"
    if rank == 0:
        verb = f"resuming at frame {agent.total_step} of" if resuming else "train:"
        print(f"fastsac {verb} {args.env} ({envs}{f' x {nproc} processes' if world else ''}), "
              f"{args.frames} frames, SAC {settings.variant}, hidden "
              f"{'-'.join(map(str, settings.hidden_sizes))}, batch {settings.batch_size}, "
              f"memory {settings.memory_size}, lr {settings.lr:g}, seed {settings.seed}, "
              f"device {agent.device}, {'eager' if args.eager else 'compiled'} update",
              flush=True)
    resumed_from, start, started_at = agent.total_step, time.perf_counter(), time.time()
    remaining = -(-args.frames // nproc) - agent.total_step  # --frames counts every rank's
    history = agent.history  # a finished run resumed: only its test and summary are left
    eval_env = _make_env(args, None, "NextStep") if args.eval_every and rank == 0 else None
    try:
        if remaining > 0:
            history = agent.train(
                remaining, plot_path=os.path.join(args.out, PLOT_NAME) if rank == 0 else None,
                progress=False if args.no_progress else None, checkpoint_path=checkpoint_file,
                checkpoint_every=max(1, args.checkpoint_every // nproc),
                metrics_path=os.path.join(args.out, METRICS_NAME),
                tensorboard_dir=args.tensorboard,
                eval_every=args.eval_every if eval_env is not None else None,
                eval_episodes=args.eval_episodes, eval_env=eval_env)
    except TrainingDiverged as exc:
        print(f"fastsac train: error: {exc}", file=sys.stderr)
        return 3
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()
    if rank != 0:
        return 0
    train_seconds = time.perf_counter() - start
    frames = (agent.total_step - resumed_from) * nproc
    test_env = _make_env(args, None, "NextStep")
    try:
        test_env.reset(seed=settings.seed + 1 if settings.seed is not None else None)
        scores = agent.evaluate(args.test_episodes, env=test_env,
                                deterministic=not args.stochastic_test)
    finally:
        test_env.close()
    engine = agent.engine
    summary = {"env": args.env, "env_kwargs": args.env_kwargs, "frames": args.frames,
               "preset": args.preset, "settings": settings.to_dict(),
               "num_envs": args.num_envs, "nproc": nproc, "device": str(agent.device),
               "effective_batch_size": settings.batch_size * nproc,
               "resumed_from_frame": resumed_from, "frames_collected": frames,
               "episodes": len(history["score"]), "train_seconds": round(train_seconds, 1),
               "frames_per_second": round(frames / max(train_seconds, 1e-9), 1),
               "output_share": round(getattr(agent, "output_seconds", 0.0)
                                     / max(train_seconds, 1e-9), 5),
               # seconds into training of the first update on the eager bridge while the graph
               # compiled, and of the first compiled one (None: none ran)
               "first_bridge_update_train_s": _after(engine.first_bridge_update_time, started_at),
               "first_compiled_update_train_s": _after(engine.first_compiled_update_time,
                                                       started_at),
               "test_deterministic": not args.stochastic_test, "test_episodes": len(scores),
               "test_mean_return": float(np.mean(scores)),
               "test_returns": [round(s, 2) for s in scores],
               "eval_frames": agent.eval_history["frame"],
               "eval_returns": [round(r, 2) for r in agent.eval_history["eval_return"]]}
    with open(os.path.join(args.out, SUMMARY_NAME), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"trained {frames} frames in {train_seconds:.0f} s "
          f"({frames / max(train_seconds, 1e-9):.0f} frames/s); outputs in {args.out}/")
    kind = "stochastic" if args.stochastic_test else "deterministic"
    print(f"mean return over {len(scores)} {kind} test episodes: {np.mean(scores):.1f}")
    return 0


def _after(when: float | None, start: float) -> float | None:
    return None if when is None else round(when - start, 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastsac", description="Fast, verified Soft "
                                     "Actor-Critic for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="{train,check,bench}")
    _add_train(sub)
    from fastsac import check

    check.add_parser(sub)
    bench = sub.add_parser("bench", help="the benchmark suite (from a checkout: benchmarks/)")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="its own options")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "check":
            return check.run(args)
        return _bench(args.rest)
    except FastSACError as exc:  # fastsac's own: what, not where
        print(f"fastsac {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _bench(rest: list[str]) -> int:
    """``fastsac bench``: the suite lives in the repository's benchmarks/, not the package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "benchmarks", "suite.py")):
        raise ConfigError("fastsac bench runs the repository's benchmarks/: install fastsac "
                          "from a checkout (pip install -e .)")
    sys.path.insert(0, root)
    from benchmarks import suite

    return suite.main(rest)


def entry_point() -> None:
    """``fastsac`` and ``python -m fastsac``: ``main``, then an exit that leaves the objects torch
    made to the operating system. Frozen (``gc.freeze``), they are not walked again by the
    collections of interpreter shutdown, the slowest part of exiting after a run."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
