"""`ctx-models check` on a damaged file says what is damaged, in SQLite's own words, and exits 1.

Before, damage that stops SQLite's quick_check itself (a table's root page, the schema on
page 1) made `check` print "run `ctx-models check` to see the damage" and exit 2.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import ctx_models
from ctx_models import integrity
from ctx_models.demo.seed import seed
from ctx_models.embedders import HashingEmbedder


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "ctx.sqlite"
    database = ctx_models.connect(path)
    ctx_models.run_migrations(database)
    seed(embedder=HashingEmbedder(32))
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    return path


def _page_size_and_root(path: Path, table: str) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        return page_size, root
    finally:
        conn.close()


def _overwrite(path: Path, offset: int, size: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xa5" * size)


def _damage_root_page(path: Path, table: str) -> None:
    """Garbage over a table's root page, past its header: quick_check itself then fails."""
    page_size, root = _page_size_and_root(path, table)
    _overwrite(path, (root - 1) * page_size + 8, page_size // 2)


def _damage_schema(path: Path) -> None:
    """Garbage over page 1 after the 100-byte file header: the schema cannot be read."""
    page_size, _ = _page_size_and_root(path, "documents")
    _overwrite(path, 200, page_size - 300)


def _damage_every_page_but_the_first(path: Path) -> None:
    page_size, _ = _page_size_and_root(path, "documents")
    data = bytearray(path.read_bytes())
    data[page_size:] = bytes((i * 7919) % 251 for i in range(len(data) - page_size))
    path.write_bytes(bytes(data))


DAMAGES = {
    "documents-root": (lambda p: _damage_root_page(p, "documents"), "table documents"),
    "chunks-root": (lambda p: _damage_root_page(p, "chunks"), "table chunks"),
    "schema-page": (_damage_schema, "sqlite_master"),
    "every-page": (_damage_every_page_but_the_first, "Page "),
}


@pytest.mark.parametrize("name", DAMAGES)
def test_check_names_the_damage_and_exits_1(seeded: Path, run_cli, name: str) -> None:
    damage, named = DAMAGES[name]
    damage(seeded)
    code, out, err = run_cli("check", "--db", str(seeded))
    assert code == 1, (out, err)
    assert err == "", err
    damage_lines = [line for line in out.splitlines() if line.startswith("damage ")]
    assert damage_lines and any(named in line for line in damage_lines), out
    assert "run `ctx-models check`" not in out  # check is that command: it says what it found
    assert "restore a backup" in out
    code, out, err = run_cli("check", "--db", str(seeded), "--json")
    report = json.loads(out)
    assert code == 1 and not report["clean"]
    assert any(named in line for line in report["quick_check"]), report


@pytest.mark.parametrize("name", ["documents-root", "every-page"])
def test_integrity_check_reports_damage_instead_of_raising(seeded: Path, name: str) -> None:
    DAMAGES[name][0](seeded)
    database = ctx_models.connect(seeded)
    try:
        report = integrity.check(database, repair=True)
    finally:
        database.close()
    assert not report.clean and report.repaired == {}
    assert any(DAMAGES[name][1] in line for line in report.quick_check), report.quick_check


def test_a_truncated_file_cannot_be_read_and_says_so(seeded: Path, run_cli) -> None:
    data = seeded.read_bytes()
    seeded.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli("check", "--db", str(seeded))
    assert code == 2 and out == "", (out, err)
    assert "truncated" in err and "run `ctx-models check`" not in err


def test_a_file_that_is_not_sqlite_still_cannot_be_read(tmp_path: Path, run_cli) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("just some text, long enough to have a header's length " * 4)
    code, out, err = run_cli("check", "--db", str(path))
    assert code == 2 and "not a SQLite database" in err and out == ""
