"""``scripts/bench.py embed``: its table and results, run in-process on a tiny model."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest
from tiny_models import make_model_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks import core  # noqa: E402
from benchmarks import embed as bench_embed  # noqa: E402


@pytest.fixture()
def tiny_minilm(tmp_path: Path) -> Path:
    # all-minilm-l6-v2's vector length, so the registered model's check passes.
    directory, _ = make_model_dir(tmp_path / "model", dims=384)
    return directory


def run(tmp_path: Path, monkeypatch, capsys, model_dir: Path, torch_dir: Path | None = None):
    monkeypatch.setattr(core, "ROOT", tmp_path)
    args = argparse.Namespace(
        model="all-minilm-l6-v2",
        model_path=str(model_dir),
        torch_model_path=str(torch_dir) if torch_dir else None,
        data=str(tmp_path / "no-such-collection"),  # absent: the demo corpus
        texts=12,
    )
    bench_embed.bench_embed(args)
    out = capsys.readouterr().out
    return out, json.loads((tmp_path / "bench-results" / "embed.json").read_text())


def test_the_table_the_goals_and_the_results(tmp_path, monkeypatch, capsys, tiny_minilm) -> None:
    out, data = run(tmp_path, monkeypatch, capsys, tiny_minilm)
    assert out.startswith("12 chunks of demo")
    ours = re.search(
        r"^all-minilm-l6-v2 \(onnxruntime\) +([\d.]+) +([\d.]+) +([\d.]+) .* (1\.0000\d\d|0\.9999\d\d)$", out, re.M
    )
    assert ours, out  # our own row agrees with itself: the lowest cosine is 1
    assert float(ours.group(1)) > 0
    # The torch row names why it has no figures: the ONNX folder holds no PyTorch weights.
    assert re.search(
        rf"^all-minilm-l6-v2 \(sentence-transformers, torch\) +no PyTorch weights in {re.escape(str(tiny_minilm))} ",
        out,
        re.M,
    ), out
    assert re.search(r"^wordllama-l2-supercat-256 +[\d.]+ .* +-$", out, re.M), out
    assert "goal: one question p50 <= 15 ms:" in out
    assert "at least as fast as sentence-transformers" not in out  # no torch figures, no verdict
    rows = {row["label"]: row for row in data["rows"]}
    assert rows["all-minilm-l6-v2 (onnxruntime)"]["min_cosine_to_ours"] == pytest.approx(1.0, abs=1e-5)
    assert "error" in rows["all-minilm-l6-v2 (sentence-transformers, torch)"]
    assert "sample" not in rows["all-minilm-l6-v2 (onnxruntime)"]  # vectors stay out of the JSON
    assert data["torch_model_dir"] == str(tiny_minilm)

