"""``python -m ctx_models``: the same command line as ``ctx-models``."""

import sys

from .cli import main

sys.exit(main())
