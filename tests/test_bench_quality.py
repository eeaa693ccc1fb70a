"""The relevance benchmark (scripts/benchmarks/quality.py): its metrics, its loader, and one demo run."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks import core, corpora  # noqa: E402
from benchmarks import quality as bench_quality  # noqa: E402
from benchmarks.quality import ndcg_at_k, recall_at_k  # noqa: E402

# --------------------------------------------------------------------------- metrics


def test_perfect_ranking_scores_one() -> None:
    grades = {"a": 2, "b": 1, "c": 1}
    assert ndcg_at_k(["a", "b", "c"], grades) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "c", "b", "x"], grades) == pytest.approx(1.0)  # equal grades swap
    assert recall_at_k(["a", "b", "c"], grades) == 1.0


def test_ndcg_hand_computed() -> None:
    # DCG = 2/log2(3) + 1/log2(4) = 1.7619; ideal = 2/1 + 1/log2(3) + 1/log2(4) = 3.1309.
    grades = {"a": 2, "b": 1, "c": 1}
    assert ndcg_at_k(["x", "a", "b"], grades) == pytest.approx(0.5627273, abs=1e-7)
    expected = (2 / math.log2(3) + 1 / math.log2(4)) / (2 + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k(["x", "a", "b"], grades) == pytest.approx(expected)


def test_ndcg_cuts_ranking_and_ideal_at_k() -> None:
    grades = {f"d{i}": 1 for i in range(12)}
    assert ndcg_at_k([f"d{i}" for i in range(10)], grades) == pytest.approx(1.0)
    assert ndcg_at_k([f"x{i}" for i in range(10)] + ["d0"], grades) == 0.0
    assert ndcg_at_k(["a"], {"a": 1}, k=1) == 1.0


def test_nothing_found_or_nothing_relevant_scores_zero() -> None:
    assert ndcg_at_k([], {"a": 1}) == 0.0
    assert recall_at_k([], {"a": 1}) == 0.0
    assert ndcg_at_k(["a"], {}) == 0.0
    assert recall_at_k(["a"], {}) == 0.0


def test_duplicates_count_once() -> None:
    grades = {"a": 1, "b": 1}
    assert recall_at_k(["a", "a", "a"], grades) == 0.5
    assert recall_at_k(["a", "a", "b"], grades, k=2) == 1.0  # the repeat does not use up a place
    assert ndcg_at_k(["a", "a", "b"], grades) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "a"], {"a": 1, "b": 1}) == ndcg_at_k(["a"], {"a": 1, "b": 1})


def test_recall_at_k_counts_only_the_top_k() -> None:
    grades = {"a": 1, "b": 1, "c": 1, "d": 1}
    assert recall_at_k(["a", "x", "b", "c"], grades, k=3) == 0.5


# --------------------------------------------------------------------------- loading


def test_beir_loader_keeps_judged_queries_and_positive_grades(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "Statins", "text": "and cancer"}\n'
        '{"_id": "d2", "title": "", "text": "no title"}\n'
    )
    (tmp_path / "queries_test.jsonl").write_text(
        '{"_id": "q1", "text": "statins"}\n{"_id": "q2", "text": "unjudged"}\n'
    )
    (tmp_path / "qrels_test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    collection = corpora.load_beir(tmp_path)
    assert collection.documents == [
        ("d1", "Statins", "Statins\n\nand cancer"),
        ("d2", None, "no title"),
    ]
    assert collection.queries == [("q1", "statins")]
    assert collection.qrels == {"q1": {"d1": 2}}


def test_missing_files_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    args = argparse.Namespace(
        workdir=str(tmp_path), data=str(tmp_path), embedder=None, sweep=False, limit_queries=None
    )
    with pytest.raises(SystemExit) as exit_:
        bench_quality.bench_quality(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "queries_test.jsonl" in err


# --------------------------------------------------------------------------- the command

NUMBER = r"(\d+\.\d+)"


def run_demo(tmp_path: Path, monkeypatch, capsys, **options) -> tuple[str, dict]:
    """``quality --data demo`` in-process, results written under tmp_path; (stdout, JSON)."""
    monkeypatch.setattr(core, "ROOT", tmp_path)
    settings = {"data": "demo", "embedder": None, "sweep": False, "limit_queries": None}
    args = argparse.Namespace(workdir=str(tmp_path / "data"), **{**settings, **options})
    bench_quality.bench_quality(args)
    out = capsys.readouterr().out
    data = json.loads((tmp_path / "bench-results" / "quality.json").read_text())
    return out, data


def test_demo_run_prints_the_four_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    out, data = run_demo(tmp_path, monkeypatch, capsys)
    assert re.search(r"collection demo: 20 documents, \d+ chunks, 49 queries; embedder ", out)
    labels = ["bm25 floor (bare sqlite3)", "keyword", "semantic", bench_quality.hybrid_label()]
    for label in labels:
        row = re.search(rf"^{re.escape(label)} +{NUMBER} +{NUMBER} +(\d+) +{NUMBER}$", out, re.M)
        assert row, f"no row for {label!r} in:\n{out}"
        ndcg, recall = float(row.group(1)), float(row.group(2))
        assert 0.0 <= ndcg <= 1.0 and 0.0 <= recall <= 1.0
        assert data["runs"][label]["ndcg@10"] == pytest.approx(ndcg, abs=5e-5)
    assert list(data["runs"]) == labels


def test_demo_sweep_marks_the_defaults_and_matches_the_main_run(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    rrf_k = bench_quality.search.RRF_K
    out, data = run_demo(tmp_path, monkeypatch, capsys, sweep=True, limit_queries=4)
    assert len(data["sweep"]) == 120
    starred = [line for line in out.splitlines() if line.startswith("* ")]
    assert len(starred) == 1 and " rrf " in starred[0]
    (default,) = [row for row in data["sweep"] if row["default"]]
    assert default["ndcg@10"] == data["runs"][bench_quality.hybrid_label()]["ndcg@10"]
    assert bench_quality.search.RRF_K == rrf_k  # restored after the sweep


def test_results_and_databases_go_under_the_repository() -> None:
    # core.py sits two folders down; results belong in <repo>/bench-results, not scripts/.
    assert core.ROOT == ROOT
