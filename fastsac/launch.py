"""``fastsac train --nproc N``: the one-machine shortcut for
``torchrun --standalone --nproc-per-node N -m fastsac train ...`` (docs/design.md,
"Data-parallel training")."""

from __future__ import annotations

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
    """Launch the ranks through torchrun's own entry point, in this process, and wait; torchrun
    stops the other ranks when one fails. Returns 0, or the exit status of the rank that
    failed first (3: training diverged, 4: a rank lost the others; see ``fastsac train``)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    command = torchrun_command(nproc, argv)
    try:
        run(get_args_parser().parse_args(command[3:]))  # after "python -m torch.distributed.run"
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0
