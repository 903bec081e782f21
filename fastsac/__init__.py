"""fastsac: a fast, verified Soft Actor-Critic for PyTorch.

``FastSAC`` is a drop-in replacement for the SAC notebook's ``SACAgent``; ``fastsac.reference``
keeps the eager reference it is checked against.
"""

from fastsac import ops
from fastsac.agent import FastSAC
from fastsac.buffer import ReplayBuffer
from fastsac.envs import ActionNormalizer, make_env
from fastsac.reference import SACAgent

__all__ = ["FastSAC", "SACAgent", "ReplayBuffer", "ActionNormalizer", "make_env", "ops"]
__version__ = "0.1.0"
