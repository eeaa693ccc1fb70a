"""Peers measured in the same run as ctx_models, when they are installed: sqlite-vec through apsw.

The standard library's sqlite3 here cannot load extensions, so sqlite-vec runs
on apsw's own SQLite (``pip install 'ctx-models[bench]'``). Benchmark-only:
nothing in ctx_models imports this.

The peer stores what a retrieval store needs and no more: a chunks table, an
FTS5 index over the chunk text, and a ``vec0`` table of the vectors keyed by the
chunk's rowid; same rows, same batches, one transaction per batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import core

PEER_SCHEMA = (
    "CREATE TABLE chunks (id TEXT PRIMARY KEY, document_id TEXT NOT NULL, "
    "chunk_index INTEGER NOT NULL, text TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='rowid')",
    "CREATE VIRTUAL TABLE chunk_vectors USING vec0(embedding float[{dims}])",
)


def sqlite_vec_available() -> str | None:
    """The peer's version when apsw and sqlite-vec are installed, else None."""
    try:
        import apsw
        import sqlite_vec
    except ImportError:
        return None
    conn = _connect(":memory:", apsw, sqlite_vec)
    version = conn.execute("SELECT vec_version()").fetchone()[0]
    conn.close()
    return f"sqlite-vec {version} on SQLite {apsw.sqlite_lib_version()}"


def _connect(path: str, apsw: Any, sqlite_vec: Any) -> Any:
    conn = apsw.Connection(path)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.enable_load_extension(False)
    return conn


def load_sqlite_vec(path: Path, batches: list[dict[str, list[tuple]]], dims: int) -> float:
    """Seconds to load the batches' chunks, FTS rows and vectors into a new sqlite-vec database.

    ``batches`` are the floor's prepared rows (core.floor_rows): the peer takes
    the chunks, their text and their vector bytes.
    """
    import apsw
    import sqlite_vec

    conn = _connect(str(core.fresh(path)), apsw, sqlite_vec)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    for statement in PEER_SCHEMA:
        conn.execute(statement.format(dims=dims))
    rowid = 0
    started = time.perf_counter()
    for batch in batches:
        chunks = batch["chunks"]
        first = rowid + 1
        rowid += len(chunks)
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO chunks (rowid, id, document_id, chunk_index, text, hash) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(first + i, *row) for i, row in enumerate(chunks)],
        )
        conn.executemany(
            "INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)",
            [(first + i, row[3]) for i, row in enumerate(chunks)],
        )
        if batch["vectors"]:
            conn.executemany(
                "INSERT INTO chunk_vectors (rowid, embedding) VALUES (?, ?)",
                [(first + i, vector[2]) for i, vector in enumerate(batch["vectors"])],
            )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def copy_vectors_to_sqlite_vec(source: Path, target: Path, dims: int) -> Path:
    """A sqlite-vec database holding ``source``'s vectors (by chunk_vectors rowid); reused when done."""
    import sqlite3

    import apsw
    import sqlite_vec

    marker = target.with_suffix(".done")
    if target.exists() and marker.exists():
        return target
    conn = _connect(str(core.fresh(target)), apsw, sqlite_vec)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        f"CREATE VIRTUAL TABLE chunk_vectors USING vec0(embedding float[{dims}] distance_metric=cosine)"
    )
    reader = sqlite3.connect(source)
    rows = reader.execute(
        "SELECT rowid, embedding FROM chunk_vectors WHERE length(embedding) = ?", (4 * dims,)
    )
    while batch := rows.fetchmany(10_000):
        with conn:
            conn.executemany("INSERT INTO chunk_vectors (rowid, embedding) VALUES (?, ?)", batch)
    reader.close()
    conn.close()
    marker.write_text("ok")
    return target


SQLITE_VEC_COLD = """
import sys, time, numpy as np, apsw, sqlite_vec
q = np.frombuffer(bytes.fromhex(sys.argv[2]), dtype="<f4")
t = time.perf_counter()
conn = apsw.Connection(sys.argv[1], flags=apsw.SQLITE_OPEN_READONLY)
conn.enable_load_extension(True)
conn.load_extension(sqlite_vec.loadable_path())
rows = conn.execute(
    "SELECT rowid, distance FROM chunk_vectors WHERE embedding MATCH ? AND k = 80", (q.tobytes(),)
).fetchall()
print((time.perf_counter() - t) * 1000, len(rows))
"""


def sqlite_vec_cold(path: Path, query: Any, repeat: int) -> list[float]:
    """First top-80 query in a new process (open + query), milliseconds per run."""
    import subprocess
    import sys

    samples = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", SQLITE_VEC_COLD, str(path), query.astype("<f4").tobytes().hex()],
            capture_output=True, text=True, check=True,
        )
        samples.append(float(out.stdout.split()[0]))
    return samples


def sqlite_vec_warm(path: Path, queries: Any, rounds: int) -> list[float]:
    """Top-80 per query on one open connection, milliseconds per query."""
    import apsw
    import sqlite_vec

    conn = _connect(str(path), apsw, sqlite_vec)
    sql = "SELECT rowid, distance FROM chunk_vectors WHERE embedding MATCH ? AND k = 80"
    conn.execute(sql, (queries[0].astype("<f4").tobytes(),)).fetchall()
    samples = []
    for _ in range(rounds):
        for q in queries:
            started = time.perf_counter()
            conn.execute(sql, (q.astype("<f4").tobytes(),)).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
    conn.close()
    return samples
