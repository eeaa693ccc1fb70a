"""Writer process for test_concurrency: rewrites a fixed set of documents, version after version.

    writer.py --db PATH-OR-URL --source S --docs N --first-version A --last-version B [--batch-size K]

Prints ``ready`` once connected, waits for ``go`` on stdin, then for each
version A..B ingests documents 0..N-1 of that version (workload.item) with the
hashing embedder, ``K`` documents per transaction. Ends with one JSON line:
transaction and document counts, 'database is locked' errors and other errors.
Exit status 0 only when nothing failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback

import workload

import ctx_models
from ctx_models import store
from ctx_models.embedders import HashingEmbedder


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--docs", type=int, required=True)
    parser.add_argument("--first-version", type=int, required=True)
    parser.add_argument("--last-version", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    result = {
        "role": "writer",
        "source": args.source,
        "transactions": 0,
        "documents": 0,
        "versions": 0,
        "locked": 0,
        "errors": [],
    }
    try:
        db = ctx_models.connect(args.db, create=False)
        embedder = HashingEmbedder(workload.DIMS)
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
        result["errors"].append(f"connect: {exc!r}")
        print(json.dumps(result), flush=True)
        return 1
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        result["errors"].append("no go signal")
        print(json.dumps(result), flush=True)
        return 1

    def committed(results: list) -> None:
        result["transactions"] += 1
        result["documents"] += len(results)

    for version in range(args.first_version, args.last_version + 1):
        items = [workload.item(args.source, doc, version) for doc in range(args.docs)]
        try:
            store.ingest_many(
                items,
                embedder=embedder,
                max_tokens=workload.MAX_TOKENS,
                batch_size=args.batch_size,
                on_commit=committed,
            )
            result["versions"] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
            if "locked" in str(exc).lower() or "busy" in str(exc).lower():
                result["locked"] += 1
            result["errors"].append(f"version {version}: {exc!r}\n{traceback.format_exc()}")
    db.close()
    print(json.dumps(result), flush=True)
    return 0 if not result["errors"] and not result["locked"] else 1


if __name__ == "__main__":
    sys.exit(main())
