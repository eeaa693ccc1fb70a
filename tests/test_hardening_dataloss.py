"""Issue 20, round 3 of hardening: data that must not be lost or leaked through the files a
command writes (export, backup, copy), two embeds at once, a database file replaced under a
writer, and names another program gave its tables and indexes.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ctx_models
from ctx_models import store
from ctx_models.identifiers import quote_identifier


@pytest.fixture(autouse=True)
def _close_cli_connections() -> Iterator[None]:
    """The CLI opens (and binds) its own connection: close it after each test."""
    yield
    try:
        ctx_models.bound_database().close()
    except ctx_models.CtxModelsError:
        pass


def _closing(run_cli: Any) -> Any:
    """``run_cli`` that closes the connection the CLI left bound, so its -wal and -shm go."""

    def run(*argv: str) -> tuple[int, str, str]:
        result = run_cli(*argv)
        try:
            ctx_models.bound_database().close()
        except ctx_models.CtxModelsError:
            pass
        return result

    return run


# --------------------------------------------------------------------------- names with quotes


ODD_NAMES = ['my"idx', "it's", "with space", '"', 'a""b', "x'); DROP TABLE chunks; --"]


def _quoted(name: str) -> str:
    # Written out here, not ctx_models' helper: the test must not trust the code it tests.
    return '"' + name.replace('"', '""') + '"'


@pytest.mark.parametrize("name", ODD_NAMES)
def test_check_and_init_read_tables_and_indexes_named_with_quotes_and_spaces(
    name: str, db_path: Path, run_cli
) -> None:
    """Another program's index on a contract table, and its own table, named with ", ' and spaces."""
    ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest("s", "a", "words about quoting")
    conn = sqlite3.connect(db_path)
    conn.execute(f"CREATE INDEX {_quoted(name)} ON chunks (hash)")
    conn.execute(f"CREATE TABLE {_quoted('t ' + name)} (x)")
    conn.commit()
    conn.close()
    code, out, err = run_cli("check", "--db", str(db_path))
    assert (code, err) == (0, ""), out + err
    assert "clean" in out
    code, out, err = run_cli("init", "--db", str(db_path))
    assert (code, err) == (0, ""), out + err
    assert "already up to date" in out
    # The other program's objects are left as they were.
    conn = sqlite3.connect(db_path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {name, "t " + name} <= names


@pytest.mark.backends("postgres")
def test_check_and_init_read_an_index_named_with_quotes_on_postgresql(db, raw, location, run_cli) -> None:
    store.ingest("s", "a", "words about quoting")
    for name in ODD_NAMES[:3]:
        raw.execute(f"CREATE INDEX {_quoted(name)} ON chunks (hash)")
    code, out, err = run_cli("check", "--db", location)
    assert (code, err) == (0, ""), out + err
    code, out, err = run_cli("init", "--db", location)
    assert (code, err) == (0, ""), out + err
    assert "already up to date" in out


@pytest.mark.parametrize("name", ODD_NAMES)
def test_quote_identifier_makes_a_name_sqlite_reads_back_as_written(name: str) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {quote_identifier(name)} ({quote_identifier(name + ' col')})")
    assert conn.execute("SELECT name FROM sqlite_master").fetchone()[0] == name
    assert [row[1] for row in conn.execute(f"PRAGMA table_info({quote_identifier(name)})")] == [name + " col"]
    conn.close()
    with pytest.raises(ValueError, match="NUL"):
        quote_identifier("a\x00b")


# --------------------------------------------------------------------------- export is linear


class _CountingCursor:
    """A cursor that counts the rows it hands out holding ``needle`` (the body under test)."""

    def __init__(self, cursor: Any, needle: str, seen: list[int]) -> None:
        self._cursor, self._needle, self._seen = cursor, needle, seen

    def _count(self, rows: list[Any]) -> list[Any]:
        self._seen[0] += sum(1 for row in rows if row and self._needle in row)
        return rows

    def __iter__(self) -> Iterator[Any]:
        for row in self._cursor:
            self._count([row])
            yield row

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        if row is not None:
            self._count([row])
        return row

    def fetchall(self) -> list[Any]:
        return self._count(list(self._cursor.fetchall()))

    def fetchmany(self, *args: Any) -> list[Any]:
        return self._count(list(self._cursor.fetchmany(*args)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.mark.backends("sqlite", "postgres")
def test_export_reads_each_body_once_however_many_chunks_it_has(db, monkeypatch) -> None:
    """The body of a document of many chunks leaves the database once, not once per chunk
    (a 16 MB body took 25 s to export when every chunk row carried it)."""
    body = "\n\n".join(f"paragraph {n} " + "words to fill the chunk " * 40 for n in range(60))
    result = store.ingest("big", "one", body, max_tokens=64)
    store.ingest("small", "two", "a short body")
    chunks = result.chunks
    assert chunks >= 30
    seen = [0]
    real = db.execute_sql
    monkeypatch.setattr(
        db, "execute_sql", lambda *a, **k: _CountingCursor(real(*a, **k), body, seen)
    )
    fp = io.StringIO()
    assert store.export(fp) == 2
    monkeypatch.undo()
    assert seen[0] == 1, f"the body was read {seen[0]} times for {chunks} chunks"
    exported = [json.loads(line) for line in fp.getvalue().splitlines()]
    assert exported[0]["body"] == body
    assert [c["chunk_index"] for c in exported[0]["chunks"]] == list(range(chunks))
    assert "".join(c["text"] for c in exported[0]["chunks"]).replace(" ", "")[:50] == body.replace(
        "\n", ""
    ).replace(" ", "")[:50]
    assert [c["text"] for c in exported[1]["chunks"]] == ["a short body"]


# --------------------------------------------------------------------------- export --out


@pytest.fixture
def small_store(db_path: Path) -> Path:
    """A SQLite store with two documents, its connection closed (as the CLI finds it)."""
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations(database)
    store.ingest("s", "a", "first body\n\nwith two paragraphs")
    store.ingest("s", "b", "second body")
    database.close()
    return db_path


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1 and out == "", out + err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("force", [False, True])
def test_export_refuses_the_database_and_its_files_by_name(
    small_store: Path, run_cli, suffix: str, force: bool
) -> None:
    run_cli = _closing(run_cli)
    before = _files(small_store.parent)
    out = f"{small_store}{suffix}"
    err = _one_line_error(
        *run_cli("export", "--db", str(small_store), "--out", out, *(["--force"] * force))
    )
    assert "is the database" in err
    assert _files(small_store.parent) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink", "symlinked-directory"])
def test_export_refuses_the_database_through_links(small_store: Path, tmp_path: Path, run_cli, link: str) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    if link == "symlink":
        out = other / "out.jsonl"
        out.symlink_to(small_store)
    elif link == "hardlink":
        out = other / "out.jsonl"
        out.hardlink_to(small_store)
    else:
        (other / "d").symlink_to(small_store.parent, target_is_directory=True)
        out = other / "d" / small_store.name
    before = small_store.read_bytes()
    for extra in ([], ["--force"]):
        err = _one_line_error(*run_cli("export", "--db", str(small_store), "--out", str(out), *extra))
        assert "is the database" in err
    assert small_store.read_bytes() == before
    # A link to the database's WAL file, which need not exist now, is refused as well.
    wal_link = other / "wal.jsonl"
    wal_link.symlink_to(f"{small_store}-wal")
    _one_line_error(*run_cli("export", "--db", str(small_store), "--out", str(wal_link), "--force"))
    assert not Path(f"{small_store}-wal").exists() or Path(f"{small_store}-wal").stat().st_size == 0


def test_export_over_a_symlink_with_force_replaces_the_link_not_its_target(
    small_store: Path, tmp_path: Path, run_cli
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    out = tmp_path / "out.jsonl"
    out.symlink_to(precious)
    err = _one_line_error(*run_cli("export", "--db", str(small_store), "--out", str(out)))
    assert "exists" in err and "--force" in err
    code, _, err = run_cli("export", "--db", str(small_store), "--out", str(out), "--force")
    assert code == 0, err
    assert precious.read_text() == "keep me\n"
    assert not out.is_symlink()
    assert [json.loads(line)["source_id"] for line in out.read_text().splitlines()] == ["a", "b"]


def test_export_leaves_no_temporary_file_and_an_existing_output_whole_on_failure(
    small_store: Path, tmp_path: Path, run_cli, monkeypatch
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("the old export\n")

    def failing(fp: Any, source: Any = None) -> int:
        fp.write("half of an export")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "export", failing)
    code, _, err = run_cli("export", "--db", str(small_store), "--out", str(out), "--force")
    assert code == 1 and "No space left" in err and str(out) in err, err
    assert out.read_text() == "the old export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.jsonl"]


# --------------------------------------------------------------------------- backup DEST


ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    return env


def _python(code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, env=_env(), timeout=300, **kwargs,
    )


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_backup_refuses_the_database_and_its_files_even_with_force(
    small_store: Path, run_cli, suffix: str
) -> None:
    run_cli = _closing(run_cli)
    before = _files(small_store.parent)
    err = _one_line_error(*run_cli("backup", f"{small_store}{suffix}", "--force", "--db", str(small_store)))
    assert "is the database" in err
    assert _files(small_store.parent) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_backup_refuses_a_link_to_the_database(small_store: Path, tmp_path: Path, run_cli, link: str) -> None:
    run_cli = _closing(run_cli)
    dest = tmp_path / "backup.sqlite"
    if link == "symlink":
        dest.symlink_to(small_store)
    else:
        dest.hardlink_to(small_store)
    before = small_store.read_bytes()
    err = _one_line_error(*run_cli("backup", str(dest), "--force", "--db", str(small_store)))
    assert "is the database" in err
    assert small_store.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.sqlite", "data"]


def test_backup_over_the_live_database_loses_no_commit_of_another_writer(
    small_store: Path, tmp_path: Path
) -> None:
    """The issue's case: `backup DB --force` beside a writer reported "clean" while the writer's
    commits went into the unlinked file. Now it is refused and every commit is there."""
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import sys, ctx_models
            from ctx_models import store
            ctx_models.connect(sys.argv[1], create=False)
            for n in range(200):
                store.set_checkpoint(f"w{n}", n)
                if n == 0:
                    print("writing", flush=True)
                    sys.stdin.readline()
            print("done", flush=True)
            """
        ), str(small_store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    backup = subprocess.run(
        [sys.executable, "-m", "ctx_models", "backup", str(small_store), "--force", "--db", str(small_store)],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    out, err = writer.communicate("go\n", timeout=120)
    assert (writer.returncode, out.strip()) == (0, "done"), err
    assert backup.returncode == 1 and "is the database" in backup.stderr, backup.stdout + backup.stderr
    conn = sqlite3.connect(small_store)
    assert conn.execute("SELECT count(*) FROM checkpoints WHERE source LIKE 'w%'").fetchone()[0] == 200
    conn.close()


@pytest.mark.parametrize("sidecar", ["-wal", "-journal"])
def test_backup_refuses_a_journal_beside_dest_and_deletes_nothing(
    small_store: Path, tmp_path: Path, run_cli, sidecar: str
) -> None:
    run_cli = _closing(run_cli)
    dest = tmp_path / "backup.sqlite"
    dest.write_bytes(b"an old backup")
    journal = Path(f"{dest}{sidecar}")
    journal.write_bytes(b"its journal")
    err = _one_line_error(*run_cli("backup", str(dest), "--force", "--db", str(small_store)))
    assert str(journal) in err
    assert dest.read_bytes() == b"an old backup" and journal.read_bytes() == b"its journal"


def test_a_journal_with_no_database_beside_it_gets_advice_that_works(
    small_store: Path, tmp_path: Path, run_cli
) -> None:
    # The advice was to open and close DEST with `check`, which says there is no database.
    run_cli = _closing(run_cli)
    dest = tmp_path / "backup.sqlite"
    journal = Path(f"{dest}-wal")
    journal.write_bytes(b"left over")
    err = _one_line_error(*run_cli("backup", str(dest), "--db", str(small_store)))
    assert f"{journal} exists beside {dest}, which is not there" in err and "Remove it" in err
    assert "ctx-models check" not in err and not dest.exists()
    assert journal.read_bytes() == b"left over"


def test_backup_leaves_the_files_of_others_named_like_its_temporary_ones(
    small_store: Path, tmp_path: Path, run_cli
) -> None:
    """The old backup wrote to DEST.partial, deleting whatever was there first."""
    run_cli = _closing(run_cli)
    dest = tmp_path / "backup.sqlite"
    mine = {f"{dest.name}.partial": b"someone's file", f"{dest.name}.partial-wal": b"and its wal"}
    for name, content in mine.items():
        (tmp_path / name).write_bytes(content)
    code, out, err = run_cli("backup", str(dest), "--db", str(small_store))
    assert code == 0, err
    for name, content in mine.items():
        assert (tmp_path / name).read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", dest.name, *mine])


KILLED_MID_BACKUP = """
    import os, signal, sys
    from pathlib import Path
    from ctx_models import outputs
    target = Path(sys.argv[1])
    with outputs.replaced_atomically(target, mode=0o600, tag="backup") as partial:
        partial.write_bytes(b"half a backup")
        Path(str(partial) + "-journal").write_bytes(b"its journal")
        print(partial, flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()  # a backup still running, until told to stop
        raise SystemExit(0)  # stopped: its temporary file goes
"""


def test_a_backup_killed_midway_leaves_a_temporary_file_the_next_backup_removes(
    small_store: Path, tmp_path: Path, run_cli, caplog
) -> None:
    dest = tmp_path / "backup.sqlite"
    killed = _python(KILLED_MID_BACKUP, str(dest), "kill")
    assert killed.returncode == -signal.SIGKILL
    leftover = Path(killed.stdout.strip())
    assert leftover.parent == tmp_path and leftover.name.startswith("backup.sqlite.backup-")
    assert leftover.exists() and Path(f"{leftover}-journal").exists()
    # One being written right now by a live process is left alone.
    running = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_MID_BACKUP), str(dest), "wait"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )
    assert running.stdout is not None
    live = Path(running.stdout.readline().strip())
    try:
        run_cli = _closing(run_cli)
        with caplog.at_level(logging.WARNING, logger="ctx_models.outputs"):
            code, out, err = run_cli("backup", str(dest), "--db", str(small_store))
        assert code == 0, err
        assert not leftover.exists() and not Path(f"{leftover}-journal").exists()
        assert any(str(leftover) in r.getMessage() for r in caplog.records)
        assert live.exists()
    finally:
        running.communicate("", timeout=60)
    assert running.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.sqlite", "data"]


