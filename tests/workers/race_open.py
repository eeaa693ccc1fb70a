"""Worker for test_concurrency: several processes create and write one new database file at once.

    race_open.py --rounds R --procs P --dir DIR

Each round forks P processes that wait on a barrier, then each opens the same
new file with ctx_models.connect, runs run_migrations and ingests a document
of its own (source p0, p1, ...). Afterwards this process checks, with plain
sqlite3, that every document is there with its chunk and FTS row. Prints one
JSON line: rounds, failures (first few messages), 'locked' count, documents
found. Exit status 0 only when nothing failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import sys

import ctx_models
from ctx_models import store


def child(path: str, number: int, barrier, results) -> None:
    barrier.wait()
    try:
        db = ctx_models.connect(path)
        ctx_models.run_migrations(db)
        store.ingest(f"p{number}", "doc", f"written by process {number}")
        db.close()
        results.put((number, None))
    except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
        results.put((number, f"{type(exc).__name__}: {exc}"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--procs", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    fork = mp.get_context("fork")
    report = {"rounds": 0, "processes": 0, "documents": 0, "locked": 0, "failures": []}
    for round_ in range(args.rounds):
        path = os.path.join(args.dir, f"round{round_}", "new.sqlite")
        barrier, results = fork.Barrier(args.procs), fork.Queue()
        procs = [
            fork.Process(target=child, args=(path, n, barrier, results)) for n in range(args.procs)
        ]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=120)
        report["processes"] += len(procs)
        for number, error in outcomes:
            if error:
                report["locked"] += "locked" in error.lower() or "busy" in error.lower()
                report["failures"].append(f"round {round_} process {number}: {error}")
        conn = sqlite3.connect(path)
        try:
            rows = conn.execute(
                "SELECT d.source, c.text, f.text FROM documents AS d JOIN chunks AS c ON c.document_id = d.id "
                "LEFT JOIN chunks_fts AS f ON f.chunk_id = c.id"
            ).fetchall()
        finally:
            conn.close()
        expected = {(f"p{n}", f"written by process {n}") for n, error in outcomes if not error}
        found = {(source, text) for source, text, fts_text in rows if fts_text == text}
        if found != expected or len(rows) != len(expected):
            report["failures"].append(
                f"round {round_}: documents {sorted(found)} != {sorted(expected)}"
            )
        report["documents"] += len(found)
        report["rounds"] += 1
    report["failures"] = report["failures"][:5]
    print(json.dumps(report), flush=True)
    return 0 if not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
