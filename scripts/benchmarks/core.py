"""What every benchmark shares: paths, fresh databases, timing and its summaries, results files,
and the ingest floor (the same rows through bare sqlite3) that several benchmarks measure against.

Imports nothing else of the benchmarks package, so every command module can import it.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import ctx_models
from ctx_models import store
from ctx_models.backends.sqlite.connection import PRAGMAS
from ctx_models.chunking import chunk_text
from ctx_models.embedders import Embedder
from ctx_models.hashing import chunk_hash, dedup_hash

ROOT = Path(__file__).resolve().parents[2]  # the repository: scripts/benchmarks/core.py


DIMS = 384


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def fresh_schema(url: str, schema: str) -> str:
    """``url`` pointed at a new, empty schema of that name (dropped first if it exists)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return schema_url(url, schema)


def schema_url(url: str, schema: str) -> str:
    """``url`` pointed at the schema ``schema`` (its search_path), which must exist."""
    from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"-c search_path={schema},public"
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def raw_connection(path: Path) -> sqlite3.Connection:
    """A bare sqlite3 connection with the same settings ctx_models uses."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    for name, value in PRAGMAS:
        conn.execute(f"PRAGMA {name} = {value}")
    return conn


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {
        "min": min(samples),
        "median": statistics.median(samples),
        "max": max(samples),
        "n": len(samples),
    }


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "n": len(ordered),
    }


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def verdict(value: float, goal: float, lower_is_better: bool = True) -> str:
    met = value <= goal if lower_is_better else value >= goal
    return "met" if met else "NOT met"


def write_results(name: str, data: dict) -> Path:
    out = ROOT / "bench-results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    data["machine"] = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    out.write_text(json.dumps(data, indent=2))
    return out


class LookupEmbedder:
    """Returns precomputed vectors, so the benchmark times the store, not an embedding model."""

    model = "bench-random-384"
    dims = DIMS

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def floor_rows(
    items: list[dict], with_vectors: dict[str, np.ndarray] | None
) -> list[dict[str, list[tuple[Any, ...]]]]:
    """Every row the floor inserts, prepared before the clock starts, in batches of 500 documents."""
    batches = []
    for start in range(0, len(items), 500):
        docs, chunks, fts, embeddings, vectors = [], [], [], [], []
        for item in items[start : start + 500]:
            doc_id = str(uuid.uuid4())
            body = item["body"]
            docs.append(
                (
                    doc_id,
                    item["source"],
                    item["source_id"],
                    None,
                    item["title"],
                    None,
                    item["created_at"],
                    item["updated_at"],
                    "text/plain",
                    body,
                    json.dumps(item["metadata"]),
                    None,
                    dedup_hash(item["source"], item["source_id"], item["updated_at"], body),
                )
            )
            for index, text in enumerate(chunk_text(body)):
                chunk_id = str(uuid.uuid4())
                digest = chunk_hash(text)
                chunks.append((chunk_id, doc_id, index, text, digest))
                fts.append((chunk_id, doc_id, text))
                if with_vectors is not None:
                    embeddings.append((chunk_id, LookupEmbedder.model, DIMS, 0, digest))
                    vectors.append((chunk_id, doc_id, with_vectors[text].astype("<f4").tobytes()))
        batch: dict[str, list[tuple[Any, ...]]] = {
            "docs": docs,
            "chunks": chunks,
            "fts": fts,
            "embeddings": embeddings,
            "vectors": vectors,
        }
        batches.append(batch)
    return batches


def load_floor(path: Path, batches: list[dict[str, list[tuple]]]) -> float:
    conn = raw_connection(fresh(path))
    schema_db = ctx_models.connect(path, bind_models=False)
    ctx_models.run_migrations(schema_db)
    schema_db.close()
    started = time.perf_counter()
    for batch in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", batch["docs"])
        conn.executemany(
            "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES (?,?,?,?,?)",
            batch["chunks"],
        )
        conn.executemany(
            "INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES (?,?,?)", batch["fts"]
        )
        if batch["vectors"]:
            conn.executemany("INSERT INTO embeddings VALUES (?,?,?,?,?)", batch["embeddings"])
            conn.executemany("INSERT INTO chunk_vectors VALUES (?,?,?)", batch["vectors"])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def load_ours(path: Path, items: list[dict], embedder: Embedder | None) -> float:
    db = ctx_models.connect(fresh(path))
    ctx_models.run_migrations(db)
    started = time.perf_counter()
    summary_ = store.ingest_many(items, embedder=embedder, batch_size=500)
    elapsed = time.perf_counter() - started
    assert summary_.created == len(items)
    db.close()
    return elapsed
