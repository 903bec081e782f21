"""Learning while the compiler works: FastSAC.train runs the ahead-of-time C++ update (the
bridge) while a background process compiles, then switches to the compiled update, loaded from
the caches the background process filled (no compile of its own)."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from fastsac import FastSAC, make_env
from fastsac import background_compile as background

SCRIPT = textwrap.dedent("""
    import json, time
    import torch
    from torch._dynamo.utils import counters
    from fastsac import FastSAC, make_env
    from fastsac import background_compile as background

    torch.set_num_threads(1)
    agent = FastSAC(make_env("Pendulum-v1"), 2000, 24, initial_random_steps=50,
                    hidden_sizes=(24, 24), seed=0)
    paths, bridge_calls = [], [0]
    run, bridge = agent._run_update, agent._bridge_fn
    assert bridge is not agent._eager_fn, "the bridge is not the extension's op"
    def spy(*args):  # which path this update took: whether the C++ op ran
        before = bridge_calls[0]
        out = run(*args)
        paths.append("bridge" if bridge_calls[0] > before else "compiled")
        return out
    def counted(*args):
        bridge_calls[0] += 1
        return bridge(*args)
    agent._run_update, agent._bridge_fn = spy, counted
    agent.train(150, plot_path=None, progress=False)
    job = background._JOBS[agent._update_key]
    started = time.time()
    job.proc.wait(timeout=900)
    agent.env = make_env("Pendulum-v1")
    agent.train(150, plot_path=None, progress=False)
    print(json.dumps({"paths": paths, "ok": job.ok, "native_time": agent.first_native_update_time,
                      "inductor": dict(counters["inductor"])}))
""")


def test_train_learns_on_the_bridge_then_loads_the_background_compile(tmp_path):
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    env.pop(background.ENV_SWITCH, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    paths = result["paths"]
    assert result["ok"] is True
    assert paths[0] == "bridge" and paths[-1] == "compiled"
    switch = paths.index("compiled")
    assert result["native_time"] is not None
    assert set(paths[switch:]) == {"compiled"}  # never back
    # both graphs came from the background process's cache entries: nothing compiled here
    assert result["inductor"].get("fxgraph_cache_hit") == 2, result["inductor"]
    assert not result["inductor"].get("fxgraph_cache_miss"), result["inductor"]


def test_no_background_compile_when_switched_off(monkeypatch):
    """background_compile=False, FASTSAC_BACKGROUND_COMPILE=0, direct update_model calls:
    no child process, the compiled update from the first update on."""
    monkeypatch.setenv(background.ENV_SWITCH, "0")
    agent = FastSAC(make_env("Pendulum-v1"), 500, 16, initial_random_steps=20,
                    hidden_sizes=(16,), seed=0)
    agent._training = True
    assert not agent._compiling_elsewhere()
    monkeypatch.delenv(background.ENV_SWITCH)
    agent.background_compile = False
    assert not agent._compiling_elsewhere()
    agent.background_compile, agent._training = True, False
    assert not agent._compiling_elsewhere()
    assert agent._update_key not in background._JOBS


def test_failed_background_compile_warns_and_falls_back(monkeypatch):
    """A child that fails is reported (its error output in a warning) and the agent compiles
    in its own process."""
    agent = FastSAC(make_env("Pendulum-v1"), 500, 16, initial_random_steps=20,
                    hidden_sizes=(12,), seed=0)
    job = background.Job.__new__(background.Job)
    job._log = tempfile.TemporaryFile()
    job._log.write(b"boom: no compiler")
    job.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    job.proc.wait()
    job.ok = None
    monkeypatch.setitem(background._JOBS, agent._update_key, job)
    agent._training = True
    with pytest.warns(RuntimeWarning, match="boom: no compiler"):
        assert not agent._compiling_elsewhere()  # the compiled update, built here
    assert job.ok is False


def test_busy_machine_stops_waiting_for_the_child_only_on_the_eager_bridge(monkeypatch):
    """Past PATIENCE_S on the eager Python bridge (far slower than the graph) the child is
    stopped and the update compiles here; on the C++ op (close to the graph) the run keeps
    waiting: compiling here would stall training for nothing."""
    monkeypatch.delenv(background.ENV_SWITCH, raising=False)
    monkeypatch.setattr(background, "PATIENCE_S", -1.0)
    agent = FastSAC(make_env("Pendulum-v1"), 500, 16, initial_random_steps=20,
                    hidden_sizes=(10,), seed=0)
    agent._training = True
    assert agent._bridge_fn is not agent._eager_fn  # the C++ op
    try:
        assert agent._compiling_elsewhere()
        job = background._JOBS[agent._update_key]
        assert job.proc.poll() is None and job.ok is not False  # still compiling
        agent._bridge_fn = agent._eager_fn  # as without the extension's op
        assert not agent._compiling_elsewhere()
        assert job.ok is False and job.proc.poll() is not None
    finally:
        background._JOBS[agent._update_key].stop()
