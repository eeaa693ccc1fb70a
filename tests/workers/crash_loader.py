"""Loader process for test_crash: ingests an endless load until it is killed.

    crash_loader.py --db PATH --source S --docs D --start K

Load item k (k = K, K+1, ...) is document k % D at version k // D
(workload.item), so the load keeps rewriting D documents with new chunks and
vectors. ingest_many commits 5 documents per transaction; after each commit
the on_commit callback prints ``C n`` (n = how many load items are committed
so far, counting from 0) and flushes, so the parent knows what was committed
before it sent SIGKILL. Prints ``ready`` once connected.
"""

from __future__ import annotations

import argparse
import sys

import workload

import ctx_models
from ctx_models import store
from ctx_models.embedders import HashingEmbedder

BATCH_SIZE = 5
LOAD_LENGTH = 1_000_000  # far more than fits before the kill


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--docs", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    args = parser.parse_args()

    ctx_models.connect(args.db, create=False)
    embedder = HashingEmbedder(workload.DIMS)
    committed = args.start

    def on_commit(results: list) -> None:
        nonlocal committed
        committed += len(results)
        sys.stdout.write(f"C {committed}\n")
        sys.stdout.flush()

    items = (
        workload.item(args.source, k % args.docs, k // args.docs)
        for k in range(args.start, args.start + LOAD_LENGTH)
    )
    print("ready", flush=True)
    store.ingest_many(
        items,
        embedder=embedder,
        max_tokens=workload.MAX_TOKENS,
        batch_size=BATCH_SIZE,
        on_commit=on_commit,
    )
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
