"""Benchmark cases and the timer behind ``fastsac bench`` and ``benchmarks/`` (pytest-benchmark).

Every group compares variants of the same work (fused vs eager, Numba vs numpy, FastSAC vs the
reference and Stable-Baselines3). Variants of a group are timed interleaved, round by round, and
each figure is the median over rounds, so a slow moment of the machine hits all variants alike.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from fastsac import FastSAC, ReplayBuffer, SACAgent, make_env, native_update, ops
from fastsac.reference import NumpyReplayBuffer, tanh_normal_sample


@dataclass
class Case:
    """One variant of a benchmark group: ``setup()`` returns the zero-argument call to time."""

    group: str
    name: str
    setup: Callable[[], Callable[[], object]]
    baseline: bool = False  # the variant the group's ratios are taken against
    params: dict = field(default_factory=dict)


def _sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ---- ops --------------------------------------------------------------------------------------
def tanh_normal_cases(device="cpu", batches=(1, 128, 4096, 65536), dims=(1, 6)) -> list[Case]:
    cases = []
    for batch in batches:
        for dim in dims:
            group = f"tanh_normal fwd+bwd [{batch}x{dim}] {device}"

            def make(fn, batch=batch, dim=dim):
                def setup():
                    g = torch.Generator().manual_seed(0)
                    m, s, e = (torch.randn(batch, dim, generator=g).to(device) for _ in range(3))
                    m.requires_grad_()
                    s.requires_grad_()

                    def call():
                        action, log_prob = fn(m, s, e)
                        (action.sum() + log_prob.sum()).backward()
                        m.grad = s.grad = None
                        _sync(device)
                    return call
                return setup

            cases.append(Case(group, "eager composite (notebook)", make(
                lambda m, s, e: tanh_normal_sample(m, s, e, ops.LOG_STD_MIN, ops.LOG_STD_MAX)),
                baseline=True, params={"batch": batch, "dim": dim}))
            cases.append(Case(group, "fastsac::tanh_normal", make(ops.tanh_normal),
                              params={"batch": batch, "dim": dim}))
    return cases


def _polyak_lists(kind: str, device):
    if kind == "V network":
        from fastsac.networks import CriticV

        net, target = CriticV(3).to(device), CriticV(3).to(device)
        return [p.data for p in target.parameters()], [p.data for p in net.parameters()]
    g = torch.Generator().manual_seed(0)
    shapes = [(256, 256), (256,), (256, 256), (256,)] * 8  # 32 tensors, ~1.06M parameters
    return ([torch.randn(s, generator=g).to(device) for s in shapes],
            [torch.randn(s, generator=g).to(device) for s in shapes])


def _polyak_loop(target, source, tau):
    """The notebook's per-parameter Polyak loop."""
    for t, s in zip(target, source, strict=True):
        t.copy_(tau * s + (1.0 - tau) * t)


POLYAK_VARIANTS = {
    "per-parameter loop (notebook)": _polyak_loop,
    "torch._foreach_lerp_": torch._foreach_lerp_,
    "fastsac::polyak_": ops.polyak_,
}


def polyak_cases(device="cpu", tau=5e-3) -> list[Case]:
    cases = []
    for kind in ("V network", "1M-parameter list"):
        for name, fn in POLYAK_VARIANTS.items():

            def setup(kind=kind, fn=fn):
                target, source = _polyak_lists(kind, device)

                def call():
                    fn(target, source, tau)
                    _sync(device)
                return call

            cases.append(Case(f"polyak_ {kind} {device}", name, setup,
                              baseline=fn is _polyak_loop))
    return cases