def test_an_interrupted_backup_leaves_no_temporary_file(
    small_store: Path, tmp_path: Path, monkeypatch
) -> None:
    database = ctx_models.connect(small_store)
    real = database.connection()

    class Interrupting:
        def backup(self, target: Any, **kwargs: Any) -> None:
            real.backup(target, **kwargs)
            raise KeyboardInterrupt  # Ctrl-C, or the CLI's SIGTERM, as the copy ends

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(database, "connection", lambda: Interrupting())
    with pytest.raises(KeyboardInterrupt):
        store.backup(tmp_path / "backup.sqlite")
    monkeypatch.undo()
    database.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_full_disk_under_a_backup_names_the_backup_not_the_database(
    small_store: Path, tmp_path: Path
) -> None:
    """A real process whose files may not grow past 48 KB (RLIMIT_FSIZE; the database's 32 KB
    shared-memory file fits): the copy cannot be written, the database is only read."""
    store_ = ctx_models.connect(small_store)
    store.ingest("s", "big", "\n\n".join(f"paragraph {n} " + "filler " * 300 for n in range(60)))
    store_.close()
    assert small_store.stat().st_size > 128 * 1024
    dest = tmp_path / "backup.sqlite"

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))

    result = subprocess.run(
        [sys.executable, "-B", "-m", "ctx_models", "backup", str(dest), "--db", str(small_store)],
        capture_output=True, text=True, env=_env(), timeout=120, preexec_fn=limited,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"the backup {dest}" in result.stderr and str(small_store) not in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# --------------------------------------------------------------------------- permission bits


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_backups_exports_and_copies_get_the_database_files_permission_bits(
    small_store: Path, tmp_path: Path, run_cli, mode: int
) -> None:
    run_cli = _closing(run_cli)
    small_store.chmod(mode)
    previous = os.umask(0o022)
    try:
        code, _, err = run_cli("backup", str(tmp_path / "backup.sqlite"), "--db", str(small_store))
        assert code == 0, err
        code, _, err = run_cli("export", "--out", str(tmp_path / "export.jsonl"), "--db", str(small_store))
        assert code == 0, err
        code, _, err = run_cli("copy", str(small_store), str(tmp_path / "copy" / "copy.sqlite"))
        assert code == 0, err
        code, _, err = run_cli("backup", str(tmp_path / "backup.sqlite"), "--force", "--db", str(small_store))
        assert code == 0, err
    finally:
        os.umask(previous)
    for made in ("backup.sqlite", "export.jsonl", "copy/copy.sqlite"):
        assert stat.S_IMODE((tmp_path / made).stat().st_mode) == mode, made


# --------------------------------------------------------------------------- the file replaced under a writer


def _replace(path: Path, how: str, tmp_path: Path) -> None:
    """Delete the database file, or put another one in its place, as a user or a restore would."""
    if how == "deleted":
        path.unlink()
        return
    other = tmp_path / f"other-{how}.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"VACUUM INTO '{other}'")  # a whole copy, as a restored backup is
    conn.close()
    if how == "replaced":
        os.replace(other, path)
    else:  # moved away with its WAL and shared memory, and a copy put in its place
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                Path(f"{path}{suffix}").rename(tmp_path / f"moved.sqlite{suffix}")
        other.rename(path)


@pytest.mark.parametrize("how", ["deleted", "replaced", "moved"])
def test_a_write_to_a_database_file_deleted_or_replaced_while_open_fails_with_our_error(
    db_path: Path, tmp_path: Path, how: str
) -> None:
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest("s", "before", "written before")
    _replace(db_path, how, tmp_path)
    for write in (
        lambda: store.ingest("s", "after", "written after"),
        lambda: store.set_checkpoint("s", 5),
        lambda: store.delete_source("s"),
    ):
        with pytest.raises(ctx_models.DatabaseError, match="deleted or replaced while open"):
            write()
    database.close()
    if how != "deleted":
        # The file there now is whole, and nothing went into it or into the old one.
        conn = sqlite3.connect(db_path)
        assert conn.execute("SELECT source_id FROM documents").fetchall() == [("before",)]
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0
        conn.close()
    # Reopened, the file that is there now is used.
    ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest("s", "reopened", "written after reopening")
    ctx_models.bound_database().close()


def test_a_transaction_open_while_the_file_is_replaced_is_not_committed(db_path: Path, tmp_path: Path) -> None:
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest("s", "before", "written before")
    with pytest.raises(ctx_models.DatabaseError, match="deleted or replaced"):
        with database.atomic("IMMEDIATE"):
            ctx_models.Checkpoint.insert(source="inside", cursor=1, updated_at=1).execute()
            _replace(db_path, "moved", tmp_path)
    database.close()
    for path in (db_path, tmp_path / "moved.sqlite"):  # the file there now, the one moved away
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0, path
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 1, path
        conn.close()


REPLACED_WRITER = """
    import sys, ctx_models
    from ctx_models import store
    ctx_models.connect(sys.argv[1], create=False)
    store.ingest("w", "first", "the first commit")
    print("writing", flush=True)
    sys.stdin.readline()  # the test replaces the file meanwhile
    try:
        for n in range(20):
            store.ingest("w", f"after-{n}", "a commit after the file was replaced")
    except ctx_models.CtxModelsError as exc:
        print(f"error: {exc}", flush=True)
        sys.exit(1)
    print("wrote 20 documents", flush=True)
"""


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_writer_process_stops_when_its_database_file_is_deleted_or_replaced(
    small_store: Path, tmp_path: Path, how: str
) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(REPLACED_WRITER), str(small_store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    _replace(small_store, how, tmp_path)
    out, err = writer.communicate("go on\n", timeout=120)
    assert writer.returncode == 1, out + err
    assert "was deleted or replaced while open" in out and str(small_store) in out, out + err
    if how == "replaced":
        conn = sqlite3.connect(small_store)
        ids = [row[0] for row in conn.execute("SELECT source_id FROM documents WHERE source = 'w'")]
        conn.close()
        assert ids == ["first"]


# --------------------------------------------------------------------------- two embeds at once


CONCURRENT_EMBED = """
    import os, sys, time, ctx_models
    from ctx_models import store
    from ctx_models.embedders import embedder_for_model
    path, model, mine, theirs, chunks = sys.argv[1:]
    ctx_models.connect(path, create=False)
    inner = embedder_for_model(model)

    class Counted:
        # The hashing model, counting the texts it embeds; the first batch waits until the
        # other process has started its own, so that the two runs overlap.
        model, dims = inner.model, inner.dims
        texts = 0

        def embed(self, texts):
            if Counted.texts == 0:
                open(mine, "w").close()
                deadline = time.monotonic() + 120
                while not os.path.exists(theirs) and time.monotonic() < deadline:
                    time.sleep(0.005)
            Counted.texts += len(texts)
            if Counted.texts > int(chunks):
                print(f"embedded {Counted.texts} texts for {chunks} chunks", flush=True)
                sys.exit(3)
            return inner.embed(texts)

    done = store.embed_pending(Counted(), batch_size=4)
    print(done, Counted.texts, flush=True)
"""


def test_two_embeds_with_different_models_at_once_both_finish_embedding_each_chunk_once(
    db_path: Path, tmp_path: Path
) -> None:
    """Two processes, hashing-v1-8 and hashing-v1-16, on one store: each embeds every chunk
    pending for its model when it started once, and both end (they used to replace each
    other's embeddings forever)."""
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest_many(
        [{"source": "s", "source_id": f"d{n}", "body": f"document {n}\n\nsecond part {n}"} for n in range(60)],
        max_tokens=4,
    )
    chunk_ids = {row[0] for row in database.execute_sql("SELECT id FROM chunks")}
    database.close()
    assert len(chunk_ids) >= 120
    flags = {model: tmp_path / f"{model}.started" for model in ("hashing-v1-8", "hashing-v1-16")}
    processes = {
        model: subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CONCURRENT_EMBED), str(db_path), model,
             str(flags[model]), str(flags[other]), str(len(chunk_ids))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        for model, other in (("hashing-v1-8", "hashing-v1-16"), ("hashing-v1-16", "hashing-v1-8"))
    }
    results = {model: process.communicate(timeout=300) for model, process in processes.items()}
    for model, (out, err) in results.items():
        assert processes[model].returncode == 0, (model, out, err)
        done, texts = map(int, out.split())
        assert (done, texts) == (len(chunk_ids), len(chunk_ids)), model
    conn = sqlite3.connect(db_path)
    rows = conn.execute(
        "SELECT e.chunk_id, e.model, e.hash = c.hash, length(v.embedding) / 4 FROM embeddings e "
        "JOIN chunks c ON c.id = e.chunk_id JOIN chunk_vectors v ON v.chunk_id = e.chunk_id"
    ).fetchall()
    conn.close()
    # Every chunk has a current embedding of a model that ran, with a vector of that model's size.
    assert {row[0] for row in rows} == chunk_ids
    assert all(current and model in flags and dims == int(model.rsplit("-", 1)[1])
               for _, model, current, dims in rows)


def test_two_cli_embeds_with_different_models_both_end_and_say_how_many_they_embedded(
    db_path: Path,
) -> None:
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations()
    store.ingest_many(
        [{"source": "s", "source_id": f"d{n}", "body": f"document {n}\n\nsecond part {n}"} for n in range(150)],
        max_tokens=4,
    )
    chunks = database.execute_sql("SELECT count(*) FROM chunks").fetchone()[0]
    database.close()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "ctx_models", "embed", "--db", str(db_path), "--model", model,
             "--replace", "--yes", "--batch-size", "8", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        for model in ("hashing-v1-8", "hashing-v1-16")
    ]
    for process, model in zip(processes, ("hashing-v1-8", "hashing-v1-16")):
        out, err = process.communicate(timeout=300)
        assert (process.returncode, err) == (0, ""), out + err
        assert out.strip() == f"embedded {chunks} chunk(s) with {model}"


