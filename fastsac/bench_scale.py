"""Benchmarks at the shapes people train: one update against the floor of its own matrix
products, the eager reference and Stable-Baselines3, per thread count; training frames/s.

Why a floor: at 256 wide a CPU update is compute-bound (dozens of 256 x 256 x 256-sized
products), so "N times the reference" says little; what matters is how close the update comes
to the time of its products alone. The floor is measured, not computed: the update runs once
under a dispatch mode that records every matrix product it calls (``aten.mm``, ``aten.addmm``,
``fastsac::mm``) with its operands' shapes and strides, and those same calls are then timed
apart, on the same thread count.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastsac import FastSAC, SACAgent, make_env, native_update, ops
from fastsac.bench import Case, _fill_random, _sb3_available, interleave_runners


@dataclass(frozen=True)
class Shape:
    """A training configuration benchmarked as a whole."""

    name: str
    env_id: str
    hidden_sizes: tuple[int, ...]
    batch_size: int
    memory_size: int


SHAPES = {
    "notebook": Shape("notebook", "Pendulum-v1", (128, 128), 128, 100_000),
    "mujoco": Shape("mujoco", "HalfCheetah-v5", (256, 256), 256, 1_000_000),
}


class _ProductRecorder(TorchDispatchMode):
    """Records the matrix products called inside it, with copies of their operands."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[Callable, tuple]] = []
        self._ops = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
                     torch.ops.fastsac.mm.default}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self._ops:
            self.calls.append((func, tuple(_like(a) for a in args)))
        return func(*args, **(kwargs or {}))


def _like(x):
    """A tensor with ``x``'s shape, strides and values (strided: a transposed view stays one)."""
    if not isinstance(x, torch.Tensor):
        return x
    out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    out.copy_(x)
    return out


def _agent(cls, shape: Shape, **kwargs):
    agent = cls(make_env(shape.env_id), shape.memory_size, shape.batch_size, device="cpu",
                seed=0, hidden_sizes=shape.hidden_sizes, **kwargs)
    _fill_random(agent.memory)
    return agent


def recorded_products(shape: Shape) -> dict[bool, list[tuple[Callable, tuple]]]:
    """The products of one policy-step update and one critic-only update, as FastSAC's update
    calls them (eager: the same ops the compiled graph calls as external kernels)."""
    agent = _agent(FastSAC, shape, compile=False, update_threads=None)
    products = {}
    for step, policy in ((1, False), (2, True)):
        agent.total_step = step
        with _ProductRecorder() as rec, torch.no_grad():
            agent.update_model()
        products[policy] = rec.calls
    return products


def _threads_case(threads: int, setup: Callable[[], Callable[[], object]]):
    """Runs ``setup``'s call with torch (and fastsac's products) on ``threads`` threads."""

    def wrapped():
        torch.set_num_threads(threads)
        call = setup()

        def run():
            torch.set_num_threads(threads)
            return call()
        return run
    return wrapped


def update_floor_cases(shape: Shape, threads: int, compiled: bool = True,
                       with_sb3: bool = True) -> list[Case]:
    """One group: FastSAC's update (compiled and eager), its products alone (the floor), the
    reference and SB3's ``train()`` at ``shape``, all on ``threads`` threads. Every call runs two
    updates, a critic-only and a policy step as in training (policy_update_freq 2)."""
    group = (f"update_model() {'-'.join(map(str, shape.hidden_sizes))} batch {shape.batch_size} "
             f"{shape.memory_size:.0e} buffer, {threads} thread{'s' if threads > 1 else ''}")
    params = {"shape": shape.name, "threads": threads}

    def floor():
        products = recorded_products(shape)
        ops.set_product_threads(threads)

        def call():
            for policy in (False, True):
                for func, args in products[policy]:
                    func(*args)
        return call

    def ours(native=False, **kwargs):
        def setup():
            agent = _agent(FastSAC, shape, update_threads=threads, **kwargs)
            if native:
                native_update.run_natively(agent)
            for _ in range(4):  # compile both graphs before timing
                agent.total_step += 1
                agent.update_model()

            def call():  # a critic-only and a policy step, halved below
                for _ in range(2):
                    agent.total_step += 1
                    agent.update_model()
            return call
        return setup

    def reference():
        agent = _agent(SACAgent, shape)

        def call():
            for _ in range(2):
                agent.total_step += 1
                agent.update_model()
        return call

    cases = [Case(group, "products alone (floor)", _threads_case(threads, floor), baseline=True,
                  params=params)]
    if compiled:
        cases.append(Case(group, "FastSAC compiled", _threads_case(threads, ours()),
                          params=params))
    if native_update.available("cpu"):
        cases.append(Case(group, "FastSAC ahead-of-time C++ op (compile bridge)",
                          _threads_case(threads, ours(native=True, compile=False)),
                          params=params))
    cases += [Case(group, "FastSAC eager + fused ops",
                   _threads_case(threads, ours(compile=False)), params=params),
              Case(group, "reference (eager, notebook)", _threads_case(threads, reference),
                   params=params)]
    if with_sb3 and _sb3_available():
        cases.append(Case(group, "Stable-Baselines3 SAC train()",
                          _threads_case(threads, lambda: _sb3_update(shape)), params=params))
    return cases


