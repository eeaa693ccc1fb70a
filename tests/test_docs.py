"""The documentation runs: README's Python examples, module doctests, and the commands CI uses."""

from __future__ import annotations

import doctest
import importlib
import io
import re
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
