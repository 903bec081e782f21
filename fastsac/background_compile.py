"""Building a compiled update in a background process, so a training run never waits on the
compiler.

With empty caches, compiling the update's two graphs (policy step or not) takes long
(docs/design.md, "Cold start"; BENCHMARKS.md has the times). ``FastSAC.train`` therefore
starts a child process that compiles them on zero tensors of the right shapes, at idle
priority (nice 19), and learns meanwhile with the same update built ahead of time as one C++
op (``fastsac.native_update``; they agree to rounding). The child
fills torch.compile's on-disk caches (inductor's FX graph and kernel caches, AOTAutograd's);
once it is done, the training process switches to the compiled update, which then loads from
those caches instead of compiling. With a spare core the compiler runs there; on a busy machine
it only takes the idle time, so a short run is never slower than the bridge.

Run as ``python -m fastsac.background_compile``, it reads one pickled request from stdin.
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

# off switch, for machines where a child process is unwelcome
ENV_SWITCH = "FASTSAC_BACKGROUND_COMPILE"
# wall seconds a training run learns on the eager Python bridge (no C++ op) before it stops
# waiting for a child that a busy machine leaves no idle time, and compiles in its own process
PATIENCE_S = 180.0


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


class Job:
    """One child process compiling one update configuration."""

    def __init__(self, request: dict[str, Any]):
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastsac.background_compile"], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=self._log)
        _idle_priority(self.proc.pid)
        try:
            self.proc.stdin.write(pickle.dumps(request))
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; done() reports its error
        self.ok: bool | None = None  # None while it runs
        self.started = time.perf_counter()

    def done(self) -> bool:
        """Whether the child has finished (a failure is reported once, as a warning: the agent
        then compiles in its own process, as without a background job)."""
        if self.ok is not None:
            return True
        code = self.proc.poll()
        if code is None:
            return False
        self.ok = code == 0
        if not self.ok:
            self._log.seek(0)
            tail = self._log.read().decode(errors="replace")[-2000:]
            warnings.warn(f"fastsac: the background compile failed (exit code {code}); the "
                          f"update compiles in this process instead.\n{tail}", RuntimeWarning,
                          stacklevel=3)
        self._log.close()
        return True

    def waited(self) -> float:
        """Seconds since the child started."""
        return time.perf_counter() - self.started

    def give_up(self) -> None:
        """Stop the child; the update compiles in the training process."""
        self.stop()
        self.ok = False
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_JOBS: dict[Any, Job | None] = {}


def start(key: Any, request: dict[str, Any]) -> Job | None:
    """The job compiling ``request`` (one per configuration ``key``, started at the first call);
    ``None`` where no child process can start (the update then compiles in this process)."""
    if key not in _JOBS:
        try:
            _JOBS[key] = Job(request)
        except OSError as exc:
            warnings.warn(f"fastsac: no background compile ({exc}); the update compiles in "
                          "this process", RuntimeWarning, stacklevel=3)
            _JOBS[key] = None
    return _JOBS[key]


@atexit.register
def _stop_all() -> None:
    """A child outliving its training process would only burn CPU: stop it."""
    for job in _JOBS.values():
        if job is not None:
            job.stop()


def _idle_priority(pid: int) -> None:
    """Nice 19 for the child, set from here: a ``preexec_fn`` doing it in the child is unsafe
    in a process with threads (torch's, tqdm's), which this one has."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, 19)
    except (AttributeError, OSError):  # no setpriority here, or the child already exited
        pass


def _compile(request: dict[str, Any]) -> None:
    """Build an agent of the requested configuration on a stand-in env and run its compiled
    update once per graph (policy step or not), on zero batches."""
    import numpy as np
    import torch

    from fastsac.agent import FastSAC

    torch.set_num_threads(request.pop("num_threads"))
    obs_dim, action_dim = request.pop("obs_dim"), request.pop("action_dim")
    batch_size = request.pop("batch_size")
    agent = FastSAC(_stand_in_env(obs_dim, action_dim), batch_size, batch_size, compile=True,
                    background_compile=False, **request)
    batch = {"obs": np.zeros((batch_size, obs_dim)), "next_obs": np.zeros((batch_size, obs_dim)),
             "acts": np.zeros((batch_size, action_dim)), "rews": np.zeros(batch_size),
             "done": np.zeros(batch_size)}
    noise = torch.zeros((batch_size, action_dim))
    for policy_step in (False, True):
        agent.update_model(batch, noise, policy_step=policy_step)


def _stand_in_env(obs_dim: int, action_dim: int):
    """An env with the training env's spaces: all an agent needs to be built."""
    import gymnasium as gym
    import numpy as np

    class StandIn(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    return StandIn()


if __name__ == "__main__":
    _compile(pickle.loads(sys.stdin.buffer.read()))
