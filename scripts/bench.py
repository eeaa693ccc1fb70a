#!/usr/bin/env python3
"""Speed of ctx_models against a baseline measured in the same run; prints ratios, writes JSON.

    python scripts/bench.py ingest [--docs 10000]
    python scripts/bench.py search [--large] [--text DIR]
    python scripts/bench.py sync [--files 10000]
    python scripts/bench.py backends --db URL [--chunks 100000]
    python scripts/bench.py quality [--data DIR] [--db URL] [--embedder NAME] [--model-path DIR]
    python scripts/bench.py embed [--model NAME] [--model-path DIR] [--texts N]
    python scripts/bench.py serve [--chunks 100000]

Each command is one module of ``scripts/benchmarks/`` whose docstring says what it
measures and against what: ``ingest`` (bulk load against sqlite3 ``executemany`` and
sqlite-vec), ``search`` (vector, keyword and hybrid search; ``keyword.py`` for English
text), ``sync`` (a folder against ``ingest_many``), ``backends`` (PostgreSQL beside
SQLite), ``quality`` (nDCG@10 and Recall@100), ``embed`` (a transformer model's
chunks/s and latency), ``serve`` (search through ``ctx-models serve --http`` and MCP).
What they share is in ``core.py`` and ``corpora.py``; this file only dispatches.

Goals are printed beside the numbers. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import sys

# scripts/ is on sys.path when this file is run, so the package beside it imports.
from benchmarks import backends, embed, ingest, quality, search, serve, sync
from benchmarks.core import ROOT


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        default=str(ROOT / "bench-results" / "data"),
        help="where benchmark databases go",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module, run, help_ in (
        ("ingest", ingest, ingest.bench_ingest, "bulk load vs sqlite3 executemany"),
        ("sync", sync, sync.bench_sync, "ctx-models sync of a folder vs ingest_many"),
        ("search", search, search.bench_search, "vector, keyword and hybrid search"),
        ("quality", quality, quality.bench_quality,
         "nDCG@10 and Recall@100, BEIR data or the demo"),
        ("embed", embed, embed.bench_embed, "embedding chunks/s and one question's latency"),
        ("backends", backends, backends.bench_backends,
         "PostgreSQL beside SQLite: ingest and search"),
        ("serve", serve, serve.bench_serve, "search latency through ctx-models serve --http"),
    ):
        p = commands.add_parser(name, help=help_)
        module.add_arguments(p)
        p.set_defaults(run=run)
    args = parser.parse_args()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
