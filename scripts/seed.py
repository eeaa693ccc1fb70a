#!/usr/bin/env python3
"""Fill a ctx database with the demo corpus: `ctx-models seed`, kept here for habit's sake.

    python scripts/seed.py                      # .ctx/data/ctx.sqlite
    python scripts/seed.py --db /tmp/demo.sqlite --docs 10000

Takes the options of `ctx-models seed` (see `ctx-models seed --help`).
"""

from __future__ import annotations

import sys

from ctx_models.cli import main

if __name__ == "__main__":
    sys.exit(main(["seed", *sys.argv[1:]]))
