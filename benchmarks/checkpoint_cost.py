"""What a resumable checkpoint costs at the MuJoCo preset's scale: FastSAC (SAC v2) with 256-256
nets on HalfCheetah's shapes (obs 17, action 6) and a full 1M-transition replay buffer.

Times, each the median of ``--repeats`` writes to the same folder (with fsync, as the run does):

- the checkpoint without the buffer (weights, Adam states, streams, history);
- the checkpoint with the buffer (what ``fastsac train`` writes);
- the floor: the buffer's bytes written once to a file with ``write`` + ``fsync``;
- the buffer as the notebook-style buffer lays it out (five per-field arrays, copied out of
  their strided views first), as fastsac wrote it before checkpoints stored packed rows;
- loading the checkpoint with the buffer into a fresh agent.

The buffer part (with minus without) against the floor says whether storing the buffer costs
more than writing its bytes once.

    python benchmarks/checkpoint_cost.py [--transitions 1000000] [--repeats 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from benchmarks.harness import machine_info, machine_slug, write_report
from fastsac import FastSAC
from fastsac.buffer import transitions_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ShapeEnv(gym.Env):
    """HalfCheetah-v5's spaces, without MuJoCo: the checkpoint depends on shapes only."""

    def __init__(self):
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(17,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(6,), dtype=np.float32)


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_write(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(memoryview(np.ascontiguousarray(array)).cast("B"))
        f.flush()
        os.fsync(f.fileno())


def _fields_write(path: str, agent: FastSAC) -> None:
    with open(path, "wb") as f:
        torch.save(transitions_state(agent.memory), f)
        f.flush()
        os.fsync(f.fileno())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    n = args.transitions
    agent = FastSAC(ShapeEnv(), n, 256, variant="v2", hidden_sizes=(256, 256), compile=False,
                    seed=0)
    rng = np.random.default_rng(0)
    for start in range(0, n, 100_000):  # fill the buffer
        k = min(100_000, n - start)
        obs = rng.normal(size=(k, 17)).astype(np.float32)
        agent.memory.store_batch(obs, rng.uniform(-1, 1, (k, 6)), rng.normal(size=k), obs,
                                 np.zeros(k))
    agent.total_step = n
    folder = args.dir or tempfile.mkdtemp(prefix="fastsac-ckpt-")
    path = os.path.join(folder, "checkpoint.pt")
    rows = agent.memory._data[:n]
    results = {
        "without_buffer_s": _median_seconds(lambda: agent.save(path), args.repeats),
        "with_buffer_s": _median_seconds(lambda: agent.save(path, include_buffer=True),
                                         args.repeats),
        "raw_write_s": _median_seconds(lambda: _raw_write(path + ".raw", rows), args.repeats),
        "fields_layout_s": _median_seconds(lambda: _fields_write(path + ".fields", agent),
                                           args.repeats),
    }
    fresh = FastSAC(ShapeEnv(), n, 256, variant="v2", hidden_sizes=(256, 256), compile=False,
                    seed=1)
    results["load_with_buffer_s"] = _median_seconds(lambda: fresh.load(path), args.repeats)
    results["file_bytes"] = os.path.getsize(path)
    results["buffer_bytes"] = int(rows.nbytes)
    buffer_part = results["with_buffer_s"] - results["without_buffer_s"]
    results["buffer_part_s"] = buffer_part
    results["buffer_part_over_raw_write"] = buffer_part / results["raw_write_s"]
    for suffix in ("", ".raw", ".fields"):
        os.unlink(path + suffix)
    info = machine_info()
    report = {"date": datetime.date.today().isoformat(), "machine": info, "transitions": n,
              "repeats": args.repeats, "folder": folder, "results": results}
    mb = results["buffer_bytes"] / 1e6
    lines = [
        f"# Checkpoint cost, {report['date']}", "",
        f"- CPU: {info['cpu']} ({info['cores']} cores); folder {folder}",
        f"- FastSAC v2 256-256, HalfCheetah shapes, {n} transitions in the buffer "
        f"({mb:.0f} MB of rows), median of {args.repeats}", "",
        "| what | seconds |", "|---|---|",
        f"| checkpoint without the buffer | {results['without_buffer_s']:.3f} |",
        f"| checkpoint with the buffer | {results['with_buffer_s']:.3f} |",
        f"| floor: the buffer's bytes, one write + fsync | {results['raw_write_s']:.3f} |",
        f"| the buffer as five per-field arrays (before) | {results['fields_layout_s']:.3f} |",
        f"| load with the buffer | {results['load_with_buffer_s']:.3f} |", "",
        f"The buffer part of a checkpoint costs {buffer_part:.3f} s, "
        f"{results['buffer_part_over_raw_write']:.2f}x one plain write of its bytes.", ""]
    stem = os.path.join(args.out, f"{machine_slug(info)}-{report['date']}-checkpoint")
    write_report(stem, report, "\n".join(lines))
    print("\n".join(lines))
    print(f"written: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
