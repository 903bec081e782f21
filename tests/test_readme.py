"""Every Python snippet of the README runs as written (each in a fresh process, in a scratch
folder), and the CLI lines it shows are commands the CLI takes."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from fastsac import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path):
    done = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-3000:]


def test_readme_command_lines_parse():
    block = re.search(r"## On the command line\n\n```bash\n(.*?)```", README, flags=re.S)
    for line in block.group(1).strip().splitlines():
        argv = shlex.split(line.split("  #")[0])[1:]
        if argv[0] == "train":
            args = _parser().parse_args(argv)
            assert args.command == "train"


def _parser():
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli._add_train(sub)
    return parser
