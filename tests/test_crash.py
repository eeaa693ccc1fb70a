"""Crash safety: SIGKILL a loader at random moments during store.ingest_many, many times over.

Each iteration starts tests/workers/crash_loader.py at the load position the
previous runs reported as committed, lets it run for a random while, kills it
with SIGKILL and then checks the file: integrity.check is clean, every
document reported committed is there, and every document that is there is
whole (its chunks are chunk_text of its body, each with its FTS row, embedding
and vector). The assertions hold wherever the kill lands; the random delays
only vary where that is. Half the iterations wait for a first commit before
the delay, so the load is guaranteed to progress.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ctx_models
from ctx_models import integrity, search
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
WORKERS = Path(__file__).resolve().parent / "workers"
sys.path.insert(0, str(WORKERS))

import workload  # noqa: E402 (found through the sys.path entry above)

pytestmark = pytest.mark.slow

ITERATIONS = 24
DOCS = 20
BATCH = 5  # crash_loader's batch size: at most one batch is committed but not yet reported
SOURCE = "crash"
HANG_GUARD = 60


def _item_version(k: int) -> int:
    return k // DOCS


def _version_bounds(doc: int, reported: int) -> tuple[int | None, int | None]:
    """(lowest, highest) version ``doc`` may have after ``reported`` items were reported committed.

    lowest: the version of the last reported item of this document (None if none was reported).
    highest: the version of its last item among the ones that can have committed (reported + one batch).
    """
    done = [k for k in range(doc, reported, DOCS)]
    maybe = [k for k in range(doc, reported + BATCH, DOCS)]
    return (_item_version(done[-1]) if done else None, _item_version(maybe[-1]) if maybe else None)


def _verify(path: Path, reported: int, embedder: HashingEmbedder) -> int:
    """Check the database after a kill; returns the number of documents present."""
    db = ctx_models.connect(path, create=False)
    try:
        report = integrity.check(db)
        assert report.clean, (report.quick_check, report.findings)
        docs = db.execute_sql(
            "SELECT id, source, source_id, body, updated_at, metadata_json FROM documents"
        ).fetchall()
        present = {}
        for doc_id, source, source_id, body, updated_at, metadata_json in docs:
            assert source == SOURCE and source_id.startswith("doc"), source_id
            doc = int(source_id[3:])
            version = workload.version_of(body)
            assert version is not None and body == workload.body(doc, version), (
                f"{source_id}: body is not a load item"
            )
            assert updated_at == workload.item(SOURCE, doc, version)["updated_at"]
            assert f'"version":{version}' in metadata_json
            low, high = _version_bounds(doc, reported)
            assert high is not None and version <= high, (
                f"{source_id} v{version}: never written before the kill"
            )
            assert low is None or version >= low, (
                f"{source_id}: reported v{low} committed, found v{version}"
            )
            present[doc] = version

            chunks = db.execute_sql(
                "SELECT id, chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index",
                (doc_id,),
            ).fetchall()
            assert [c[1] for c in chunks] == list(range(len(chunks)))
            assert [c[2] for c in chunks] == chunk_text(body, workload.MAX_TOKENS), (
                f"{source_id}: half-written"
            )
            fts = db.execute_sql(
                "SELECT chunk_id, text FROM chunks_fts WHERE document_id = ?", (doc_id,)
            ).fetchall()
            assert sorted(fts) == sorted((c[0], c[2]) for c in chunks), (
                f"{source_id}: FTS rows differ"
            )
            vectors = dict(
                db.execute_sql(
                    "SELECT v.chunk_id, v.embedding FROM chunk_vectors AS v JOIN embeddings AS e "
                    "ON e.chunk_id = v.chunk_id AND e.model = ? AND e.dims = ? WHERE v.document_id = ?",
                    (embedder.model, embedder.dims, doc_id),
                ).fetchall()
            )
            expected = embedder.embed([c[2] for c in chunks]).astype("<f4")
            assert set(vectors) == {c[0] for c in chunks}, f"{source_id}: vectors missing or extra"
            for (chunk_id, *_), row in zip(chunks, expected):
                assert bytes(vectors[chunk_id]) == row.tobytes()
        # Every document reported committed is present.
        for doc in range(DOCS):
            low, _ = _version_bounds(doc, reported)
            if low is not None:
                assert doc in present, f"doc{doc:03d} was reported committed but is missing"
        # The FTS index answers for a present document.
        if present:
            doc = min(present)
            hits = search.keyword_search(f"doc{doc:03d} v{present[doc]:04d}", limit=50, match="all")
            assert len(hits) == workload.paragraph_count(doc, present[doc])
        return len(present)
    finally:
        db.close()


def test_sigkill_during_ingest_many(tmp_path: Path) -> None:
    seed = int(os.environ.get("CTX_CRASH_SEED", str(time.time_ns() % 2**32)))
    rng = random.Random(seed)
    path = tmp_path / "crash.sqlite"
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    db.close()
    embedder = HashingEmbedder(workload.DIMS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKERS)])}

    reported = 0
    kills_before_first_commit = 0
    for iteration in range(ITERATIONS):
        with (tmp_path / f"loader{iteration}.err").open("w") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(WORKERS / "crash_loader.py"),
                    "--db",
                    str(path),
                    "--source",
                    SOURCE,
                    "--docs",
                    str(DOCS),
                    "--start",
                    str(reported),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
            try:
                assert proc.stdout is not None
                lines = [proc.stdout.readline()]
                assert lines[0] == "ready\n", (
                    lines,
                    (tmp_path / f"loader{iteration}.err").read_text(),
                )
                if iteration % 2:
                    lines.append(
                        proc.stdout.readline()
                    )  # wait for one commit: the load must progress
                    assert lines[-1].startswith("C "), lines
                time.sleep(
                    rng.uniform(0.0, 0.2)
                )  # where the kill lands; no assertion depends on it
                proc.send_signal(signal.SIGKILL)
                rest, _ = proc.communicate(timeout=HANG_GUARD)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert proc.returncode == -signal.SIGKILL, (
            proc.returncode,
            (tmp_path / f"loader{iteration}.err").read_text(),
        )
        lines += rest.splitlines(keepends=True)
        counts = [
            int(line.split()[1]) for line in lines if line.startswith("C ") and line.endswith("\n")
        ]
        assert counts == sorted(counts) and all(c % BATCH == 0 for c in counts)
        if counts:
            assert counts[0] > reported
            reported = counts[-1]
        else:
            kills_before_first_commit += 1
        present = _verify(path, reported, embedder)
        print(
            f"iteration {iteration}: {reported} load items reported committed, {present} documents present"
        )

    print(
        f"\n{ITERATIONS} kills (seed {seed}), {reported} load items committed, "
        f"{kills_before_first_commit} kills before the first commit of their run"
    )
    assert reported >= ITERATIONS // 2 * BATCH