def test_an_export_removes_the_temporary_file_a_killed_export_left(
    small_store: Path, tmp_path: Path, run_cli
) -> None:
    out = tmp_path / "out.jsonl"
    killed = _python(KILLED_MID_BACKUP.replace('tag="backup"', 'tag="export"'), str(out), "kill")
    assert killed.returncode == -signal.SIGKILL
    leftover = Path(killed.stdout.strip())
    assert leftover.exists() and leftover.name.startswith("out.jsonl.export-")
    code, _, err = run_cli("export", "--db", str(small_store), "--out", str(out))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.jsonl"]


def _open_files() -> set[str]:
    """Paths this process holds open (Linux /proc)."""
    fds = Path("/proc/self/fd")
    found = set()
    for fd in fds.iterdir():
        try:
            found.add(os.readlink(fd))
        except OSError:
            pass
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc to list open files")
def test_copy_run_in_process_closes_both_databases(small_store: Path, tmp_path: Path, run_cli) -> None:
    # Programs (and tests) run the CLI in-process: copy must not leave its two connections,
    # with their file descriptors and locks, for the garbage collector.
    dest = tmp_path / "copy.sqlite"
    gc_was = gc.isenabled()
    gc.disable()  # a leaked connection would otherwise be closed by chance, not by copy
    try:
        code, _, err = run_cli("copy", str(small_store), str(dest))
        held = _open_files()
    finally:
        if gc_was:
            gc.enable()
    assert code == 0, err
    assert not {p for p in held if p.startswith((str(small_store), str(dest)))}, held


@pytest.mark.parametrize("by", ["name", "link"])
def test_copy_refuses_a_store_onto_itself(small_store: Path, tmp_path: Path, run_cli, by: str) -> None:
    # `copy A A --merge` replaced every document with itself and called it a copy.
    run_cli = _closing(run_cli)
    dest = small_store
    if by == "link":
        dest = tmp_path / "link.sqlite"
        dest.symlink_to(small_store)
    before = small_store.read_bytes()
    err = _one_line_error(*run_cli("copy", str(small_store), str(dest), "--merge"))
    assert "is both the source and the destination" in err
    assert small_store.read_bytes() == before
