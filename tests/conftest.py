"""Shared fixtures: a fresh bound database per test, the hashing embedder, the CLI in-process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ctx_models
from ctx_models import cli
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ctx_tool.py


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ctx.sqlite"


@pytest.fixture
def db(db_path: Path) -> Iterator[object]:
    """A new database with the schema, bound to the models."""
    database = ctx_models.connect(db_path)
    ctx_models.run_migrations(database)
    yield database
    database.close()


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder(384)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse errors and --help
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
