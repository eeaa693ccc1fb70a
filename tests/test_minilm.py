"""all-MiniLM-L6-v2, ctx's default model, from the shared folder: parity with
sentence-transformers, and a store ``ctx`` wrote answering semantic and hybrid questions."""

from __future__ import annotations

import json
import re
import sqlite3

import numpy as np
import pytest
from ctx_tool import create_contract_db, ctx_write_document
from shared_model import minilm_dir

import ctx_models
from ctx_models import embedders, model_files, search
from ctx_models.cli import main
from ctx_models.onnx_embedder import OnnxEmbedder


@pytest.fixture(scope="module")
def model_dir():
    return minilm_dir()


@pytest.fixture(scope="module")
def reference(model_dir):
    with (model_dir / "reference.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    assert len(rows) == 25
    return [r["text"] for r in rows], np.array([r["vector"] for r in rows], dtype=np.float32)


@pytest.fixture(scope="module")
def minilm(model_dir):
    return model_files.load("all-minilm-l6-v2", model_dir)


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """No network, and each test's registrations (``--model-path``) and loaded models its own."""
    monkeypatch.setattr(embedders, "_FACTORIES", dict(embedders._FACTORIES))
    monkeypatch.setattr(embedders, "_LOADED", {})
    monkeypatch.setenv("CTX_MODELS_OFFLINE", "1")
    for name in ("CTX_MODELS_MODEL_PATH", "CTX_MODELS_MODELS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_every_reference_vector_is_reproduced(minilm, reference):
    texts, vectors = reference
    assert (minilm.model, minilm.dims, minilm.pooling, minilm.max_length) == (
        "all-minilm-l6-v2", 384, "mean", 256,
    )
    ours = minilm.embed(texts)
    cosines = (ours * vectors).sum(axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(ours, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.9999, f"text {worst} {texts[worst][:40]!r}: cosine {cosines[worst]}"


def test_each_text_alone_gives_the_same_vector(minilm, reference):
    texts, vectors = reference
    for text, vector in zip(texts[:8], vectors[:8], strict=True):
        assert float(minilm.embed([text])[0] @ vector) / float(np.linalg.norm(vector)) >= 0.9999


DOCS = {
    "failover": "postgres failover runbook: promote the replica",
    "patroni": "Promote the most caught-up replica with patronictl failover, then point PgBouncer at the new primary.",
    "kafka": "Kafka consumer lag dashboard",
    "certs": "certificate renewal checklist",
    "disk": "What causes disk exhaustion on the primary?",
    "markup": "<html><body>markup</body></html>",
}


@pytest.fixture
def ctx_store(tmp_path, reference):
    """A store as ``ctx`` writes it, with the sentence-transformers vectors of reference.jsonl."""
    texts, vectors = reference
    path = tmp_path / "ctx.sqlite"
    conn = create_contract_db(str(path))
    for source_id, text in DOCS.items():
        vector = vectors[texts.index(text)]
        ctx_write_document(
            conn, "docs", source_id, [text], title=source_id, vectors=[vector.tolist()],
            model="all-minilm-l6-v2",
        )
    conn.close()
    return path


def _search_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_ctx_store_answers_semantic_and_hybrid_questions_given_only_the_model_path(
    ctx_store, model_dir, capsys, monkeypatch
):
    code, out, err = _search_cli(
        capsys, "search", "renewing TLS certs before they expire", "--mode", "semantic",
        "--db", str(ctx_store), "--model-path", str(model_dir), "--json",
    )
    assert code == 0, err
    assert json.loads(out)[0]["source_id"] == "certs"
    code, out, err = _search_cli(
        capsys, "search", "how do I promote a standby to primary", "--db", str(ctx_store),
        "--model-path", str(model_dir), "--explain",
    )
    assert code == 0, err
    assert re.search(r"semantic: \d+ candidates? \(model all-minilm-l6-v2\)", out), out
    first = next(line for line in out.splitlines() if line.startswith(" 1. "))
    assert "failover" in first or "patroni" in first
    assert "semantic search skipped" not in err


def test_the_api_with_the_model_path_in_the_environment(ctx_store, model_dir, monkeypatch):
    monkeypatch.setenv("CTX_MODELS_MODEL_PATH", str(model_dir))
    db = ctx_models.connect(ctx_store)
    try:
        results = search.hybrid_search("kafka consumers falling behind", explain=True)
        assert results.signals["semantic"].used, results.signals
        assert results.alpha == 0.5  # the model's own fusion weight
        assert results[0].source_id == "kafka"
        semantic = search.vector_search("which machine ran out of storage space?")
        top = sqlite3.connect(ctx_store).execute(
            "SELECT source_id FROM documents WHERE id = ?", (semantic[0].document_id,)
        ).fetchone()[0]
        assert top == "disk"
    finally:
        db.close()


def test_without_the_files_a_ctx_store_still_answers_by_keyword_and_says_why(
    ctx_store, capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("CTX_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, err = _search_cli(capsys, "search", "kafka consumer lag", "--db", str(ctx_store))
    assert code == 0 and "Kafka consumer lag dashboard" in out
    assert err.count("\n") == 1 and "model all-minilm-l6-v2 is not on this machine" in err, (out, err)
    code, out, err = _search_cli(
        capsys, "search", "kafka consumer lag", "--mode", "semantic", "--db", str(ctx_store)
    )
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "tokenizer.json" in err and "--model-path" in err


def test_embed_then_search_with_the_model_from_the_command_line(tmp_path, model_dir, capsys, monkeypatch):
    db_path = tmp_path / "s.sqlite"
    code, out, err = _search_cli(capsys, "seed", "--dims", "16", "-q", "--db", str(db_path))
    assert code == 0, err
    code, out, err = _search_cli(
        capsys, "embed", "--model", "all-minilm-l6-v2", "--model-path", str(model_dir),
        "--replace", "--yes", "-q", "--db", str(db_path),
    )
    assert code == 0, err
    assert out.startswith("embedded ") and out.strip().endswith("with all-minilm-l6-v2")
    code, out, err = _search_cli(
        capsys, "search", "how do I promote a standby database", "--explain",
        "--db", str(db_path), "--model-path", str(model_dir),
    )
    assert code == 0, err
    assert re.search(r"semantic: \d+ candidates? \(model all-minilm-l6-v2\)", out), out


def test_the_default_is_minilm_when_its_files_are_here(model_dir, monkeypatch):
    monkeypatch.setenv("CTX_MODELS_MODELS_DIR", str(model_dir.parent))
    chosen = embedders.default_embedder()
    assert isinstance(chosen, OnnxEmbedder) and chosen.model == "all-minilm-l6-v2"
