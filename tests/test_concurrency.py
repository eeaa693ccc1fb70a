"""Concurrency: one writer and four readers on one database, and two writers at once.

The writer/reader scenarios run on both backends: a SQLite file, or the test's
PostgreSQL schema (its URL, with the schema in the search_path, is what the
workers are given). Several processes creating one new SQLite file at once is
SQLite's alone (PostgreSQL's analogue, migrations racing on an empty schema,
is in test_postgres).

Workers are separate processes (tests/workers/writer.py, reader.py) that talk
to this test through pipes: each prints ``ready`` once connected and waits for
``go``; readers print ``first`` after their first operation, and only then is
the writer let go, so every reader has seen the database before the writer
changed it. After the writer exits, each reader gets ``final V`` and must see
version V through vector, keyword and hybrid search. Nothing here depends on
timing: operation counts are fixed, and the waits below only guard against a
hung worker.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import ctx_models
from ctx_models import integrity, store
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder
from ctx_models.models import ChunkVector

ROOT = Path(__file__).resolve().parent.parent
WORKERS = Path(__file__).resolve().parent / "workers"
sys.path.insert(0, str(WORKERS))

import workload  # noqa: E402 (found through the sys.path entry above)

pytestmark = pytest.mark.slow
BOTH = pytest.mark.backends("sqlite", "postgres")

HANG_GUARD = 120  # seconds; only to fail instead of hanging if a worker is stuck
DOCS = 12
VERSIONS = 30
READERS = 4
READER_OPS = 150


class Worker:
    """A worker process with a line queue fed by a thread reading its stdout."""

    def __init__(self, script: str, args: list[str], stderr_path: Path) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKERS)])}
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKERS / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, word: str) -> None:
        try:
            line = self.lines.get(timeout=HANG_GUARD)
        except queue.Empty:
            self.proc.kill()
            pytest.fail(
                f"worker hung waiting for {word!r}; stderr: {self.stderr_path.read_text()[-2000:]}"
            )
        assert line == word, (
            f"expected {word!r} from worker, got {line!r}; stderr: {self.stderr_path.read_text()[-3000:]}"
        )

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def result(self) -> tuple[int, dict]:
        """Wait for the exit; returns the exit code and the final JSON line."""
        try:
            code = self.proc.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"worker did not finish; stderr: {self.stderr_path.read_text()[-2000:]}")
        self._stderr.close()
        lines = []
        while (line := self.lines.get(timeout=HANG_GUARD)) is not None:
            lines.append(line)
        assert lines, f"worker printed nothing; stderr: {self.stderr_path.read_text()[-3000:]}"
        return code, json.loads(lines[-1])


def _load_version(location: Path | str, source: str, docs: int, version: int) -> None:
    db = ctx_models.connect(location)
    ctx_models.run_migrations(db)
    if docs:
        store.ingest_many(
            [workload.item(source, d, version) for d in range(docs)],
            embedder=HashingEmbedder(workload.DIMS),
            max_tokens=workload.MAX_TOKENS,
        )
    db.close()


def _assert_documents_at(location: Path | str, source: str, docs: int, version: int) -> None:
    """Every document of ``source`` is at ``version``, with its chunks, FTS rows and vectors."""
    db = ctx_models.connect(location, create=False)
    try:
        embedder = HashingEmbedder(workload.DIMS)
        for doc in range(docs):
            found = store.get_document_by_source(source, f"doc{doc:03d}")
            assert found is not None, f"{source}:doc{doc:03d} is missing"
            assert found.body == workload.body(doc, version)
            texts = [c.text for c in found.chunks]
            assert texts == chunk_text(found.body, workload.MAX_TOKENS)
            for chunk in found.chunks:
                fts = db.execute_sql(
                    f"SELECT text FROM chunks_fts WHERE chunk_id = {db.param}", (chunk.id,)
                ).fetchall()
                assert fts == [(chunk.text,)]
                stored = db.execute_sql(
                    f"SELECT embedding FROM chunk_vectors WHERE chunk_id = {db.param}", (chunk.id,)
                ).fetchone()
                assert stored is not None
                vector = ChunkVector.embedding.python_value(stored[0])
                assert (
                    vector.astype("<f4").tobytes()
                    == embedder.embed([chunk.text])[0].astype("<f4").tobytes()
                )
        report = integrity.check(db)
        assert report.clean, report.findings
    finally:
        db.close()


@BOTH
def test_one_writer_four_readers(location: Path | str, backend: str, tmp_path: Path) -> None:
    path = str(location)
    _load_version(location, "conc", DOCS, 0)

    writer = Worker(
        "writer.py",
        [
            "--db",
            str(path),
            "--source",
            "conc",
            "--docs",
            str(DOCS),
            "--first-version",
            "1",
            "--last-version",
            str(VERSIONS),
            "--batch-size",
            "4",
        ],
        tmp_path / "writer.err",
    )
    readers = [
        Worker(
            "reader.py",
            [
                "--db",
                str(path),
                "--source",
                "conc",
                "--docs",
                str(DOCS),
                "--ops",
                str(READER_OPS),
                "--seed",
                str(n),
            ],
            tmp_path / f"reader{n}.err",
        )
        for n in range(READERS)
    ]
    for worker in [writer, *readers]:
        worker.expect("ready")
    for reader in readers:
        reader.send("go")
    for reader in readers:
        reader.expect("first")  # each reader has searched version 0 before any write
    writer.send("go")
    writer_code, writer_result = writer.result()
    for reader in readers:
        reader.send(f"final {VERSIONS}")
    reader_results = [reader.result() for reader in readers]

    print(
        f"\nwriter: {writer_result['transactions']} transactions, {writer_result['documents']} documents, "
        f"{writer_result['versions']} versions"
    )
    for n, (_, r) in enumerate(reader_results):
        print(
            f"reader {n}: {r['ops']} operations {r['by_kind']}, {r['documents_checked']} document checks, "
            f"versions seen {len(r['versions_seen'])} (vector search: {len(r['vector_versions_seen'])}), "
            f"vector index builds {r['index_builds']}"
        )

    assert writer_result["locked"] == 0 and all(r["locked"] == 0 for _, r in reader_results), (
        "database is locked"
    )
    assert writer_code == 0, writer_result["errors"]
    assert writer_result["versions"] == VERSIONS
    assert writer_result["documents"] == DOCS * VERSIONS
    for code, r in reader_results:
        assert r["violations"] == [], r["violations"]
        assert r["errors"] == [], r["errors"]
        assert code == 0
        assert r["ops"] == READER_OPS
        # The first operation (a vector search) saw version 0, the final one version VERSIONS:
        # vector search followed the writer's commits (on SQLite, the reader's in-memory
        # vector index was rebuilt for them).
        assert 0 in r["vector_versions_seen"] and VERSIONS in r["vector_versions_seen"]
        if backend == "sqlite":
            assert r["index_builds"] >= 2
        else:
            assert r["index_builds"] is None
    assert any(len(r["versions_seen"]) > 1 for _, r in reader_results)
    _assert_documents_at(location, "conc", DOCS, VERSIONS)


@BOTH
def test_two_writers_on_different_documents(location: Path | str, tmp_path: Path) -> None:
    path = str(location)
    _load_version(location, "none", 0, 0)  # schema only
    versions, docs = 8, 10
    writers = [
        Worker(
            "writer.py",
            [
                "--db",
                str(path),
                "--source",
                source,
                "--docs",
                str(docs),
                "--first-version",
                "1",
                "--last-version",
                str(versions),
                "--batch-size",
                "3",
            ],
            tmp_path / f"{source}.err",
        )
        for source in ("left", "right")
    ]
    for writer in writers:
        writer.expect("ready")
    for writer in writers:
        writer.send("go")
    results = [writer.result() for writer in writers]
    for code, r in results:
        print(
            f"\nwriter {r['source']}: {r['transactions']} transactions, {r['documents']} documents"
        )
        assert r["locked"] == 0, "database is locked"
        assert code == 0 and r["errors"] == [], r["errors"]
        assert r["documents"] == docs * versions
    for source in ("left", "right"):
        _assert_documents_at(location, source, docs, versions)
    db = ctx_models.connect(location, create=False)
    try:
        assert db.execute_sql("SELECT count(*) FROM documents").fetchone()[0] == 2 * docs
    finally:
        db.close()


def test_writers_starting_together_on_a_new_file(tmp_path: Path) -> None:
    """Several processes create the same new file at the same moment (a barrier), migrate it and
    write: none may fail with 'database is locked' (the busy timeout must cover opening too)."""
    rounds, procs = 20, 6
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKERS)])}
    done = subprocess.run(
        [
            sys.executable,
            str(WORKERS / "race_open.py"),
            "--rounds",
            str(rounds),
            "--procs",
            str(procs),
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD,
        check=False,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    print(
        f"\nnew-file race: {report['rounds']} rounds x {procs} processes, "
        f"{report['documents']} documents written, {report['locked']} 'database is locked'"
    )
    assert report["locked"] == 0, report["failures"]
    assert report["failures"] == [] and done.returncode == 0, report["failures"]
    assert report["documents"] == rounds * procs
