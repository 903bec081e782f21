"""``python -m fastsac`` (and ``torchrun ... -m fastsac train``): the command line."""

from fastsac.cli import entry_point

entry_point()
