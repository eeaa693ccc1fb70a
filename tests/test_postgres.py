"""What only PostgreSQL has: URLs and their errors, its schema and version, migrations racing, moving
a store between the backends, HNSW indexes, and many processes writing and reading at once.

(The store, search, CLI and integrity behaviours shared with SQLite run on both backends in their
own modules.)
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from conftest import ROOT, _with_search_path

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.backends import backend_for
from ctx_models.demo.seed import seed
from ctx_models.embedders import HashingEmbedder

pytestmark = pytest.mark.backends("postgres")
EMBEDDER = HashingEmbedder(64)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    return env


def _fresh_schema(pg_url: str) -> str:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return _with_search_path(pg_url, schema)


# --------------------------------------------------------------------------- connecting


@pytest.mark.parametrize(
    "url, words",
    [
        ("postgresql://localhost:notaport/db", "URL"),
        ("postgresql://", "names no database"),
        ("postgresql://nobody@127.0.0.1:9/db?connect_timeout=2", "no connection to the server"),
    ],
)
def test_bad_urls_and_servers_that_are_down_raise_ours(url: str, words: str, run_cli) -> None:
    with pytest.raises(ctx_models.CtxModelsError, match=words):
        ctx_models.connect(url, timeout=2)
    code, out, err = run_cli("stats", "--db", url)
    assert code == 1 and out == "" and err.count("\n") == 1 and words in err


def test_wrong_credentials_and_missing_databases_are_one_line(pg_url: str, run_cli) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS ctx_models_locked")
        conn.execute("CREATE ROLE ctx_models_locked LOGIN PASSWORD 'right'")
    parts = pg_url.split("://", 1)[1]
    host_query = parts.split("@", 1)[1] if "@" in parts else parts
    wrong = f"postgresql://ctx_models_locked:wrong@{host_query}"
    missing = pg_url.replace("/ctx_models_tests", "/no_such_database")
    for url, words in ((missing, "does not exist"),):
        with pytest.raises(ctx_models.DatabaseError, match=words):
            ctx_models.connect(url)
        code, _, err = run_cli("init", "--db", url)
        assert code == 1 and err.count("\n") == 1 and words in err and "***" not in url
    # A local socket may trust every user; a password is only refused where it is checked.
    try:
        ctx_models.connect(wrong).close()
    except ctx_models.DatabaseError as exc:
        assert "authentication failed" in str(exc) and "wrong" not in str(exc)


def test_init_twice_records_a_version_postgres_tools_can_read(location: str, run_cli) -> None:
    code, out, err = run_cli("init", "--db", location)
    assert code == 0 and out.startswith("created postgresql://"), err
    code, out, _ = run_cli("init", "--db", location)
    assert code == 0 and out.startswith("already up to date: ") and "(schema version 1)" in out
    schema = location.split("search_path%3D", 1)[1].split("%2C", 1)[0]
    with psycopg.connect(location.split("?")[0] + "?" + location.split("?")[1]) as conn:
        conn.execute(f"SET search_path = {schema}, public")
        comment = conn.execute("SELECT obj_description('documents'::regclass, 'pg_class')").fetchone()[0]
        kinds = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'documents'", (schema,)
        ).fetchall())
        vector_type = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'chunk_vectors'::regclass AND attname = 'embedding'"
        ).fetchone()[0]
    assert comment == "ctx_models schema version 1"
    assert kinds["created_at"] == kinds["updated_at"] == "bigint" and kinds["id"] == "text"
    assert vector_type == "vector"  # no fixed size: several models and sizes side by side


def test_migrations_started_at_once_by_several_processes_all_succeed(pg_url: str) -> None:
    url = _fresh_schema(pg_url)
    code = "import sys, ctx_models; print(ctx_models.run_migrations(ctx_models.connect(sys.argv[1])).created)"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in results]
    created = [out.strip() for out, _ in results]
    assert sum(1 for c in created if c != "[]") == 1, created  # one made it, the others found it


def test_a_user_who_may_not_create_the_extension_is_told_what_to_ask_for(pg_url: str) -> None:
    name = f"noext_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute("DROP ROLE IF EXISTS ctx_models_plain")
        conn.execute("CREATE ROLE ctx_models_plain LOGIN")
        conn.execute(f"GRANT ALL ON DATABASE {name} TO ctx_models_plain")
    url = pg_url.replace("/ctx_models_tests", f"/{name}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("GRANT ALL ON SCHEMA public TO ctx_models_plain")
    parts = url.split("://", 1)
    plain = f"{parts[0]}://ctx_models_plain@{parts[1].split('@', 1)[1]}"
    db = ctx_models.connect(plain)
    try:
        with pytest.raises(ctx_models.DatabaseError, match="CREATE EXTENSION vector"):
            ctx_models.run_migrations(db)
    finally:
        db.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


# --------------------------------------------------------------------------- moving a store


def _sqlite_rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        rows = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")}
        rows["chunks_fts"] = sorted(conn.execute("SELECT chunk_id, document_id, text FROM chunks_fts").fetchall())
        return rows
    finally:
        conn.close()


def test_sqlite_to_postgres_to_sqlite_gives_identical_rows(location: str, tmp_path: Path, run_cli) -> None:
    first = tmp_path / "first.sqlite"
    database = ctx_models.connect(first)
    ctx_models.run_migrations(database)
    seed(embedder=EMBEDDER)
    # What the ctx tool may write: metadata that is not JSON, a cursor that is not a number,
    # and a second model with vectors of another size.
    database.execute_sql("UPDATE documents SET metadata_json = 'plain text, not JSON' WHERE source = 'jira:ops'")
    database.execute_sql("UPDATE checkpoints SET cursor = 'page-token-7' WHERE source = 'jira:ops'")
    # A chunk far from the question asked below, chosen by name: chunk ids are random, and
    # re-embedding the failover runbook's chunk would change the answer checked there.
    chunk = database.execute_sql(
        "SELECT c.id FROM chunks AS c JOIN documents AS d ON d.id = c.document_id "
        "WHERE d.source = 'jira:ops' ORDER BY d.source_id, c.chunk_index LIMIT 1"
    ).fetchone()[0]
    store.upsert_embeddings([(chunk, "other-model-3", [0.25, -1.5, 3.0e-8])])
    database.close()
    before = _sqlite_rows(first)

    code, out, err = run_cli("copy", str(first), location)
    assert code == 0, err
    assert out.startswith("copied 20 documents, 31 chunks, 31 vectors and 4 checkpoints")
    back = tmp_path / "back.sqlite"
    code, _, err = run_cli("copy", location, str(back))
    assert code == 0, err
    assert _sqlite_rows(back) == before
    # And the copy on PostgreSQL answers as the original does.
    ctx_models.connect(location)
    assert search.hybrid_search("how do I promote a standby database")[0].source_id == "runbooks/postgres-failover.md"
    assert integrity.check().findings[0].code == "bad_metadata"  # the odd text came along


def test_copy_refuses_a_destination_with_documents_unless_merging(location: str, tmp_path: Path, run_cli) -> None:
    source = tmp_path / "source.sqlite"
    database = ctx_models.connect(source)
    ctx_models.run_migrations(database)
    store.ingest("docs", "a", "first text")
    database.close()
    pg = ctx_models.connect(location)
    ctx_models.run_migrations(pg)
    store.ingest("docs", "a", "an older copy of the same document")
    store.ingest("docs", "z", "a document only the destination has")
    code, out, err = run_cli("copy", str(source), location)
    assert code == 1 and out == "" and "--merge" in err and err.count("\n") == 1
    code, out, err = run_cli("copy", str(source), location, "--merge")
    assert code == 0 and ", 1 replaced" in out, err
    ctx_models.connect(location)
    texts = {d.source_id: d.body for d in ctx_models.Document.select()}
    assert texts == {"a": "first text", "z": "a document only the destination has"}


# --------------------------------------------------------------------------- vectors


def test_hnsw_indexes_per_size_report_their_recall(db, run_cli, location: str) -> None:
    rng = np.random.default_rng(5)
    for n in range(300):
        doc, _ = store.upsert_document("v", f"d{n}", f"doc {n}")
        size = 16 if n % 3 else 8
        store.replace_chunks(doc.id, [f"chunk {n}"], [rng.standard_normal(size)], f"model-{size}")
    code, out, err = run_cli("index", "--hnsw", "--db", location)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["built chunk_vectors_hnsw_8", "built chunk_vectors_hnsw_16"]
    for line in lines:
        recall = float(line.split("exact search ")[1].split()[0])
        assert 0.5 <= recall <= 1.0
    query = rng.standard_normal(16)
    exact = search.vector_search(query, limit=10)
    approximate = search.vector_search(query, limit=10, exact=False)
    assert len(approximate) == 10 and approximate[0].score <= exact[0].score + 1e-6
    filtered = search.vector_search(query, limit=5, exact=False, source="v")
    assert len(filtered) == 5
    code, _, err = run_cli("search", "chunk", "--approximate", "--db", location)
    assert code == 0, err


def test_zero_vectors_and_other_sizes_give_no_nan_and_no_error(db) -> None:
    doc, _ = store.upsert_document("z", "zero", "zero vector")
    store.replace_chunks(doc.id, ["zero vector"], [[0.0, 0.0, 0.0]], "m3")
    other, _ = store.upsert_document("z", "unit", "unit vector")
    store.replace_chunks(other.id, ["unit vector"], [[1.0, 0.0, 0.0]], "m3")
    scores = {c.document_id: c.score for c in search.vector_search([1.0, 0.0, 0.0])}
    assert scores == {other.id: pytest.approx(1.0), doc.id: 0.0}
    assert search.vector_search([0.0, 0.0, 0.0])[0].score == 0.0
    assert search.vector_search([1.0, 2.0]) == []
    assert search.hybrid_search("vector", [1.0, 2.0])  # the keyword hits remain


def test_backup_points_to_pg_dump(db, run_cli, location: str, tmp_path: Path) -> None:
    code, out, err = run_cli("backup", str(tmp_path / "b.dump"), "--db", location)
    assert code == 1 and "pg_dump" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- many processes


WRITER = """
    import json, sys, ctx_models
    from ctx_models import store
    from ctx_models.embedders import HashingEmbedder
    ctx_models.connect(sys.argv[1])
    name, docs = sys.argv[2], int(sys.argv[3])
    embedder = HashingEmbedder(32)
    for version in range(3):
        for n in range(docs):
            token = f"tok{name}d{n}v{version}"
            body = "\\n\\n".join(f"{token} part {p} of {name} document {n}" for p in range(3))
            store.ingest("many", f"{name}-{n}", body, embedder=embedder, max_tokens=12,
                         metadata={"parts": 3, "token": token})
    print(json.dumps({"writer": name, "done": docs}), flush=True)
