"""Embedders: WordLlama offline, the registry of model names, and the default with its fallback."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ctx_models
from ctx_models import embedders, search, store
from ctx_models.embedders import (
    HashingEmbedder,
    WordLlamaEmbedder,
    default_embedder,
    embedder_for_model,
    register_embedder,
)
from ctx_models.errors import EmbedderUnavailableError, ValidationError


def test_wordllama_loads_and_embeds_without_any_connection_attempt():
    """In a fresh process, with every socket connect and DNS lookup made to fail loudly."""
    script = textwrap.dedent(
        """
        import socket
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(args)
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from ctx_models.embedders import WordLlamaEmbedder
        matrix = WordLlamaEmbedder().embed(["how do I promote a standby database", ""])
        assert matrix.shape == (2, 256), matrix.shape
        assert not attempts, attempts
        print("ok", attempts)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok []"


def test_wordllama_vectors_are_unit_length_and_empty_text_is_zero():
    embedder = embedder_for_model(WordLlamaEmbedder.model)
    matrix = embedder.embed(["postgres failover", "", "   ", "kafka consumer lag"])
    assert matrix.dtype == np.float32 and matrix.shape == (4, 256)
    assert np.isfinite(matrix).all()
    norms = np.linalg.norm(matrix, axis=1)
    assert norms[[0, 3]] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert norms[1] == 0.0 and norms[2] == 0.0
    assert embedder.embed([]).shape == (0, 256)


def test_wordllama_is_semantic():
    """Related texts are closer than unrelated ones, without sharing words."""
    embedder = embedder_for_model(WordLlamaEmbedder.model)
    car, automobile, banana = embedder.embed(["car", "automobile", "banana"])
    assert car @ automobile > car @ banana


def test_embedders_are_found_by_the_stored_model_name():
    assert isinstance(embedder_for_model("wordllama-l2-supercat-256"), WordLlamaEmbedder)
    hashing = embedder_for_model("hashing-v1-97")
    assert isinstance(hashing, HashingEmbedder) and hashing.dims == 97
    assert embedder_for_model("hashing-v1-97") is hashing  # loaded once
    with pytest.raises(EmbedderUnavailableError, match="register_embedder"):
        embedder_for_model("text-embedding-3-small")
    with pytest.raises(ValidationError):
        embedder_for_model("hashing-v1-0")


def test_registered_embedders_serve_searches(db):
    class Constant:
        model, dims = "constant-3", 3

        def embed(self, texts):
            return np.tile(np.array([1.0, 0.5, 0.0], dtype=np.float32), (len(texts), 1))

    register_embedder("constant-3", Constant)
    store.ingest("docs", "a", "alpha words", embedder=Constant())
    assert [c.document_id for c in search.vector_search("anything")] == [
        ctx_models.Document.get().id
    ]
    with pytest.raises(ValidationError):
        register_embedder("", Constant)
    with pytest.raises(ValidationError):
        register_embedder("x", "not callable")  # type: ignore[arg-type]


def test_default_is_wordllama_else_hashing_with_one_warning(monkeypatch, caplog):
    assert isinstance(default_embedder(), WordLlamaEmbedder)
    monkeypatch.setitem(sys.modules, "wordllama", None)  # as if the extra were not installed
    monkeypatch.setattr(embedders, "_LOADED", {})
    monkeypatch.setattr(embedders, "_warned_fallback", False)
    with caplog.at_level(logging.WARNING, logger="ctx_models.embedders"):
        first = default_embedder()
        second = default_embedder()
    assert isinstance(first, HashingEmbedder) and first.dims == 384 and second is first
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pip install 'ctx-models[semantic]'" in warnings[0].getMessage()
    with pytest.raises(EmbedderUnavailableError, match=r"pip install 'ctx-models\[semantic\]'"):
        WordLlamaEmbedder()


@pytest.mark.parametrize("dims", [0, -1, 65_537, 2_000_000_000, True, 1.5])
def test_absurd_hashing_sizes_are_refused_before_allocating(dims):
    with pytest.raises(ValidationError):
        HashingEmbedder(dims)  # type: ignore[arg-type]


def test_loading_wordllama_leaves_the_applications_logging_alone():
    """wordllama configures the root logger at import; the embedder undoes that."""
    script = textwrap.dedent(
        """
        import logging
        from ctx_models.embedders import WordLlamaEmbedder
        WordLlamaEmbedder().embed(["x"])
        root = logging.getLogger()
        print(root.level == logging.WARNING, root.handlers == [])
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
