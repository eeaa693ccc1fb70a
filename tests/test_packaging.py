"""What ships: a wheel that works away from the repository, and an sdist whose tests can run."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build(kind: str, out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-c", f"import setuptools.build_meta as b; print(b.build_{kind}({str(out)!r}))"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build("wheel", tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_the_demo_corpus_and_the_type_marker(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("ctx_models/demo/corpus.py", "ctx_models/demo/questions.py",
                 "ctx_models/demo/seed.py", "ctx_models/py.typed",
                 "ctx_models/backends/sqlite/keyword.py"):
        assert name in names, name
    assert not any(name.startswith(("tests/", "scripts/")) for name in names)


def test_a_wheel_installed_away_from_the_repository_seeds_searches_checks_and_backs_up(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("CTX_MODELS_DB", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ctx_models", *args], cwd=work, env=env,
            capture_output=True, text=True, timeout=300,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import ctx_models; print(ctx_models.__file__)"],
        cwd=work, env=env, capture_output=True, text=True, timeout=60,
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout  # not the repository's copy
    seeded = run("seed")
    assert seeded.returncode == 0, seeded.stderr
    assert "demo corpus: 20 documents (20 new" in seeded.stdout
    assert (work / ".ctx" / "data" / "ctx.sqlite").exists()
    found = run("search", "how do I promote a standby database", "--json")
    assert found.returncode == 0, found.stderr
    assert '"source_id": "runbooks/postgres-failover.md"' in found.stdout.split("}")[0]
    checked = run("check")
    assert checked.returncode == 0 and "clean" in checked.stdout, checked.stdout + checked.stderr
    backed = run("backup", "copy.sqlite")
    assert backed.returncode == 0 and "clean" in backed.stdout, backed.stderr
    assert run("seed").stdout.count("20 unchanged") == 1


def test_the_sdist_carries_the_tests_scripts_docs_and_license(tmp_path: Path) -> None:
    sdist = _build("sdist", tmp_path)
    names = {name.split("/", 1)[1] for name in tarfile.open(sdist).getnames() if "/" in name}
    for name in ("LICENSE", "README.rst", "docs/storage-contract.md", "tests/conftest.py",
                 "tests/test_store.py", "tests/ctx_tool.py", "tests/workers/writer.py",
                 "scripts/bench.py", "scripts/benchmarks/quality.py", "scripts/seed.py",
                 "ctx_models/demo/corpus.py"):
        assert name in names, name


def test_the_readme_links_nothing_outside_the_repository() -> None:
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert "../" not in readme
    for line in readme.splitlines():
        if line.startswith(".. _") and ": " in line:
            target = line.split(": ", 1)[1].strip()
            assert target.startswith("https://") or (ROOT / target).exists(), target
