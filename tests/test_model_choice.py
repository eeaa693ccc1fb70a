"""Which model a search embeds the question with when two are stored, and its fusion weight."""

from __future__ import annotations

import pytest

import ctx_models
from ctx_models import embedders, search, store
from ctx_models.embedders import HashingEmbedder


@pytest.fixture
def two_models(tmp_path, monkeypatch):
    """Three chunks of a model nobody here has ("gone-model"), one of hashing-v1-16."""
    monkeypatch.setattr(embedders, "_LOADED", {})
    db = ctx_models.connect(tmp_path / "s.sqlite")
    ctx_models.run_migrations(db)
    for source_id, text in (("a", "postgres failover"), ("b", "kafka lag"), ("c", "disk full")):
        store.ingest("docs", source_id, text)
    gone = [(c.id, "gone-model", [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]) for c in store.pending_chunks("x")]
    store.upsert_embeddings(gone)
    store.ingest("docs", "d", "postgres standby promote", embedder=HashingEmbedder(16))
    yield db
    db.close()


def test_the_stored_model_with_most_embeddings_that_loads_embeds_the_question(two_models):
    assert store.stats().models == {"gone-model": 3, "hashing-v1-16": 1}
    results = search.hybrid_search("postgres standby promote", explain=True)
    signal = results.signals["semantic"]
    assert signal.used and signal.note == "model hashing-v1-16", signal
    assert results[0].source_id == "d"
    with pytest.raises(ctx_models.EmbedderUnavailableError, match="gone-model"):
        search.vector_search("postgres", model="gone-model")


def test_with_none_loadable_the_first_model_s_reason_is_given(two_models, monkeypatch):
    def unavailable(name):
        raise ctx_models.EmbedderUnavailableError(f"no embedder is known for model {name!r}")

    monkeypatch.setattr(search, "embedder_for_model", unavailable)
    results = search.hybrid_search("postgres standby promote")
    assert not results.signals["semantic"].used
    assert "gone-model" in results.signals["semantic"].note


def test_a_model_s_own_fusion_weight_is_its_default(two_models, monkeypatch):
    assert search.hybrid_search("postgres standby promote").alpha == pytest.approx(search.DEFAULT_ALPHA["rrf"])
    monkeypatch.setitem(search.MODEL_ALPHA, "hashing-v1-16", {"rrf": 0.5})
    assert search.hybrid_search("postgres standby promote").alpha == 0.5
    assert search.hybrid_search("postgres standby promote", alpha=0.2).alpha == 0.2  # given wins
    assert search.hybrid_search("postgres standby promote", fusion="minmax").alpha == search.DEFAULT_ALPHA["minmax"]