def mm_cases(sizes=((128, 128, 128), (256, 128, 128))) -> list[Case]:
    """The update's hidden-layer products on CPU: torch.mm (MKL) vs fastsac::mm, with a
    plain and a transposed left operand (weight gradients read activations transposed)."""
    cases = []
    for m, k, n in sizes:
        for transposed in (False, True):
            group = f"mm {m}x{k} @ {k}x{n}{' (a transposed)' if transposed else ''} cpu"

            def make(fn, m=m, k=k, n=n, transposed=transposed):
                def setup():
                    g = torch.Generator().manual_seed(0)
                    a = torch.randn((k, m) if transposed else (m, k), generator=g)
                    a = a.t() if transposed else a
                    b = torch.randn(k, n, generator=g)
                    return lambda: fn(a, b)
                return setup

            cases.append(Case(group, "torch.mm (MKL)", make(torch.mm), baseline=True,
                              params={"m": m, "k": k, "n": n}))
            cases.append(Case(group, f"fastsac::mm ({ops.kernel_build()} build)",
                              make(torch.ops.fastsac.mm), params={"m": m, "k": k, "n": n}))
    return cases


# ---- buffer -----------------------------------------------------------------------------------
def _fill_random(buf):
    """Fill a buffer to capacity with random transitions (directly, not through store())."""
    rng = np.random.default_rng(0)
    buf.obs_buf[:] = rng.normal(size=buf.obs_buf.shape)
    buf.next_obs_buf[:] = rng.normal(size=buf.next_obs_buf.shape)
    buf.acts_buf[:] = rng.uniform(-1, 1, size=buf.acts_buf.shape)
    buf.rews_buf[:] = rng.normal(size=buf.rews_buf.shape)
    buf.size, buf.ptr = buf.max_size, 0
    return buf


def _filled(buffer_cls, n: int, batch: int = 128):
    return _fill_random(buffer_cls(3, n, batch, 1, seed=0))


def buffer_cases(sizes=(1_000, 10_000, 100_000, 1_000_000)) -> list[Case]:
    cases = []
    for n in sizes:
        group = f"sample_batch() at {n:.0e} stored"
        cases.append(Case(group, "np.random.choice (notebook)",
                          lambda n=n: _filled(NumpyReplayBuffer, n).sample_batch,
                          baseline=True, params={"size": n}))
        cases.append(Case(group, "fastsac.ReplayBuffer (Numba)",
                          lambda n=n: _filled(ReplayBuffer, n).sample_batch, params={"size": n}))
    return cases


# ---- the agent ------------------------------------------------------------------------------
def _agent_with_full_buffer(cls, device, memory=100_000, **kwargs):
    agent = cls(make_env(), memory, 128, device=device, seed=0, **kwargs)
    _fill_random(agent.memory)
    return agent


def update_cases(device="cpu", compiled=True) -> list[Case]:
    group = f"update_model() 100k buffer {device}"

    def make(cls, native=False, **kwargs):
        def setup():
            agent = _agent_with_full_buffer(cls, device, **kwargs)
            if native:
                native_update.run_natively(agent)
            for _ in range(4):  # compile / capture both graphs before timing
                agent.total_step += 1
                agent.update_model()

            def call():
                agent.total_step += 1
                agent.update_model()
                _sync(device)
            return call
        return setup

    cases = [Case(group, "reference (eager, notebook)", make(SACAgent), baseline=True),
             Case(group, "FastSAC eager + fused ops", make(FastSAC, compile=False))]
    if native_update.available(device):
        cases.append(Case(group, "FastSAC ahead-of-time C++ op (compile bridge)",
                          make(FastSAC, native=True, compile=False)))
    if compiled:
        cases.append(Case(group, "FastSAC compiled", make(FastSAC, cuda_graph=False)))
        if torch.device(device).type == "cuda":
            cases.append(Case(group, "FastSAC compiled + CUDA graph", make(FastSAC)))
    return cases


def select_action_cases(device="cpu") -> list[Case]:
    group = f"select_action() one state {device}"

    def make(cls, **kwargs):
        def setup():
            agent = cls(make_env(), 1000, 32, initial_random_steps=0, device=device, seed=0,
                        **kwargs)
            state = np.zeros(3, dtype=np.float32)
            return lambda: agent.select_action(state)
        return setup

    return [Case(group, "reference (notebook)", make(SACAgent), baseline=True),
            Case(group, "FastSAC", make(FastSAC, compile=False))]


# ---- timing -----------------------------------------------------------------------------------
def _calls_for(call, budget_s: float) -> int:
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, min(10_000, int(budget_s / once)))


