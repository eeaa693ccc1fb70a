#!/usr/bin/env python3
"""Speed of ctx_models against a baseline measured in the same run; prints ratios, writes JSON.

    python scripts/bench.py ingest [--docs 10000]
    python scripts/bench.py search [--large] [--text DIR]
    python scripts/bench.py sync [--files 10000]
    python scripts/bench.py backends --db URL [--chunks 100000]
    python scripts/bench.py quality [--data DIR] [--db URL] [--embedder NAME] [--model-path DIR]
    python scripts/bench.py embed [--model NAME] [--model-path DIR] [--texts N]
    python scripts/bench.py serve [--chunks 100000]

``ingest``: 10,000 synthetic documents x 10 chunks through ``store.ingest_many``,
first without vectors, then with 384-dim vectors; the floor loads the same
rows with the standard library's ``sqlite3.executemany`` into a fresh database
with the same schema and settings; sqlite-vec (through apsw, the ``bench``
extra) loads the same rows into a chunks table, an FTS5 index and a vec0 table.

``search``: corpora of 5,000 and 100,000 chunks x 384 dims (and 1,000,000 with
``--large``): vector search warm against a bare ``matrix @ q`` + ``argpartition``,
against a per-query scan done the ``ctx`` tool's way, and cold (open + first
query in a new process); the peak memory of the index build in a new process
against the matrix; sqlite-vec's vec0 warm and cold beside it when installed;
keyword search against the same SQL through bare ``sqlite3``; hybrid search
p50.

``sync``: a folder of 10,000 Markdown files of about 2 KB synced with the
hashing embedder (384 dims), against ``store.ingest_many`` of the same
documents already read into memory (the floor); then a second sync that finds
nothing changed.

``backends`` (``benchmarks/backends.py``): PostgreSQL beside SQLite on one corpus of
100,000 one-chunk English documents with vectors: ingest against a floor on
each (sqlite3 ``executemany``; psycopg COPY), exact and HNSW vector top-80
with HNSW's recall, the in-memory alternative to pgvector's scan, keyword
p50/p95 and hybrid p50, in one table.

``quality`` (``benchmarks/quality.py``): nDCG@10 and Recall@100 on a BEIR collection.

``embed`` (``benchmarks/embed.py``): embedding throughput (chunks/s) and one
question's latency for a transformer model, beside sentence-transformers on
torch when installed.

``serve``: ``ctx-models serve --http`` on the ``search`` corpus (100,000 chunks
by default): p50/p95 of a keyword and a hybrid ``search`` through ctx's route
``POST /tools/search`` and through MCP (``tools/call`` with the SDK's client),
against the same call in-process; and the first call's latency after start.

Each command is a module of ``scripts/benchmarks/``; this file only dispatches.
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
