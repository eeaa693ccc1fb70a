"""`ctx-models search` on a database seeded by scripts/seed.py, on both backends.

Only the missing SQLite file is SQLite's alone.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RawPostgres, _with_search_path

import ctx_models
from ctx_models import search

pytestmark = pytest.mark.backends("sqlite", "postgres")

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[")
RESULT_LINE = re.compile(r"^\s*(\d+)\. \[(\d\.\d{3})\] (.+)$")
WHERE_LINE = re.compile(r"^    (\S+) · (.+) · updated (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)$")
EXPLAIN_LINE = re.compile(
    r"^    explain: keyword (\d\.\d{3}) · semantic (\d\.\d{3})( · ranks (keyword #\d+)?(, )?(semantic #\d+)?)?$"
)
FIELDS = {"id", "title", "source", "source_id", "source_url", "updated_at", "score", "snippet", "chunk_id"}
SOURCES = {"filesystem:docs", "git:platform", "jira:ops", "notes:meetings"}


def _seed(where: Path | str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CTX_MODELS_DB", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed.py"), "--db", str(where), "-q"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    conn: Any = sqlite3.connect(where) if isinstance(where, Path) else RawPostgres(where)
    try:
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] >= 20
        assert conn.execute("SELECT count(*) FROM chunk_vectors").fetchone()[0] > 0
    finally:
        conn.close()


@pytest.fixture(scope="module")
def seeded_stores(tmp_path_factory) -> Iterator[Callable[[str, str | None], Path | str]]:
    """Each backend's store, seeded once per module when a test first asks for it: a SQLite
    file, or a PostgreSQL schema (dropped at the end)."""
    import psycopg

    made: dict[str, Path | str] = {}
    schemas: list[tuple[str, str]] = []

    def get(backend: str, pg_url: str | None) -> Path | str:
        if backend not in made:
            if backend == "sqlite":
                where: Path | str = tmp_path_factory.mktemp("cli-search") / "seeded.sqlite"
            else:
                assert pg_url is not None
                schema = f"t_{uuid.uuid4().hex[:16]}"
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                schemas.append((pg_url, schema))
                where = _with_search_path(pg_url, schema)
            _seed(where)
            made[backend] = where
        return made[backend]

    yield get
    for pg_url, schema in schemas:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def seeded(backend, seeded_stores, request) -> Iterator[Path | str]:
    """The seeded store of the test's backend; the connection the CLI opened is closed after."""
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    yield seeded_stores(backend, pg_url)
    try:
        bound = ctx_models.bound_database()
    except ctx_models.CtxModelsError:
        return
    bound.close()


@pytest.fixture
def search_cli(run_cli, seeded):
    def run(*args: str) -> tuple[int, str, str]:
        return run_cli("search", *args, "--db", str(seeded))

    return run


def _json(search_cli, *args: str) -> list[dict]:
    code, out, err = search_cli(*args, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, list)
    return data


def _blocks(out: str) -> list[list[str]]:
    """The text output split into one list of lines per result."""
    blocks, current = [], []
    for line in out.splitlines():
        if RESULT_LINE.match(line):
            if current:
                blocks.append(current)
            current = [line]
        elif line.strip() and current:
            current.append(line)
    if current:
        blocks.append(current)
    return blocks


def test_hybrid_explain_text(search_cli):
    code, out, err = search_cli("postgres failover", "--mode", "hybrid", "--explain")
    assert code == 0, err
    assert err == ""
    blocks = _blocks(out)
    assert 1 <= len(blocks) <= 12
    for rank, block in enumerate(blocks, 1):
        number, score, _title = RESULT_LINE.match(block[0]).groups()
        assert int(number) == rank
        assert 0.0 <= float(score) <= 1.0
        assert WHERE_LINE.match(block[1]), block[1]
        explains = [EXPLAIN_LINE.match(line) for line in block if EXPLAIN_LINE.match(line)]
        assert len(explains) == 1, block
        keyword, semantic = float(explains[0].group(1)), float(explains[0].group(2))
        assert 0.0 <= keyword <= 1.0 and 0.0 <= semantic <= 1.0
        alpha = search.DEFAULT_ALPHA["rrf"]
        assert float(score) == pytest.approx((1 - alpha) * keyword + alpha * semantic, abs=2e-3)
    header = out.splitlines()
    assert re.match(r"signals: keyword: \d+ candidates \(words: postgres failover\) · "
                    r"semantic: \d+ candidates \(model \S+\)$", header[0]), header[0]
    assert header[1] == f"fusion:  rrf, alpha {search.DEFAULT_ALPHA['rrf']:.2f}"
    assert "postgres" in blocks[0][0].lower()
    scores = [float(RESULT_LINE.match(b[0]).group(2)) for b in blocks]
    assert scores == sorted(scores, reverse=True)


def test_no_explain_lines_without_flag(search_cli):
    code, out, _ = search_cli("postgres failover")
    assert code == 0
    assert _blocks(out)
    assert "explain:" not in out