"""

READER = """
    import json, sys, ctx_models
    from ctx_models import search
    from ctx_models.embedders import HashingEmbedder
    db = ctx_models.connect(sys.argv[1])
    embedder = HashingEmbedder(32)
    problems, searches = [], 0
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "final":
            break
        for query in ("part 0", "part 1 of w1", "document 2"):
            for mode in ("keyword", "hybrid"):
                results = search.hybrid_search(query, embedder.embed([query])[0], mode=mode, limit=50)
                searches += 1
                for r in results:
                    with db.atomic("REPEATABLE READ"):
                        texts = [row[0] for row in db.execute_sql(
                            "SELECT text FROM chunks WHERE document_id = %s", (r.id,))]
                    tokens = {t.split()[0] for t in texts}
                    if len(texts) != 3 or len(tokens) != 1:
                        problems.append((r.id, texts))
        print("ok", flush=True)
    # After every writer is done: each reader sees every last version on its next search.
    missing = []
    for token in sys.stdin.readline().split():
        found = search.keyword_search(token, limit=5)
        if not found:
            missing.append(token)
    print(json.dumps({"problems": problems[:5], "searches": searches, "missing": missing}), flush=True)
"""


def test_four_writers_and_two_readers_at_once(pg_url: str) -> None:
    url = _fresh_schema(pg_url)
    ctx_models.run_migrations(ctx_models.connect(url, bind_models=False))
    docs = 6

    def spawn(code: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), url, *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env())

    readers = [spawn(READER) for _ in range(2)]
    for reader in readers:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    writers = [spawn(WRITER, f"w{n}", str(docs)) for n in range(4)]
    rounds = 0
    while any(w.poll() is None for w in writers) and rounds < 200:
        for reader in readers:
            assert reader.stdin is not None and reader.stdout is not None
            reader.stdin.write("go\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "ok", reader.stderr.read() if reader.stderr else ""
        rounds += 1
    outcomes = [w.communicate(timeout=300) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outcomes]
    tokens = " ".join(f"tokw{w}d{n}v2" for w in range(4) for n in range(docs))
    reports: list[dict[str, Any]] = []
    for reader in readers:
        out, err = reader.communicate(f"final\n{tokens}\n", timeout=300)
        assert reader.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    for report in reports:
        assert report["problems"] == [], "a reader saw a document half written"
        assert report["missing"] == [], "a reader did not see a committed document"
        assert report["searches"] > 0
    db = ctx_models.connect(url)
    assert ctx_models.Document.select().count() == 4 * docs
    assert store.stats().chunks == 4 * docs * 3
    assert integrity.check(db).clean
    assert backend_for(db).name == "postgresql"
