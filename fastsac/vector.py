"""Which rows of a vector env's step are real transitions, under gymnasium's autoreset modes.

A gymnasium 1.x ``VectorEnv`` resets finished episodes by itself, in one of two ways:

- ``NEXT_STEP`` (the default): the step that ends an episode returns its final observation; the
  env's NEXT step ignores the action and returns the reset observation with reward 0 and no
  termination. That row spans two episodes and is not a transition: it is never stored, and no
  action is drawn for it.
- ``SAME_STEP``: the step that ends an episode returns the reset observation, and the final one
  in ``info["final_obs"]``. The transition's ``next_obs`` is that final observation.

Either way a terminated episode stores ``done = 1`` and a truncated one ``done = 0`` (a time
limit is not a terminal state: its true final observation is bootstrapped from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from fastsac.envs import autoreset_mode


@dataclass
class Transitions:
    """The real transitions of one vector step, one row per env in ``rows``."""

    rows: np.ndarray  # indices of the envs whose step was a transition
    obs: np.ndarray
    acts: np.ndarray
    rews: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    ended: np.ndarray  # of those rows: the episode ended (terminated or truncated)


class VectorSteps:
    """Bookkeeping of one vector env: which envs are resetting, what each step stored."""

    def __init__(self, env: VectorEnv):
        self.mode = autoreset_mode(env)
        self.num_envs = int(env.num_envs)
        self._all = np.arange(self.num_envs)
        self.restart()

    def restart(self) -> None:
        """After ``env.reset()``: every env starts an episode."""
        self.resetting = np.zeros(self.num_envs, dtype=bool)

    @property
    def acting(self) -> np.ndarray:
        """Envs whose next step is a transition (under NEXT_STEP, not those about to reset)."""
        return ~self.resetting

    def transitions(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                    next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                    info: dict) -> Transitions:
        """The transitions of the step from ``obs`` with ``actions`` that returned the rest;
        updates which envs reset at the next step."""
        terminated = np.asarray(terminated, dtype=bool)
        ended = terminated | np.asarray(truncated, dtype=bool)
        if self.mode == AutoresetMode.NEXT_STEP:
            rows = self._all[~self.resetting]
            self.resetting = ended
            true_next = next_obs
        else:  # SAME_STEP: next_obs of an ended episode is the reset one; the final is in info
            rows = self._all
            true_next = next_obs
            if ended.any():
                true_next = np.array(next_obs, copy=True)
                finals, has_final = info["final_obs"], info["_final_obs"]
                for i in np.flatnonzero(ended & has_final):
                    true_next[i] = finals[i]
        return Transitions(rows=rows, obs=obs[rows], acts=actions[rows],
                           rews=np.asarray(rewards)[rows], next_obs=true_next[rows],
                           terminated=terminated[rows], ended=ended[rows])