def _sb3_update(shape: Shape) -> Callable[[], object]:
    """SB3's SAC with the same networks, batch and buffer, its buffer full of random data."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    env = gym.make(shape.env_id)
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=shape.memory_size,
                batch_size=shape.batch_size, learning_starts=0, train_freq=1, gradient_steps=1,
                policy_kwargs={"net_arch": list(shape.hidden_sizes)}, device="cpu", seed=0,
                verbose=0)
    model.set_logger(configure(None, []))
    buf = model.replay_buffer
    rng = np.random.default_rng(0)
    for name in ("observations", "next_observations", "actions", "rewards"):
        array = getattr(buf, name)
        array[:] = rng.normal(size=array.shape).astype(array.dtype)
    buf.full = True

    def call():
        model.train(gradient_steps=2, batch_size=shape.batch_size)
    return call


def time_update_group(cases: list[Case], rounds: int = 7, calls: int = 5) -> list[dict]:
    """Median seconds per update of each case, interleaved round by round; ratios against the
    floor (``floor_ratio``: this time / the floor's) and the reference."""
    runs = [case.setup() for case in cases]
    for run in runs:
        for _ in range(2):
            run()
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(rounds):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            for _ in range(calls):
                run()
            samples[i].append((time.perf_counter() - start) / calls / 2)  # 2 updates a call
    medians = [statistics.median(s) for s in samples]
    floor = medians[0]
    ref = next((m for c, m in zip(cases, medians, strict=True) if c.name.startswith("reference")),
               None)
    rows = []
    for case, s, median in zip(cases, samples, medians, strict=True):
        rows.append({"group": case.group, "name": case.name, "median_s": median,
                     "spread": (max(s) - min(s)) / median, "floor_ratio": median / floor,
                     "speedup_vs_reference": (ref / median) if ref else None,
                     "speedup_vs_baseline": floor / median, "baseline": case.baseline,
                     **case.params})
    return rows


def time_training(shape: Shape, frames: int = 2000, rounds: int = 3, warmup_random: int = 10_000,
                  threads: int | None = None, with_sb3: bool = True) -> list[dict]:
    """Training frames/s in the update phase at ``shape``: FastSAC, the reference and SB3's SAC
    with the same networks, batch, buffer and learning rate, interleaved round by round."""
    if threads is not None:
        torch.set_num_threads(threads)

    def ours(cls, **kwargs):
        box = {}

        def start():
            agent = cls(make_env(shape.env_id), shape.memory_size, shape.batch_size,
                        initial_random_steps=warmup_random, device="cpu", seed=0,
                        hidden_sizes=shape.hidden_sizes, **kwargs)
            agent.train(warmup_random + 50, plot_path=None, progress=False)  # + compile
            box["agent"] = agent

        return start, lambda n: box["agent"].train(n, plot_path=None, progress=False)

    # the update phase's steady state: FastSAC waits for its compiled update before timing
    # (benchmarks/cold_start.py measures the start)
    runners = {"FastSAC": ours(FastSAC, background_compile=False),
               "reference (eager, notebook)": ours(SACAgent)}
    if with_sb3 and _sb3_available():
        box = {}

        def start_sb3():
            import gymnasium as gym
            from stable_baselines3 import SAC

            model = SAC("MlpPolicy", gym.make(shape.env_id), learning_rate=3e-4,
                        buffer_size=shape.memory_size, batch_size=shape.batch_size,
                        learning_starts=warmup_random, train_freq=1, gradient_steps=1,
                        policy_kwargs={"net_arch": list(shape.hidden_sizes)}, device="cpu",
                        seed=0, verbose=0)
            model.learn(warmup_random + 50)
            box["model"] = model

        runners["Stable-Baselines3 SAC"] = (
            start_sb3, lambda n: box["model"].learn(n, reset_num_timesteps=False))
    fps = interleave_runners(runners, frames, rounds)
    ref = statistics.median(fps["reference (eager, notebook)"])
    sb3 = statistics.median(fps["Stable-Baselines3 SAC"]) if "Stable-Baselines3 SAC" in fps \
        else None
    group = (f"training frames/s {shape.env_id} {'-'.join(map(str, shape.hidden_sizes))} "
             f"batch {shape.batch_size}, {torch.get_num_threads()} threads")
    return [{"group": group, "name": name, "frames_per_s": statistics.median(v),
             "speedup_vs_reference": statistics.median(v) / ref,
             "speedup_vs_sb3": statistics.median(v) / sb3 if sb3 else None, "rounds": v,
             "shape": shape.name, "threads": torch.get_num_threads()}
            for name, v in fps.items()]
