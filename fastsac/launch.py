"""``fastsac train --nproc N``: the one-machine shortcut for
``torchrun --standalone --nproc-per-node N -m fastsac train ...`` (docs/design.md,
"Data-parallel training")."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The torchrun command that runs ``fastsac <argv>`` as ``nproc`` ranks on this machine
    (without ``--nproc``: the ranks take the world size from torchrun, and torchrun's own
    parser would read it as an abbreviation of its ``--nproc-per-node``)."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), "-m", "fastsac", *rest]


def run_under_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Launch the ranks and wait; torchrun stops the others when one fails. Returns the exit
    status (that of the first failed rank's, as torchrun reports it)."""
    return subprocess.call(torchrun_command(nproc, argv))