def test_piped_output_is_plain(search_cli):
    """capsys stands for a pipe: no ANSI escapes and no >>> <<< markers."""
    code, out, _ = search_cli("postgres failover", "--explain")
    assert code == 0
    assert not ANSI.search(out)
    assert ">>>" not in out and "<<<" not in out
    # The highlighted words are still there, as plain text.
    snippet_lines = [b[-2] if b[-1].startswith("    explain:") else b[-1] for b in _blocks(out)]
    assert any("postgres" in line.lower() for line in snippet_lines)


def test_json_has_search_result_fields(search_cli):
    data = _json(search_cli, "postgres failover", "--explain")
    assert 1 <= len(data) <= 12
    for item in data:
        assert set(item) == FIELDS | {"explain"}
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", item["updated_at"])
        assert 0.0 <= item["score"] <= 1.0
        assert item["source"] in SOURCES
        assert set(item["explain"]) >= {"keyword", "semantic", "alpha", "keyword_candidates", "vector_candidates"}
    assert [i["score"] for i in data] == sorted((i["score"] for i in data), reverse=True)
    plain = _json(search_cli, "postgres failover")
    assert all(set(item) == FIELDS for item in plain)
    assert [i["id"] for i in plain] == [i["id"] for i in data]


def test_json_matches_library(search_cli, seeded):
    data = _json(search_cli, "kafka consumer lag", "--limit", "7")
    database = ctx_models.connect(seeded)
    try:
        expected = search.hybrid_search("kafka consumer lag", limit=7)
    finally:
        database.close()
    assert [i["id"] for i in data] == [r.id for r in expected]
    assert [i["score"] for i in data] == pytest.approx([r.score for r in expected])


def test_keyword_mode(search_cli):
    data = _json(search_cli, "postgres failover", "--mode", "keyword", "--explain")
    assert data
    for item in data:
        assert item["explain"]["alpha"] == 0.0
        assert item["explain"]["semantic"] == 0.0
        assert item["explain"]["vector_candidates"] == 0
        assert ">>>" not in item["snippet"]  # plain snippets unless --highlight
    marked = _json(search_cli, "postgres failover", "--mode", "keyword", "--highlight")
    assert all(">>>" in item["snippet"] and "<<<" in item["snippet"] for item in marked)
    assert [i["id"] for i in marked] == [i["id"] for i in data]
    code, out, _ = search_cli("postgres failover", "--mode", "keyword", "--explain")
    assert code == 0 and "alpha 0.00" in out and "signals: keyword:" in out and "semantic" not in out.split("\n")[0]


def test_semantic_mode(search_cli):
    data = _json(search_cli, "postgres failover", "--mode", "semantic", "--explain")
    assert data
    for item in data:
        assert item["explain"]["alpha"] == 1.0
        assert item["explain"]["keyword"] == 0.0
        assert item["explain"]["keyword_candidates"] == 0
        assert item["score"] == pytest.approx(item["explain"]["semantic"])
    assert data[0]["score"] == pytest.approx(1.0)
    # Semantic mode finds documents without the words, which keyword mode cannot.
    nonsense = _json(search_cli, "xyzzyplugh", "--mode", "semantic")
    assert _json(search_cli, "xyzzyplugh", "--mode", "keyword") == []
    assert isinstance(nonsense, list)


def test_modes_differ(search_cli):
    keyword = [i["id"] for i in _json(search_cli, "on-call handover", "--mode", "keyword", "--limit", "20")]
    semantic = [i["id"] for i in _json(search_cli, "on-call handover", "--mode", "semantic", "--limit", "20")]
    assert keyword and semantic
    assert keyword != semantic


def test_source_filter(search_cli):
    for source in ("jira:ops", "git:platform"):
        data = _json(search_cli, "postgres", "--source", source, "--limit", "20")
        assert data
        assert {item["source"] for item in data} == {source}
        code, out, _ = search_cli("postgres", "--source", source)
        assert code == 0
        where = [WHERE_LINE.match(b[1]).group(1) for b in _blocks(out)]
        assert where and set(where) == {source}
    assert _json(search_cli, "postgres", "--source", "no:such-source") == []
    code, out, _ = search_cli("postgres", "--source", "no:such-source")
    assert code == 0 and out.startswith("no results: ") and "source 'no:such-source'" in out


def test_since_filter(search_cli):
    everything = _json(search_cli, "postgres", "--limit", "50")
    assert any(item["updated_at"] < "2026-05-01" for item in everything)
    recent = _json(search_cli, "postgres", "--since", "2026-05-01", "--limit", "50")
    assert recent
    assert all(item["updated_at"] >= "2026-05-01T00:00:00Z" for item in recent)
    assert {i["id"] for i in recent} == {i["id"] for i in everything if i["updated_at"] >= "2026-05-01"}
    assert _json(search_cli, "postgres", "--since", "2030-01-01") == []


def test_source_and_since_together(search_cli):
    data = _json(search_cli, "postgres", "--source", "jira:ops", "--since", "2026-04-01", "--limit", "20")
    assert data
    assert all(i["source"] == "jira:ops" and i["updated_at"] >= "2026-04-01" for i in data)


