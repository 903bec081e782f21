"""End-to-end training speed: frames/s on Pendulum-v1 with the notebook's settings, FastSAC vs
the eager reference vs Stable-Baselines3's SAC (if installed), interleaved in one run
(``fastsac bench --only e2e`` writes the same to benchmarks/results/; benchmarks/peers.py
compares FastSAC v2 with SB3 on the same algorithm).

    python benchmarks/e2e.py [--device cpu] [--frames 1000] [--rounds 3] [--warmup-random 1000]
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):  # run as a file: the repository's root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import machine_info, time_e2e


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup-random", type=int, default=1000)
    p.add_argument("--no-sb3", action="store_true")
    args = p.parse_args()
    results = time_e2e(args.device, args.frames, args.rounds, args.warmup_random,
                       with_sb3=not args.no_sb3)
    print(json.dumps({"machine": machine_info(args.device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
