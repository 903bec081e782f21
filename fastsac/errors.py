"""fastsac's own errors. Each is a ``ValueError`` too (bad input is a bad value); the CLI prints
these as one line, and lets every other exception (one raised inside a user's env, say) show
its traceback."""

from __future__ import annotations


class FastSACError(Exception):
    """Something fastsac refuses or detects, with a message that says what to do."""


class ConfigError(FastSACError, ValueError):
    """A setting, an argument or an env that an agent cannot take."""


class CheckpointError(FastSACError, ValueError):
    """A file that is not a checkpoint this fastsac reads, or that does not fit the agent."""


class TrainingDiverged(FastSACError, ValueError):
    """Training produced a non-finite value: ``frame`` is where, ``what`` names the value
    (``qf_loss``, ``reward``, ``a parameter of vf``...)."""

    def __init__(self, frame: int, what: str, value: object, hint: str = ""):
        self.frame, self.what, self.value, self.hint = int(frame), what, value, hint
        message = f"training diverged at frame {frame}: {what} is {value}"
        super().__init__(message + (f"; {hint}" if hint else ""))