def time_group(cases: list[Case], rounds: int = 7, budget_s: float = 0.05) -> list[dict]:
    """Median seconds per call of each case, the variants interleaved round by round."""
    calls = [case.setup() for case in cases]
    for call in calls:  # warm up (JIT, caches)
        for _ in range(3):
            call()
    counts = [_calls_for(call, budget_s) for call in calls]
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            for _ in range(counts[i]):
                call()
            samples[i].append((time.perf_counter() - start) / counts[i])
    base = next((i for i, c in enumerate(cases) if c.baseline), 0)
    base_median = statistics.median(samples[base])
    results = []
    for case, s in zip(cases, samples, strict=True):
        median = statistics.median(s)
        results.append({"group": case.group, "name": case.name, "median_s": median,
                        "spread": (max(s) - min(s)) / median if median else 0.0,
                        "speedup_vs_baseline": base_median / median, "baseline": case.baseline,
                        **case.params})
    return results


# ---- end to end -------------------------------------------------------------------------------
def _sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def e2e_runners(device: str, warmup_random: int, with_sb3: bool):
    """name -> (start(), run(frames)): each trains on Pendulum-v1 with the notebook's settings
    (memory 100k, batch 128, 128-128 networks), updates every frame after the random warm-up."""
    runners = {}

    def ours(cls, **kwargs):
        state = {}

        def start():
            agent = cls(make_env(), 100_000, 128, initial_random_steps=warmup_random,
                        device=device, seed=0, **kwargs)
            agent.train(warmup_random + 50, plot_path=None, progress=False)  # + compile
            state["agent"] = agent

        def run(frames):
            state["agent"].train(frames, plot_path=None, progress=False)
        return start, run

    # the update phase's steady state: the compiled update before timing (cold starts are
    # benchmarks/cold_start.py's)
    runners["FastSAC"] = ours(FastSAC, background_compile=False)
    runners["reference (eager, notebook)"] = ours(SACAgent)
    if with_sb3 and _sb3_available():
        state = {}

        def start_sb3():
            import gymnasium as gym
            from stable_baselines3 import SAC

            torch.manual_seed(0)
            model = SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=3e-4,
                        buffer_size=100_000, batch_size=128, learning_starts=warmup_random,
                        train_freq=1, gradient_steps=1, device=device, seed=0,
                        policy_kwargs={"net_arch": [128, 128]}, verbose=0)
            model.learn(warmup_random + 50)
            state["model"] = model

        def run_sb3(frames):
            state["model"].learn(frames, reset_num_timesteps=False)
        runners["Stable-Baselines3 SAC"] = (start_sb3, run_sb3)
    return runners


def interleave_runners(runners: dict, frames: int, rounds: int) -> dict[str, list[float]]:
    """Start every runner, then train each for ``frames`` frames in turn, ``rounds`` times:
    frames/s per runner and round (a slow moment of the machine hits all runners alike)."""
    for start, _ in runners.values():
        start()
    fps: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, (_, run) in runners.items():
            t0 = time.perf_counter()
            run(frames)
            fps[name].append(frames / (time.perf_counter() - t0))
    return fps


def time_e2e(device="cpu", frames=1000, rounds=3, warmup_random=1000, with_sb3=True) -> list[dict]:
    """Training frames/s in the update phase, interleaved round by round, median over rounds."""
    fps = interleave_runners(e2e_runners(device, warmup_random, with_sb3), frames, rounds)
    ref = statistics.median(fps["reference (eager, notebook)"])
    results = []
    for name, values in fps.items():
        median = statistics.median(values)
        results.append({"group": f"training frames/s Pendulum-v1 {device}", "name": name,
                        "frames_per_s": median, "speedup_vs_reference": median / ref,
                        "rounds": values})
    return results


# ---- the machine ----------------------------------------------------------------------------
def machine_info(device: str = "cpu") -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": _cpu_model(), "cores": _cores(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__,
            "extension": "fastsac._C" if ops.EXTENSION_LOADED else "FALLBACK (pure torch)"}
    for mod in ("numba", "gymnasium", "stable_baselines3"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
