"""``python -m fastsac`` (and ``torchrun ... -m fastsac train``): the command line."""

import sys

from fastsac.cli import main

sys.exit(main())
