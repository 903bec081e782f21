"""Stable-Baselines3 SAC learning-curve baseline (default HalfCheetah-v5) with the SAC paper's
settings as fastsac's mujoco preset uses them, for comparison with fastsac's curve.

    python benchmarks/sb3_learning.py [--env HalfCheetah-v5] [--frames 100000] [--seed 0]
        [--threads 1] [--learning-starts 10000] [--out runs/sb3-halfcheetah]

Writes OUT/metrics.csv (one row ``frame,score,seconds`` per finished episode, flushed as it goes),
OUT/eval.csv (``frame,eval_return``: the mean return of ``--eval-episodes`` deterministic episodes
on a separate env every ``--eval-every`` frames, by SB3's own ``EvalCallback``) and
OUT/summary.json (timings and the mean return of 10 deterministic evaluation episodes on a
separate env seeded seed+1, as ``fastsac train`` reports its test return). No model file is
saved.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import deque
from pathlib import Path
from typing import TextIO

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.monitor import Monitor


class EpisodeLogger(BaseCallback):
    """Appends every finished episode (from Monitor's ``info["episode"]``) to a CSV file and
    prints progress every ``print_every`` frames."""

    def __init__(self, f: TextIO, print_every: int = 10_000) -> None:
        super().__init__()
        self.f = f
        self.writer = csv.writer(f)
        self.print_every = print_every
        self.recent: deque[float] = deque(maxlen=10)
        self.t0 = time.perf_counter()

    def _on_training_start(self) -> None:
        self.t0 = time.perf_counter()

    def _on_step(self) -> bool:
        frame = self.num_timesteps
        seconds = time.perf_counter() - self.t0
        for info in self.locals["infos"]:
            ep = info.get("episode")
            if ep is not None:
                score = float(ep["r"])
                self.recent.append(score)
                self.writer.writerow([frame, f"{score:.4f}", f"{seconds:.3f}"])
                self.f.flush()
        if frame % self.print_every == 0:
            mean = float(np.mean(self.recent)) if self.recent else float("nan")
            print(
                f"frame {frame:>8d}  last-10 mean score {mean:9.2f}  "
                f"{frame / seconds:7.1f} frames/s",
                flush=True,
            )
        return True


def evaluate(model: SAC, env_id: str, seed: int, episodes: int = 10) -> float:
    """Mean return of ``episodes`` deterministic episodes on a fresh env."""
    env = gym.make(env_id)
    returns = []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    env.close()
    return float(np.mean(returns))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--learning-starts", type=int, default=10_000)
    p.add_argument("--out", default="runs/sb3-halfcheetah")
    p.add_argument("--eval-every", type=int, default=5000, metavar="FRAMES")
    p.add_argument("--eval-episodes", type=int, default=5)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    env = Monitor(gym.make(args.env))
    model = SAC(
        "MlpPolicy",
        env,
        policy_kwargs=dict(net_arch=[256, 256]),
        batch_size=256,
        buffer_size=1_000_000,
        learning_rate=3e-4,
        learning_starts=args.learning_starts,
        train_freq=1,
        gradient_steps=1,
        gamma=0.99,
        tau=0.005,
        ent_coef="auto",
        device="cpu",
        seed=args.seed,
        verbose=0,
    )

    with open(out / "metrics.csv", "w", newline="") as f:
        f.write("frame,score,seconds\n")
        logger = EpisodeLogger(f)
        eval_env = Monitor(gym.make(args.env))
        eval_env.reset(seed=args.seed + 1)
        evals = EvalCallback(eval_env, n_eval_episodes=args.eval_episodes,
                             eval_freq=args.eval_every, deterministic=True, verbose=0,
                             log_path=str(out))  # (it records evaluations only with a path)
        t0 = time.perf_counter()
        model.learn(total_timesteps=args.frames, callback=CallbackList([logger, evals]))
        train_seconds = time.perf_counter() - t0
        eval_env.close()
    with open(out / "eval.csv", "w", newline="") as f:
        f.write("frame,eval_return\n")
        for frame, returns in zip(evals.evaluations_timesteps, evals.evaluations_results,
                                  strict=True):
            f.write(f"{frame},{float(np.mean(returns)):.4f}\n")
    env.close()

    eval_return = evaluate(model, args.env, args.seed + 1)
    summary = {
        "library": "stable-baselines3",
        "env": args.env,
        "frames": args.frames,
        "seed": args.seed,
        "threads": args.threads,
        "learning_starts": args.learning_starts,
        "train_seconds": round(train_seconds, 3),
        "frames_per_second": round(args.frames / train_seconds, 2),
        "eval_episodes": 10,
        "eval_deterministic": True,
        "eval_every": args.eval_every,
        "train_seconds_include_evaluations": True,
        "eval_mean_return": round(eval_return, 4),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
