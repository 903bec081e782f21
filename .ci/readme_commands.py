"""Print a command of README.md's Quickstart block: `main` (the first) or `test` (the second).

CI runs the printed test command, so the README and CI cannot drift apart.
"""

import re
import sys
from pathlib import Path


def quickstart_commands(readme: str) -> list[str]:
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, flags=re.S)
    if len(blocks) != 1:
        raise SystemExit(f"README Quickstart must hold one fenced block, found {len(blocks)}")
    commands = [line for line in blocks[0].splitlines() if line.strip()]
    if len(commands) != 2:
        raise SystemExit(f"README Quickstart block must hold two commands, found {len(commands)}")
    return commands


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "test"
    main, test = quickstart_commands(Path(__file__).parent.parent.joinpath("README.md").read_text())
    print(main if which == "main" else test)
