"""Command-line details a newcomer tripped on (issue 20, item 20), each with the fix's behaviour."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

import ctx_models
from ctx_models import search, store

BASE = 1_767_225_600


@pytest.fixture
def seeded(db_path: Path, run_cli) -> Path:
    assert run_cli("seed", "--dims", "32", "-q", "--db", str(db_path))[0] == 0
    return db_path


@pytest.fixture
def unembedded(tmp_path: Path) -> Path:
    path = tmp_path / "plain.sqlite"
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    store.ingest("notes", "a", "Kestrels hover over fields.", updated_at=BASE)
    db.close()
    return path


def test_json_with_no_result_keeps_the_list_and_says_why_on_stderr(seeded: Path, run_cli) -> None:
    code, out, err = run_cli("search", "xyzzyplugh", "--json", "--db", str(seeded))
    assert code == 0 and json.loads(out) == []
    assert err.startswith("no results: ") and "no chunk holds any word" in err and err.count("\n") == 1


def test_semantic_hint_only_when_semantic_mode_answers(seeded: Path, unembedded: Path, run_cli) -> None:
    code, out, _ = run_cli("search", "xyzzyplugh", "--db", str(seeded))
    assert code == 0 and "semantic mode answers without one" in out
    assert run_cli("search", "xyzzyplugh", "--mode", "semantic", "--db", str(seeded))[1].startswith(" 1.")
    code, out, _ = run_cli("search", "xyzzyplugh", "--db", str(unembedded))
    assert code == 0 and "semantic mode answers without one" not in out
    assert "semantic mode finds nothing either" in out and "no chunk has an embedding" in out
    results = search.hybrid_search("xyzzyplugh")
    assert "finds nothing either" in results.why_empty


@pytest.mark.parametrize("json_output", [False, True])
def test_an_unknown_models_warning_is_printed_once(seeded: Path, run_cli, json_output: bool) -> None:
    conn = sqlite3.connect(seeded)
    conn.execute("UPDATE embeddings SET model = 'nosuch-model'")
    conn.commit()
    conn.close()
    argv = ["search", "postgres failover", "--db", str(seeded)] + (["--json"] if json_output else [])
    code, out, err = run_cli(*argv)
    assert code == 0 and out
    assert err.count("no embedder is known for model 'nosuch-model'") == 1, err


def test_copy_refuses_db_and_config(seeded: Path, tmp_path: Path, run_cli) -> None:
    for option in ("--db", "--config"):
        code, out, err = run_cli(option, str(seeded), "copy", str(seeded), str(tmp_path / "copy.sqlite"))
        assert code == 1 and out == "" and "SOURCE and DEST" in err, err
    assert not (tmp_path / "copy.sqlite").exists()


def test_db_and_config_together_are_refused(seeded: Path, tmp_path: Path, run_cli) -> None:
    config = tmp_path / "ctx.toml"
    config.write_text(f'[db]\npath = "{tmp_path / "other.sqlite"}"\n')
    code, out, err = run_cli("stats", "--db", str(seeded), "--config", str(config))
    assert code == 1 and out == "" and "not both" in err


def test_highlight_needs_json(seeded: Path, run_cli) -> None:
    code, out, err = run_cli("search", "failover", "--highlight", "--db", str(seeded))
    assert code == 1 and out == "" and "--json" in err
    code, out, err = run_cli("search", "failover", "--highlight", "--json", "--db", str(seeded))
    assert code == 0 and ">>>" in out


def test_approximate_on_sqlite_says_it_searches_exactly(seeded: Path, run_cli) -> None:
    code, out, err = run_cli("search", "failover", "--approximate", "--db", str(seeded))
    assert code == 0 and out.startswith(" 1.")
    assert "SQLite searches exactly" in err and err.count("\n") == 1


@pytest.mark.backends("sqlite", "postgres")
def test_checkpoint_command_shows_sets_and_clears(db, location, run_cli) -> None:
    where = str(location)
    store.set_checkpoint("jira:ops", BASE)
    code, out, _ = run_cli("checkpoint", "jira:ops", "--db", where)
    assert code == 0 and out == f"jira:ops: {BASE} (2026-01-01T00:00:00Z)\n"
    code, out, _ = run_cli("checkpoint", "jira:ops", "--set", "42", "--db", where)
    assert code == 0 and store.get_checkpoint("jira:ops") == 42
    code, out, _ = run_cli("checkpoint", "jira:ops", "--clear", "--db", where)
    assert code == 0 and "cleared" in out and store.get_checkpoint("jira:ops") is None
    code, out, _ = run_cli("checkpoint", "jira:ops", "--clear", "--db", where)
    assert code == 0 and "nothing to clear" in out
    code, out, err = run_cli("checkpoint", "jira:ops", "--set", "soon", "--db", where)
    assert code == 1 and "integer" in err and store.get_checkpoint("jira:ops") is None
    code, out, err = run_cli("checkpoint", "jira:ops", "--set", "1", "--clear", "--db", where)
    assert code == 2
    assert store.clear_checkpoint("never") is False


def test_stayed_locked_advice_names_an_option_that_exists(seeded: Path, run_cli) -> None:
    holder = sqlite3.connect(seeded, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, out, err = run_cli("--lock-timeout", "0.2", "delete", "--source", "jira:ops", "--yes", "--db", str(seeded))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 1 and "stayed locked" in err and "--lock-timeout SECONDS" in err, err
    ctx_models.bound_database().close()
    code, out, err = run_cli("delete", "--source", "jira:ops", "--yes", "--lock-timeout", "5", "--db", str(seeded))
    assert code == 0, err
    assert run_cli("stats", "--lock-timeout", "-1", "--db", str(seeded))[0] == 1


def test_since_before_1970_finds_everything(seeded: Path, run_cli) -> None:
    assert search.parse_since("1969-12-31") == 0
    assert search.parse_since(dt.datetime(1900, 1, 1, tzinfo=dt.UTC)) == 0
    assert search.parse_since(-5) == 0
    everything = run_cli("search", "postgres failover", "--json", "--db", str(seeded))[1]
    code, out, err = run_cli("search", "postgres failover", "--since", "1969-12-31", "--json", "--db", str(seeded))
    assert code == 0 and json.loads(out) == json.loads(everything), err
    code, out, err = run_cli("search", "failover", "--since", "1969-13-31", "--db", str(seeded))
    assert code == 1 and "is not a date" in err
