"""A database this process may not write is still read: stats, search, export and check work,
with one warning; commands that write fail in one line, and the file is left as it was.

Two real cases: a directory the process may not write (as the user ``nobody`` when the tests
run as root, who ignores permission bits), and a read-only mount (a tmpfs remounted ro).
Before, every command failed with "check the directory exists and is writable".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ctx_models
from ctx_models.demo.seed import seed
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent

# Runs the CLI as another user: everything it imports is loaded first, while the interpreter
# may still read its own files (they may live under /root, which that user may not read).
AS_USER = """
import os, pwd, sys
import ctx_models.cli, ctx_models.integrity, ctx_models.stemming, ctx_models.demo.seed
import ctx_models.backends.sqlite, ctx_models.backends.sqlite.integrity, ctx_models.backends.sqlite.schema
import ctx_models.backends.sqlite.vectors, ctx_models.backends.sqlite.keyword, ctx_models.backends.sqlite.fts
import ctx_models.transfer, ctx_models.demo.synthetic, snowballstemmer, json, secrets, random, uuid
ctx_models.stemming.stem("warm")
user = sys.argv[1]
if user != "-":
    entry = pwd.getpwnam(user)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
sys.exit(ctx_models.cli.main(sys.argv[2:]))
"""

READS = [
    ("stats",),
    ("stats", "--json"),
    ("search", "postgres failover"),
    ("search", "postgres failover", "--mode", "keyword"),
    ("search", "postgres failover", "--mode", "semantic"),
    ("export",),
    ("check",),
    ("check", "--json"),
]
WRITES = [
    ("delete", "--source", "jira:ops", "--yes"),
    ("seed", "--docs", "2", "--dims", "16", "-q"),
    ("embed", "--dims", "24", "--yes", "-q"),
    ("check", "--repair"),
]


def _seeded(folder: Path) -> Path:
    path = folder / "ctx.sqlite"
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    seed(embedder=HashingEmbedder(16))
    db.close()  # the last connection to close removes -wal and -shm
    assert not Path(f"{path}-shm").exists()
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _run(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CTX_MODELS_DB", None)
    return subprocess.run(
        [sys.executable, "-c", AS_USER, user, *argv], capture_output=True, text=True,
        env=env, cwd="/", timeout=300, check=False,
    )


def _check_reads_and_writes(user: str, path: Path, reason: str) -> None:
    before = _digest(path.parent)
    for argv in READS:
        done = _run(user, *argv, "--db", str(path))
        assert done.returncode == 0, (argv, done.stderr)
        assert done.stdout, argv
        warnings = done.stderr.splitlines()
        assert len(warnings) == 1 and "read-only" in warnings[0] and reason in warnings[0], done.stderr
    for argv in WRITES:
        done = _run(user, *argv, "--db", str(path))
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        error = done.stderr.splitlines()[-1]
        assert error.startswith("error: ") and ("read-only" in error or "may not write" in error), error
        assert "unexpected" not in done.stderr and "Traceback" not in done.stderr
    assert _digest(path.parent) == before  # nothing was written, not even a -shm


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's own tmp folder is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="ctx-ro-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_directory_this_process_may_not_write(shared_folder: Path) -> None:
    path = _seeded(shared_folder)
    path.chmod(0o644)
    shared_folder.chmod(0o555)
    user = "nobody" if os.geteuid() == 0 else "-"  # root may write a 0555 directory
    _check_reads_and_writes(user, path, "directory is not writable")


def test_a_directory_not_writable_while_a_writer_has_the_file_open(shared_folder: Path) -> None:
    """Where a -shm file exists (a process has the database open), reads go through it."""
    path = _seeded(shared_folder)
    holder = ctx_models.connect(path, bind_models=False)
    holder.execute_sql("SELECT count(*) FROM documents").fetchone()
    try:
        assert Path(f"{path}-shm").exists()
        for name in os.listdir(shared_folder):
            (shared_folder / name).chmod(0o644)
        shared_folder.chmod(0o555)
        user = "nobody" if os.geteuid() == 0 else "-"
        done = _run(user, "stats", "--db", str(path))
        assert done.returncode == 0, done.stderr
        assert "documents  20" in done.stdout
        assert "not writable" in done.stderr and "would not be seen" not in done.stderr
    finally:
        shared_folder.chmod(0o755)
        holder.close()


@pytest.fixture
def read_only_mount() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = Path(tempfile.mkdtemp(prefix="ctx-mount-", dir="/tmp"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"mount -t tmpfs refused (needs CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        folder.rmdir()


def test_a_read_only_mount(read_only_mount: Path) -> None:
    path = _seeded(read_only_mount)
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    _check_reads_and_writes("-", path, "read-only file system")  # as root: the mount decides


def test_a_wal_with_commits_and_no_shm_is_refused_with_what_to_do(read_only_mount: Path) -> None:
    path = _seeded(read_only_mount)
    # A writer killed mid-way leaves -wal holding commits, and no -shm once the mount is ro.
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE documents SET title = 'changed' WHERE rowid = 1")
    conn.commit()
    shutil.copy(f"{path}-wal", read_only_mount / "saved-wal")
    conn.close()
    os.replace(read_only_mount / "saved-wal", f"{path}-wal")
    Path(f"{path}-shm").unlink(missing_ok=True)
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    done = _run("-", "stats", "--db", str(path))
    assert done.returncode == 1 and done.stderr.startswith("error: ") and "-wal holds commits" in done.stderr
