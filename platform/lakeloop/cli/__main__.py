"""``python -m lakeloop.cli``: the same command line as ``lakeloop``."""

import sys

from lakeloop.cli.commands import main

sys.exit(main())