def test_limit(search_cli):
    assert len(_json(search_cli, "postgres failover", "--limit", "3")) == 3
    assert len(_json(search_cli, "postgres failover", "--limit", "1")) == 1
    assert len(_json(search_cli, "postgres failover")) == 12
    code, out, _ = search_cli("postgres failover", "--limit", "2")
    assert code == 0 and len(_blocks(out)) == 2
    five = [i["id"] for i in _json(search_cli, "postgres failover", "--limit", "5")]
    assert five == [i["id"] for i in _json(search_cli, "postgres failover", "--limit", "12")][:5]


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_bad_limit_is_one_line_error(search_cli, limit):
    code, out, err = search_cli("postgres", "--limit", limit)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_alpha(search_cli):
    for alpha in ("0", "0.25", "1"):
        data = _json(search_cli, "postgres failover", "--alpha", alpha, "--explain", "--limit", "20")
        assert data
        for item in data:
            e = item["explain"]
            assert e["alpha"] == float(alpha)
            assert item["score"] == pytest.approx((1 - float(alpha)) * e["keyword"] + float(alpha) * e["semantic"])
    semantic = _json(search_cli, "postgres failover", "--mode", "semantic", "--limit", "20")
    alpha_one = _json(search_cli, "postgres failover", "--alpha", "1", "--limit", "20")
    assert [i["id"] for i in alpha_one][:5] == [i["id"] for i in semantic][:5]
    keyword = _json(search_cli, "postgres failover", "--mode", "keyword", "--limit", "20")
    alpha_zero = _json(search_cli, "postgres failover", "--alpha", "0", "--limit", "20")
    assert [i["id"] for i in alpha_zero] == [i["id"] for i in keyword]
    assert all(i["score"] > 0 for i in alpha_zero)


@pytest.mark.parametrize("alpha", ["5", "1.01", "-0.1", "-inf"])
def test_alpha_outside_0_to_1_is_an_error_not_clamped(search_cli, alpha):
    code, out, err = search_cli("postgres failover", f"--alpha={alpha}")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [err.strip()] and "--alpha must be from 0" in err


def test_fusion_and_all_words_options(search_cli):
    rrf = _json(search_cli, "postgres failover", "--explain")
    minmax = _json(search_cli, "postgres failover", "--fusion", "minmax", "--explain")
    assert {i["explain"]["fusion"] for i in rrf} == {"rrf"}
    assert {i["explain"]["fusion"] for i in minmax} == {"minmax"}
    assert {i["explain"]["alpha"] for i in minmax} == {0.6}
    every = _json(search_cli, "postgres replica lag", "--all-words", "--mode", "keyword", "--limit", "50")
    some = _json(search_cli, "postgres replica lag", "--mode", "keyword", "--limit", "50")
    assert every and len(every) < len(some)
    assert {i["id"] for i in every} <= {i["id"] for i in some}


def test_nan_alpha_is_one_line_error(search_cli):
    code, out, err = search_cli("postgres", "--alpha", "nan")
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_mode_exits_2_with_one_line(search_cli):
    code, out, err = search_cli("postgres", "--mode", "fuzzy")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "fuzzy" in lines[0]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-45", "2026/05/01", "2026-05-01T00:00:00"])
def test_bad_since_is_one_line_error(search_cli, since):
    code, out, err = search_cli("postgres", "--since", since)
    assert code != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "since" in lines[0]
    assert "Traceback" not in err


def test_hostile_queries_do_not_fail(search_cli):
    for query in ['"unbalanced', "NEAR(", "text:foo", "*:-", "🙂", "a" * 10_000, "postgres\x01failover"]:
        code, out, err = search_cli(query, "--mode", "keyword")
        assert code == 0, (query[:20], err)
        assert err == ""
    data = _json(search_cli, 'postgres" AND (failover', "--mode", "keyword")
    assert data == _json(search_cli, "postgres AND failover", "--mode", "keyword")


def test_no_results_message(search_cli):
    code, out, err = search_cli("zzqxqzz", "--mode", "keyword")
    assert code == 0
    assert out.strip() == "no results: no chunk holds any word of the question"
    assert _json(search_cli, "", "--mode", "keyword") == []


@pytest.mark.parametrize("nonsense", ["xyzzyplugh", "qwxzvbnm flurbotz", "zzqxqzz"])
def test_nonsense_finds_nothing_in_hybrid_mode(search_cli, nonsense):
    code, out, err = search_cli(nonsense)
    assert code == 0 and err == ""
    assert out.startswith("no results: ") and "semantic mode answers" in out
    assert _json(search_cli, nonsense) == []


def test_the_failover_question_finds_the_runbook_first(search_cli):
    data = _json(search_cli, "how do I promote a standby database")
    assert data[0]["source_id"] == "runbooks/postgres-failover.md"


# SQLite only (it takes no backend): a file that is not there; test_postgres has the missing database.
def test_missing_database_is_one_line_error(run_cli, tmp_path):
    code, out, err = run_cli("search", "postgres", "--db", str(tmp_path / "nope" / "missing.sqlite"))
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
