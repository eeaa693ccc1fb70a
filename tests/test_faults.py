"""Faults from outside: other processes writing or holding the lock, a full disk, a damaged file,
signals, output that cannot be written, text edited behind the store's back, and backups.

Second processes are real processes; they report what they did through stdout.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from playhouse.schema_diff import diff_models

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.demo.seed import seed
from ctx_models.embedders import HashingEmbedder
from ctx_models.search import Candidate

ROOT = Path(__file__).resolve().parent.parent
EMBEDDER = HashingEmbedder(64)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    return env


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _expect(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdout is not None
    got = process.stdout.readline().strip()
    assert got == line, f"expected {line!r}, got {got!r}; stderr: {process.stderr.read() if process.stderr else ''}"


@pytest.fixture
def seeded(db, db_path: Path) -> Path:
    """The demo corpus, embedded with a small hashing embedder."""
    seed(embedder=EMBEDDER)
    return db_path


# A process that keeps ingesting (two documents per transaction) until told to stop.
STEADY_WRITER = """
    import sys, ctx_models
    from ctx_models import store
    from ctx_models.embedders import HashingEmbedder
    db = ctx_models.connect(sys.argv[1], create=False)
    embedder = HashingEmbedder(64)
    n = 0
    import select
    while not select.select([sys.stdin], [], [], 0)[0]:
        items = [{"source": "steady", "source_id": f"d{n}-{k}", "body": f"steady words {n} {k}\\n\\nmore"}
                 for k in range(2)]
        store.ingest_many(items, embedder=embedder, batch_size=2)
        if n == 0:
            print("writing", flush=True)  # after the first commit
        n += 1
    print(n, flush=True)
