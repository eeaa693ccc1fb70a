"""Min-max fusion keeps every keyword match: a match is evidence even when it normalises to 0."""

from __future__ import annotations

import pytest

from ctx_models import search, store

pytestmark = pytest.mark.backends("sqlite", "postgres")

BASE = 1_767_225_600


@pytest.fixture
def three_matches(db):
    """Three documents that each hold the question's every word, with different BM25 scores."""
    ids = [
        store.ingest("s", "strong", "kestrel kestrel kestrel falcon", updated_at=BASE).document_id,
        store.ingest("s", "middle", "kestrel falcon and other birds of prey", updated_at=BASE).document_id,
        store.ingest(
            "s", "weak",
            "a long note that mentions a kestrel once, a falcon once, and many other things "
            "about hedges, fields, weather, farms, roads, rivers and the habits of small mammals",
            updated_at=BASE,
        ).document_id,
        store.ingest("s", "other", "nothing about birds here", updated_at=BASE).document_id,
    ]
    return ids


@pytest.mark.parametrize(
    "options",
    [
        dict(mode="keyword", fusion="minmax"),
        dict(mode="hybrid", fusion="minmax", alpha=0.0),
        dict(mode="hybrid", fusion="minmax", alpha=0.6),
        dict(mode="keyword", fusion="rrf"),
        dict(mode="hybrid", fusion="rrf", alpha=0.0),
    ],
)
def test_every_keyword_match_is_kept(three_matches, options):
    strong, middle, weak, other = three_matches
    # No vectors are stored: only the keyword list counts, and its lowest entry normalises to 0.
    found = search.hybrid_search("kestrel falcon", **options)
    assert set(r.id for r in found) == {strong, middle, weak}, found.signals
    assert found[0].id == strong and found[-1].id == weak
    assert other not in {r.id for r in found}


def test_minmax_with_vectors_keeps_lowest_keyword_and_lowest_semantic(db):
    """Both lists' lowest entries normalise to 0; each is evidence while its signal has weight."""
    a, _ = store.upsert_document("s", "a", "x", updated_at=BASE)
    store.replace_chunks(a.id, ["heron heron heron"], [[1.0, 0.0]], "m2")
    b, _ = store.upsert_document("s", "b", "x", updated_at=BASE)
    store.replace_chunks(b.id, ["heron and a lot of other words in this chunk"], [[0.6, 0.8]], "m2")
    c, _ = store.upsert_document("s", "c", "x", updated_at=BASE)
    store.replace_chunks(c.id, ["nothing to see"], [[0.8, 0.6]], "m2")
    d = store.ingest("s", "d", "heron with many more words than the others hold, and no vector").document_id
    found = search.hybrid_search("heron", [1.0, 0.0], alpha=0.6, fusion="minmax", explain=True)
    # d: the lowest keyword score, no vector; b: the lowest semantic score. Both are kept.
    assert {r.id for r in found} == {a.id, b.id, c.id, d}
    # At alpha 1 the keyword signal weighs nothing: d, a keyword match only, has no evidence left.
    only_semantic = search.hybrid_search("heron", [1.0, 0.0], alpha=1.0, fusion="minmax")
    assert {r.id for r in only_semantic} == {a.id, b.id, c.id}
    # At alpha 0 the semantic signal weighs nothing: c, a vector match only, is left out.
    only_keyword = search.hybrid_search("heron", [1.0, 0.0], alpha=0.0, fusion="minmax")
    assert {r.id for r in only_keyword} == {a.id, b.id, d}
