"""End-to-end training speed: frames/s on Pendulum-v1 with the notebook's settings, FastSAC vs
the eager reference vs Stable-Baselines3's SAC (if installed), interleaved in one run.

    python benchmarks/e2e.py [--device cpu] [--frames 1000] [--rounds 3]
"""

import argparse
import json

from fastsac.bench import machine_info, time_e2e


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup-random", type=int, default=1000)
    args = p.parse_args()
    results = time_e2e(args.device, args.frames, args.rounds, args.warmup_random)
    print(json.dumps({"machine": machine_info(args.device), "results": results}, indent=2))


if __name__ == "__main__":
    main()