"""


# --------------------------------------------------------------------------- check and backup beside writers


def test_check_reads_one_state_while_another_process_ingests(seeded: Path) -> None:
    writer = _spawn(STEADY_WRITER, str(seeded))
    try:
        _expect(writer, "writing")
        reports = [integrity.check() for _ in range(15)]
    finally:
        out, err = writer.communicate("stop\n", timeout=60)
    assert writer.returncode == 0, err
    assert int(out.strip()) > 0, "the writer wrote nothing while check ran"
    for report in reports:
        assert report.clean, report.findings
    assert integrity.check().clean


def test_check_waits_for_a_writer_holding_the_lock(seeded: Path, run_cli) -> None:
    holder = _spawn(
        """
        import sqlite3, sys, time
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('held', '1', 1)")
        print("locked", flush=True)
        time.sleep(3)
        conn.execute("COMMIT")
        print("released", flush=True)
        """,
        str(seeded),
    )
    try:
        _expect(holder, "locked")
        code, out, err = run_cli("check", "--db", str(seeded))
    finally:
        rest, errors = holder.communicate(timeout=60)
    assert holder.returncode == 0, errors
    assert rest.strip() == "released"
    assert (code, err) == (0, ""), out + err
    assert "clean" in out and "locked" not in out
    # It waited for the commit, so it read the state after it.
    assert ctx_models.Checkpoint.get_by_id("held").cursor == 1


def test_backup_while_another_process_writes_is_a_consistent_checked_copy(
    seeded: Path, tmp_path: Path, run_cli
) -> None:
    writer = _spawn(STEADY_WRITER, str(seeded))
    try:
        _expect(writer, "writing")
        reports = [store.backup(tmp_path / f"copy{n}.sqlite") for n in range(3)]
        code, out, err = run_cli("backup", str(tmp_path / "cli.sqlite"), "--db", str(seeded))
    finally:
        writer.communicate("stop\n", timeout=60)
    assert all(report.clean for report in reports)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"backed up to {tmp_path / 'cli.sqlite'}") and "clean" in out
    copy = ctx_models.connect(tmp_path / "copy2.sqlite", bind_models=False)
    with copy.bind_ctx(ctx_models.MODELS):
        assert ctx_models.Document.select().where(ctx_models.Document.source == "steady").count() > 0
        assert [h.source_id for h in search.hybrid_search("how do I promote a standby database")][:1]
    copy.close()
    # A backup never replaces a file unless asked to.
    code, _, err = run_cli("backup", str(tmp_path / "cli.sqlite"), "--db", str(seeded))
    assert code == 1 and "exists" in err and err.count("\n") == 1
    code, _, err = run_cli("backup", str(tmp_path / "cli.sqlite"), "--force", "--db", str(seeded))
    assert code == 0, err


# --------------------------------------------------------------------------- a full disk


def _limit_pages(db, extra: int) -> None:
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages + extra}")


BIG = "\n\n".join(f"paragraph {n} " + "filler text " * 200 for n in range(40))


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda: store.ingest("full", "big", BIG, embedder=EMBEDDER), id="ingest"),
        pytest.param(
            lambda: store.ingest_many(
                ({"source": "full", "source_id": f"b{n}", "body": BIG} for n in range(3)),
                embedder=EMBEDDER,
            ),
            id="ingest_many",
        ),
        pytest.param(
            lambda: store.ingest("filesystem:docs", "runbooks/postgres-failover.md", BIG, embedder=EMBEDDER),
            id="ingest-update",
        ),
        pytest.param(
            lambda: store.replace_chunks(
                ctx_models.Document.select().first().id, [BIG] * 6, EMBEDDER.embed([BIG] * 6),
                EMBEDDER.model,
            ),
            id="replace_chunks",
        ),
    ],
)
def test_a_full_disk_is_named_nothing_committed_is_lost_and_writing_resumes(seeded: Path, db, write) -> None:
    before = {row[0] for row in db.execute_sql("SELECT id FROM documents")}
    _limit_pages(db, 2)
    with pytest.raises(ctx_models.DatabaseError) as info:
        write()
    message = str(info.value)
    assert "database or disk is full" in message and "cannot rollback" not in message
    assert {row[0] for row in db.execute_sql("SELECT id FROM documents")} >= before
    db.execute_sql("PRAGMA max_page_count = 1073741823")
    write()  # the same connection writes again once there is room
    assert integrity.check(db).clean


def test_the_cli_names_a_full_disk(seeded: Path, run_cli, monkeypatch) -> None:
    from ctx_models import cli

    real_connect = cli.connect

    def tight(*args, **kwargs):
        database = real_connect(*args, **kwargs)
        _limit_pages(database, 1)
        return database

    monkeypatch.setattr(cli, "connect", tight)
    code, out, err = run_cli("seed", "--docs", "50", "--dims", "64", "-q", "--db", str(seeded))
    assert code == 1 and err.count("\n") == 1, err
    assert "database or disk is full" in err and "Traceback" not in err


# --------------------------------------------------------------------------- a damaged file


@pytest.fixture
def damaged(tmp_path: Path) -> Path:
    """A seeded file whose every page but the first (the header and the schema) is garbage."""
    path = tmp_path / "damaged.sqlite"
    database = ctx_models.connect(path)
    ctx_models.run_migrations(database)
    seed(embedder=EMBEDDER)
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = database.execute_sql("PRAGMA page_size").fetchone()[0]
    database.close()
    data = bytearray(path.read_bytes())
    rng = random.Random(7)
    data[page_size:] = bytes(rng.getrandbits(8) for _ in range(len(data) - page_size))
    path.write_bytes(bytes(data))
    return path


COMMANDS = [
    ("stats",),
    ("stats", "--json"),
    ("export",),
    ("search", "postgres failover"),
    ("search", "postgres failover", "--mode", "keyword"),
    ("search", "postgres failover", "--mode", "semantic"),
    ("init",),
    ("embed", "--dims", "64", "--yes"),
    ("delete", "--source", "jira:ops", "--yes"),
    ("seed", "--dims", "64", "-q"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_on_a_damaged_file_fails_in_one_line_with_what_to_do(
    damaged: Path, run_cli, command
) -> None:
    code, out, err = run_cli(*command, "--db", str(damaged))
    assert code != 0, out
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "unexpected" not in err and "Traceback" not in err
    assert "ctx-models check" in err and "backup" in err, err


def test_check_on_a_damaged_file_reports_it(damaged: Path, run_cli) -> None:
    code, out, err = run_cli("check", "--db", str(damaged))
    assert code in (1, 2) and "Traceback" not in out + err
    assert "restore" in out + err or "backup" in out + err


def test_every_api_call_on_a_damaged_file_raises_ours(damaged: Path) -> None:
    database = ctx_models.connect(damaged)
    calls = {
        "stats": store.stats,
        "export": lambda: store.export(open(os.devnull, "w")),  # noqa: SIM115
        "keyword": lambda: search.keyword_search("postgres"),
        "vector": lambda: search.vector_search(EMBEDDER.embed(["postgres"])[0]),
        "hybrid": lambda: search.hybrid_search("postgres"),
        "ingest": lambda: store.ingest("new", "n", "text"),
        "get": lambda: store.get_document("x"),
        "pending": lambda: store.pending_chunks(EMBEDDER.model),
        "checkpoint": lambda: store.get_checkpoint("jira:ops"),
        "migrate": lambda: ctx_models.run_migrations(database),
    }
    try:
        for name, call in calls.items():
            with pytest.raises(ctx_models.CtxModelsError) as info:
                call()
            assert isinstance(info.value, ctx_models.DatabaseError), name
            assert "ctx-models check" in str(info.value), name
    finally:
        database.close()


# --------------------------------------------------------------------------- signals and output


SEED_LONG = ["-m", "ctx_models", "seed", "--docs", "20000", "--dims", "16", "--batch-size", "100"]


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_seed_stops_it_with_one_line_keeping_committed_batches(
    tmp_path: Path, signum: int, code: int, word: str
) -> None:
    path = tmp_path / "seeding.sqlite"
    process = subprocess.Popen(
        [sys.executable, *SEED_LONG, "--db", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        # Wait until synthetic batches are committing (the demo corpus comes first).
        for _ in range(600):
            time.sleep(0.05)
            if path.exists() and _count(path, "SELECT count(*) FROM documents WHERE source LIKE 'synthetic:%'") >= 200:
                break
        committed = _count(path, "SELECT count(*) FROM documents")
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, err
    assert err.count("\n") == 1 and err.startswith(word), err
    assert _count(path, "SELECT count(*) FROM documents") >= committed > 20
    database = ctx_models.connect(path)
    try:
        assert integrity.check(database).clean
    finally:
        database.close()


def _count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def test_output_to_a_full_device_is_one_line(seeded: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "ctx_models", "export", "--db", str(seeded)],
            stdout=full, stderr=subprocess.PIPE, text=True, env=_env(), timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot write the output" in done.stderr, done.stderr


def test_output_to_a_closed_pipe_is_quiet(seeded: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "ctx_models", "export", "--db", str(seeded)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert err == ""


# --------------------------------------------------------------------------- text edited by another program


def test_text_edited_by_another_program_is_found_and_reembedded(seeded: Path, db) -> None:
    chunk_id = db.execute_sql("SELECT id FROM chunks ORDER BY rowid LIMIT 1").fetchone()[0]
    conn = sqlite3.connect(seeded)
    conn.execute("UPDATE chunks SET text = 'rewritten by hand with zebracorn' WHERE id = ?", (chunk_id,))
    conn.commit()
    conn.close()
    report = integrity.check(db)
    found = {f.code: f for f in report.findings}
    assert found["chunk_text_edited"].examples == [chunk_id]
    assert found["stale_embeddings"].examples == [chunk_id]
    assert found["fts_mismatch"].examples == [chunk_id]
    repaired = integrity.check(db, repair=True)
    assert repaired.clean, repaired.findings
    assert repaired.repaired == {f.code: f.count for f in report.findings}
    assert [c.id for c in store.pending_chunks(EMBEDDER.model)] == [chunk_id]
    assert store.embed_pending(EMBEDDER) == 1
    assert [c.chunk_id for c in search.keyword_search("zebracorn")] == [chunk_id]
    assert integrity.check(db).clean


# --------------------------------------------------------------------------- scores at the edges, as ctx computes them


def test_min_max_treats_scores_within_float64_epsilon_as_equal() -> None:
    eps = np.finfo(np.float64).eps
    close = [Candidate("a", "d1", 1.0, ""), Candidate("b", "d2", 1.0 + eps / 2, "")]
    assert search._minmax(close) == {"a": 1.0, "b": 1.0}
    apart = [Candidate("a", "d1", 1.0, ""), Candidate("b", "d2", 2.0, "")]
    assert search._minmax(apart) == {"a": 0.0, "b": 1.0}


def test_a_vector_with_a_norm_below_float32_epsilon_scores_0_not_1(db) -> None:
    tiny, _ = store.upsert_document("s", "tiny", "tiny vector")
    store.replace_chunks(tiny.id, ["tiny vector"], [[1e-30, 1e-30, 0.0, 0.0]], "m4")
    normal, _ = store.upsert_document("s", "normal", "normal vector")
    store.replace_chunks(normal.id, ["normal vector"], [[0.0, 0.0, 1.0, 0.0]], "m4")
    scores = {c.document_id: c.score for c in search.vector_search([1.0, 1.0, 0.0, 0.0])}
    assert scores == {tiny.id: 0.0, normal.id: 0.0}
    assert search.hybrid_search("vector", [1.0, 1.0, 0.0, 0.0], mode="semantic") == []


def test_a_cursor_that_is_not_an_integer_leaves_stats_export_and_check_running(
    seeded: Path, run_cli
) -> None:
    conn = sqlite3.connect(seeded)
    conn.execute("UPDATE checkpoints SET cursor = 'next-page-token' WHERE source = 'jira:ops'")
    conn.commit()
    conn.close()
    code, out, err = run_cli("stats", "--db", str(seeded))
    assert (code, err) == (0, "")
    assert any(line.startswith("jira:ops") and line.endswith("unreadable") for line in out.splitlines())
    assert run_cli("export", "--db", str(seeded))[0] == 0
    code, out, _ = run_cli("check", "--db", str(seeded), "--json")
    assert code == 1 and '"bad_checkpoints"' in out
    assert store.stats().sources[2].checkpoint is None


# --------------------------------------------------------------------------- the tools users already have


def test_schema_diff_finds_the_models_and_the_file_agree(db, tmp_path: Path) -> None:
    assert not diff_models(db, list(ctx_models.MODELS)), diff_models(db, list(ctx_models.MODELS))
    import ctx_tool

    theirs = tmp_path / "theirs.sqlite"
    ctx_tool.create_contract_db(str(theirs)).close()
    other = ctx_models.connect(theirs, bind_models=False)
    try:
        assert not diff_models(other, list(ctx_models.MODELS))
    finally:
        other.close()


def test_opening_a_database_keeps_the_locks_of_a_connection_already_open_here(tmp_path: Path) -> None:
    """connect() must not drop this process's SQLite locks on the file.

    Closing any descriptor of a file drops every POSIX lock the process holds on it. While a
    connection here is open, SQLite holds a shared lock on the database file; without it, a
    writer in another process believes it is the last connection when it closes, checkpoints
    and deletes the WAL and the shared-memory file under the open connection (a way to corrupt
    a database, by SQLite's own account).
    """
    path = tmp_path / "ctx.sqlite"
    first = ctx_models.connect(path, bind_models=False)
    ctx_models.run_migrations(first)
    first.close()
    held = sqlite3.connect(path)
    held.execute("SELECT count(*) FROM documents").fetchone()  # opens the WAL and -shm
    ctx_models.connect(path, bind_models=False).close()
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3
            conn = sqlite3.connect({str(path)!r})
            conn.execute("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('s', '1', 1)")
            conn.commit()
            conn.close()
        """)],
        check=True,
    )
    try:
        assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
        assert held.execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)
    finally:
        held.close()
