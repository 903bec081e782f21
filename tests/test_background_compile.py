"""Learning while the compiler works: FastSAC.train runs the update eagerly while a background
process compiles it, then switches to the compiled update, loaded from the caches the background
process filled (no compile of its own)."""

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
    import json, os, sys
    import torch
    from fastsac import FastSAC, make_env
    from fastsac import background_compile as background

    torch.set_num_threads(1)
    agent = FastSAC(make_env("Pendulum-v1"), 2000, 24, initial_random_steps=50,
                    hidden_sizes=(24, 24), seed=0)
    engine, paths = agent.engine, []
    eager, compiled = engine._eager, engine._fn
    compiler = []  # whether the compiler was imported, before and after the first compiled call
    def spy(name, fn):
        def run(*args):
            first_compiled = name == "compiled" and "compiled" not in paths
            paths.append(name)
            if first_compiled:
                compiler.append("torch._dynamo" in sys.modules)
            out = fn(*args)
            if first_compiled:
                compiler.append("torch._dynamo" in sys.modules)
            return out
        return run
    engine._eager, engine._fn = spy("eager", eager), spy("compiled", compiled)
    agent.train(150, progress=False)
    agent.save(os.path.join(sys.argv[1], "a.pt"))
    agent.load(os.path.join(sys.argv[1], "a.pt"))
    first = {"paths": list(paths), "compiler": "torch._dynamo" in sys.modules}
    job = background._JOBS[engine.spec]
    job.proc.wait(timeout=900)
    agent.env = make_env("Pendulum-v1")
    agent.train(150, progress=False)
    from torch._dynamo.utils import counters
    print(json.dumps({"paths": paths, "first": first, "compiler": compiler, "ok": job.ok,
                      "bridge": engine.first_bridge_update_time,
                      "inductor": dict(counters["inductor"])}))
""")


@pytest.mark.compile
def test_train_learns_eagerly_then_loads_the_background_compile(tmp_path):
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "inductor"))
    env.pop(background.ENV_SWITCH, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    paths = result["paths"]
    assert result["ok"] is True and result["bridge"] is not None
    assert paths[0] == "eager" and paths[-1] == "compiled"
    switch = paths.index("compiled")
    assert set(paths[switch:]) == {"compiled"}  # never back
    # the compiler is imported by the first compiled update, not before: building the agent,
    # learning on the eager update, saving and loading a checkpoint never import it
    first = result["first"]
    assert "compiled" not in first["paths"] and not first["compiler"], first
    assert result["compiler"] == [False, True], result["compiler"]
    # the graphs came from the background process's cache entries: nothing compiled here
    assert result["inductor"].get("fxgraph_cache_hit", 0) >= 1, result["inductor"]
    assert not result["inductor"].get("fxgraph_cache_miss"), result["inductor"]


def test_no_background_compile_when_switched_off(monkeypatch):
    """background_compile=False, FASTSAC_BACKGROUND_COMPILE=0, direct update_model calls:
    no child process, the compiled update from the first update on."""
    monkeypatch.setenv(background.ENV_SWITCH, "0")
    agent = FastSAC(make_env("Pendulum-v1"), 500, 16, initial_random_steps=20,
                    hidden_sizes=(16,), seed=0)
    engine = agent.engine
    engine._training = True
    assert not engine._compiling_elsewhere(True)
    monkeypatch.delenv(background.ENV_SWITCH)
    engine.background = False
    assert not engine._compiling_elsewhere(True)
    engine.background, engine._training = True, False
    assert not engine._compiling_elsewhere(True)
    assert engine.spec not in background._JOBS


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
    monkeypatch.setitem(background._JOBS, agent.engine.spec, job)
    agent.engine._training = True
    with pytest.warns(RuntimeWarning, match="boom: no compiler"):
        assert not agent.engine._compiling_elsewhere(True)  # compiled, here
    assert job.ok is False


def test_the_child_knows_nothing_of_the_agent(tmp_path):
    """The background module runs any ``module:function`` it is given."""
    out = tmp_path / "ran"
    job = background.start(("test", str(out)), "os:mkdir", {"path": str(out)})
    job.proc.wait(timeout=60)
    assert job.done() and job.ok and out.exists()


def test_fast_adam_skips_only_the_disable_dynamo_wrapper():
    """fast.Adam runs torch's own bookkeeping methods, minus the wrapper that imports the
    compiler; a wrapper of any other kind is kept (so a torch that changed them still runs)."""
    import functools

    import torch

    from fastsac import fast

    for name in ("add_param_group", "state_dict", "load_state_dict", "zero_grad"):
        assert getattr(fast.Adam, name) is getattr(torch.optim.Optimizer, name).__wrapped__

    def method(self):
        return 1

    @functools.wraps(method)
    def other(self):
        return method(self)

    assert fast._plain(other) is other and fast._plain(method) is method
