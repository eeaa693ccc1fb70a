"""The documentation runs: README's Python examples, module doctests, and the commands CI uses."""

from __future__ import annotations

import doctest
import importlib
import io
import re
import shlex
import sqlite3
from contextlib import redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    """The bodies of ``.. code-block:: <language>`` directives, dedented."""
    blocks = []
    pattern = re.compile(rf"^\.\. code-block:: {language}\n\n((?:    .*\n|\n)+)", re.MULTILINE)
    for match in pattern.finditer(README):
        lines = [line[4:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines).strip() + "\n")
    return blocks


def test_readme_python_examples_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    output = io.StringIO()
    blocks = code_blocks("python")
    assert len(blocks) >= 8
    with redirect_stdout(output):
        for block in blocks:
            exec(compile(block, "README.rst", "exec"), namespace)  # noqa: S102
    printed = output.getvalue().splitlines()
    assert "created 1" in printed
    assert "unchanged" in printed
    assert "float32 True" in printed
    assert "2 0 2" in printed  # the folder example, first run
    assert "(2, 26)" in printed and "1.000" in printed  # the embedder interface's example
    assert (tmp_path / "example" / "ctx.sqlite").exists()
    # The folder example's promise: a second run rewrites nothing.
    summary = namespace["store"].ingest_many(  # type: ignore[attr-defined]
        (
            {"source": "filesystem:notes", "source_id": p.name, "body": p.read_text(),
             "title": p.stem, "updated_at": int(p.stat().st_mtime)}
            for p in sorted((tmp_path / "example" / "notes").glob("*.txt"))
        ),
        embedder=namespace["embedder"],
    )
    assert (summary.created, summary.unchanged, summary.chunks) == (0, 2, 0)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one() -> None:
    section = README.split("Quick start\n-----------", 1)[1].split("Using it from Python", 1)[0]
    commands = [block.strip() for block in re.findall(r"\.\. code-block:: shell\n\n((?:    .*\n)+)", section)]
    install_and_seed, install_and_test = commands[0], commands[1]
    assert "\n" not in install_and_seed and "\n" not in install_and_test
    assert install_and_seed.endswith("ctx-models seed")
    assert "pip install '.[semantic]'" in install_and_seed
    assert "'.[test]'" in install_and_test and install_and_test.endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_test in ci.splitlines()


@pytest.mark.parametrize(
    "module",
    [
        "ctx_models",
        "ctx_models.store",
        "ctx_models.search",
        "ctx_models.integrity",
        "ctx_models.words",
        "ctx_models.snippets",
        "ctx_models.embedders",
        "ctx_models.demo.seed",
    ],
)
def test_module_doctests(module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_py_typed_marker_ships() -> None:
    assert (ROOT / "ctx_models" / "py.typed").exists()
    assert "py.typed" in (ROOT / "setup.cfg").read_text()


def _postgres_walkthrough() -> list[str]:
    section = README.split("PostgreSQL\n----------", 1)[1].split("The schema on PostgreSQL", 1)[0]
    blocks = re.findall(r"\.\. code-block:: shell\n\n((?:    .*\n)+)", section)
    walkthrough = next(b for b in blocks if "export CTX_MODELS_DB=" in b)
    return [line.strip() for line in walkthrough.splitlines() if line.strip()]


def _contract_rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        tables = ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")
        rows = {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
        rows["chunks_fts"] = sorted(conn.execute("SELECT chunk_id, document_id, text FROM chunks_fts"))
        return rows
    finally:
        conn.close()


@pytest.mark.backends("postgres")
def test_readme_postgres_walkthrough_runs(
    location: str, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README's PostgreSQL commands, as written, against a fresh schema of the test server."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("seed", "--db", ".ctx/data/ctx.sqlite")  # the quick start's store
    assert code == 0, err
    lines = _postgres_walkthrough()
    assert lines[0].startswith("export CTX_MODELS_DB=")
    monkeypatch.setenv("CTX_MODELS_DB", location)
    outputs = []
    try:
        for line in lines[1:]:
            argv = shlex.split(line.replace('"$CTX_MODELS_DB"', shlex.quote(location)))
            assert argv[0] == "ctx-models", line
            code, out, err = run_cli(*argv[1:])
            assert code == 0, f"{line}: {err}"
            outputs.append((line, out))
    finally:
        import ctx_models

        ctx_models.bound_database().close()
    inits = [out for line, out in outputs if line == "ctx-models init"]
    assert "created" in inits[0] and "already up to date" in inits[1]
    for line, out in outputs:
        if line.startswith("ctx-models search"):
            assert "runbooks/postgres-failover.md" in out.splitlines()[1], (line, out)  # first hit
    # SQLite -> PostgreSQL -> SQLite, with a seed in between that found nothing to do.
    assert _contract_rows(tmp_path / "moved.sqlite") == _contract_rows(tmp_path / ".ctx/data/ctx.sqlite")
