"""Running a compile in a background process, so a training run never waits on the compiler.

``start(key, "module:function", kwargs)`` runs ``function(**kwargs)`` once per ``key`` in a child
process at idle priority (nice 19) and reports when it is done; it knows nothing of what is
compiled. FastSAC uses it to fill torch.compile's on-disk caches (inductor's FX graph and
kernel caches, AOTAutograd's) with its update (``fastsac.engine.warm_compile``) while it learns
with the same update run eagerly; once the child is done, the training process compiles the
update again, from the caches. With a spare core the compiler runs there; on a busy machine it
takes only idle time, and the run stays on the eager update until it is done.

Run as ``python -m fastsac.background_compile``, it reads one pickled request from stdin.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Hashable
from typing import Any

ENV_SWITCH = "FASTSAC_BACKGROUND_COMPILE"  # =0: no child processes


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


class Job:
    """One child process running one request."""

    def __init__(self, target: str, kwargs: dict[str, Any]):
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "fastsac.background_compile"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=self._log)
        try:  # from here, not a preexec_fn in the child: unsafe in a process with threads
            os.setpriority(os.PRIO_PROCESS, self.proc.pid, 19)
        except (AttributeError, OSError):
            pass
        try:
            self.proc.stdin.write(pickle.dumps((target, kwargs)))
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; done() reports its error
        self.ok: bool | None = None  # None while it runs

    def done(self) -> bool:
        """Whether the child has finished; a failure is reported once, as a warning (the work
        is then done in the training process)."""
        if self.ok is not None:
            return True
        code = self.proc.poll()
        if code is None:
            return False
        self.ok = code == 0
        if not self.ok:
            self._log.seek(0)
            tail = self._log.read().decode(errors="replace")[-2000:]
            warnings.warn(f"fastsac: the background compile failed (exit code {code}); it "
                          f"compiles in this process instead.\n{tail}", RuntimeWarning,
                          stacklevel=3)
        self._log.close()
        return True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_JOBS: dict[Hashable, Job | None] = {}


def start(key: Hashable, target: str, kwargs: dict[str, Any]) -> Job | None:
    """The job of ``key`` (started at the first call); None where no child can start."""
    if key not in _JOBS:
        try:
            _JOBS[key] = Job(target, kwargs)
        except OSError as exc:
            warnings.warn(f"fastsac: no background compile ({exc}); compiling in this process",
                          RuntimeWarning, stacklevel=3)
            _JOBS[key] = None
    return _JOBS[key]


@atexit.register
def _stop_all() -> None:
    """A child outliving its training process would only burn CPU."""
    for job in _JOBS.values():
        if job is not None:
            job.stop()


def _run(target: str, kwargs: dict[str, Any]) -> None:
    module, function = target.split(":")
    getattr(importlib.import_module(module), function)(**kwargs)


if __name__ == "__main__":
    _run(*pickle.loads(sys.stdin.buffer.read()))
