"""keyword_search and hybrid_search (ctx_models.search) against the storage contract's read behaviour."""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import shutil

import numpy as np
import pytest

import ctx_models
from ctx_models import search, store
from ctx_models.embedders import HashingEmbedder
from ctx_models.errors import QuerySyntaxError, ValidationError, VectorError
from ctx_models.search import Candidate, SearchResult

BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# --------------------------------------------------------------------------- helpers


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunk_texts(db) -> dict[str, str]:
    return dict(db.execute_sql("SELECT id, text FROM chunks").fetchall())


def _doc_rows(db) -> dict[str, tuple]:
    """document id -> (source, updated_at)."""
    return {r[0]: (r[1], r[2]) for r in db.execute_sql("SELECT id, source, updated_at FROM documents")}


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\w+", text)}


def _fts_reference(db, match: str) -> list[tuple[str, float]]:
    """(chunk id, −rank) straight from FTS5, best first."""
    rows = db.execute_sql(
        "SELECT chunk_id, rank FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY rank", (match,)
    ).fetchall()
    return [(cid, -rank) for cid, rank in rows]


def _ids(results) -> list[str]:
    return [r.id for r in results]


def _normalise(cands: list[Candidate]) -> dict[str, float]:
    if not cands:
        return {}
    lo, hi = min(c.score for c in cands), max(c.score for c in cands)
    if hi == lo:
        return {c.chunk_id: 1.0 for c in cands}
    return {c.chunk_id: (c.score - lo) / (hi - lo) for c in cands}


def reference_hybrid(db, query, vector, *, mode="hybrid", alpha=0.6, ck=80, cv=80, limit=12,
                     source=None, since=None, model=None):
    """The contract's hybrid algorithm, steps 1-5, over keyword_search and vector_search.

    Returns [(document id, score, best chunk ids)], best first.
    """
    a = 0.0 if mode == "keyword" else 1.0 if mode == "semantic" else min(1.0, max(0.0, float(alpha)))
    keyword = search.keyword_search(query, limit=ck, source=source, since=since) if mode != "semantic" else []
    vectors = search.vector_search(vector, limit=cv, source=source, since=since, model=model) if mode != "keyword" else []
    k, v = _normalise(keyword), _normalise(vectors)
    doc_of = {c.chunk_id: c.document_id for c in keyword + vectors}
    per_doc: dict[str, list[tuple[float, str]]] = {}
    for chunk_id, doc_id in doc_of.items():
        score = (1.0 - a) * k.get(chunk_id, 0.0) + a * v.get(chunk_id, 0.0)
        per_doc.setdefault(doc_id, []).append((score, chunk_id))
    docs = _doc_rows(db)
    best = {}
    for doc_id, scored in per_doc.items():
        top = max(s for s, _ in scored)
        best[doc_id] = (top, {c for s, c in scored if s == top})
    order = sorted(best, key=lambda d: (-best[d][0], -docs[d][1], d))
    return [(d, best[d][0], best[d][1]) for d in order[:limit]]


def _assert_same_as_reference(results, expected, keyword=None, vectors=None):
    assert [r.id for r in results] == [d for d, _, _ in expected]
    for result, (_, score, chunks) in zip(results, expected):
        assert result.score == pytest.approx(score, abs=1e-9)
        assert result.chunk_id in chunks


# --------------------------------------------------------------------------- fixtures


FRUIT = {
    "a": "apple banana orchard",
    "b": "apple cherry pie",
    "c": "banana cherry smoothie",
    "d": "snake_case identifiers and text: foo bar",
    "e": "near the apple tree or not",
}


@pytest.fixture
def fruit(db):
    """Small documents; returns source_id -> document id."""
    return {sid: store.ingest("fruit", sid, body, updated_at=BASE + i).document_id
            for i, (sid, body) in enumerate(FRUIT.items())}


VOCAB = (
    "postgres failover replica primary kafka consumer lag tls certificate rotation deploy freeze "
    "latency alert runbook incident storage cache index vector keyword hybrid search"
).split()
SOURCES = ("docs", "git", "jira")


def _build_corpus():
    rng = random.Random(42)
    items = []
    for i in range(60):
        paragraphs = [" ".join(rng.choice(VOCAB) for _ in range(rng.randint(3, 14))) for _ in range(rng.randint(1, 5))]
        items.append({
            "source": SOURCES[i % 3],
            "source_id": f"doc-{i:03d}",
            "title": f"Document {i}",
            "source_url": f"https://example.com/{i}" if i % 2 else None,
            "body": "\n\n".join(paragraphs),
            "updated_at": BASE + (i * 7 % 60) * DAY + i,
        })
    store.ingest_many(items, embedder=HashingEmbedder(384), max_tokens=20)


@pytest.fixture(scope="module")
def corpus_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("search-corpus") / "template.sqlite"
    database = ctx_models.connect(path)
    ctx_models.run_migrations(database)
    _build_corpus()
    database.close()
    return path


@pytest.fixture
def corpus(corpus_template, tmp_path):
    """A bound database holding 60 multi-chunk documents embedded with the hashing embedder."""
    path = tmp_path / "corpus.sqlite"
    shutil.copyfile(corpus_template, path)
    database = ctx_models.connect(path)
    yield database
    database.close()


EMBEDDER = HashingEmbedder(384)


def _vec(text: str) -> np.ndarray:
    return EMBEDDER.embed([text])[0]


# --------------------------------------------------------------------------- keyword: basics


def test_keyword_returns_candidates_with_contract_scores(db, fruit):
    hits = search.keyword_search("apple")
    assert all(isinstance(h, Candidate) for h in hits)
    assert {h.document_id for h in hits} == {fruit["a"], fruit["b"], fruit["e"]}
    reference = _fts_reference(db, '"apple"')
    ref = dict(reference)
    assert {h.chunk_id: h.score for h in hits} == pytest.approx(ref)
    assert [h.score for h in hits] == pytest.approx([s for _, s in reference])
    assert {h.chunk_id for h in hits} == {c for c, _ in reference}
    assert all(h.score > 0 for h in hits)  # BM25 rank is negative, so −rank is positive
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_keyword_scores_are_negated_rank_on_larger_corpus(corpus):
    hits = search.keyword_search("postgres failover", limit=80)
    reference = _fts_reference(corpus, '"postgres" "failover"')
    assert len(hits) == min(80, len(reference)) > 5
    ref = dict(reference)
    for h in hits:
        assert h.score == pytest.approx(ref[h.chunk_id], rel=1e-12)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert sorted(ref.values(), reverse=True)[: len(hits)] == pytest.approx([h.score for h in hits])


def test_keyword_terms_are_anded(db, fruit):
    assert [h.document_id for h in search.keyword_search("apple banana")] == [fruit["a"]]
    assert {h.document_id for h in search.keyword_search("cherry")} == {fruit["b"], fruit["c"]}
    assert search.keyword_search("apple smoothie") == []
    texts = _chunk_texts(db)
    for h in search.keyword_search("cherry banana"):
        assert {"cherry", "banana"} <= _words(texts[h.chunk_id])


def test_keyword_limit(corpus):
    everything = search.keyword_search("postgres", limit=10_000)
    assert len(everything) > 10
    top = search.keyword_search("postgres", limit=7)
    assert [h.chunk_id for h in top] == [h.chunk_id for h in everything[:7]]
    assert len(search.keyword_search("postgres")) == min(80, len(everything))


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "10", 10_001])
def test_keyword_bad_limit_raises(db, fruit, limit):
    with pytest.raises(ValidationError):
        search.keyword_search("apple", limit=limit)


def test_keyword_query_must_be_text(db, fruit):
    with pytest.raises(ValidationError):
        search.keyword_search(b"apple")  # type: ignore[arg-type]


def test_snippet_markers_and_ellipsis(db):
    words = [f"filler{i}" for i in range(200)]
    words[100] = "needle"
    doc = store.ingest("s", "long", " ".join(words), updated_at=BASE).document_id
    (hit,) = search.keyword_search("needle")
    assert hit.document_id == doc
    assert ">>>needle<<<" in hit.snippet
    assert hit.snippet.startswith("...") and hit.snippet.endswith("...")
    tokens = re.findall(r"\w+", hit.snippet)
    assert len(tokens) <= 48
    assert "filler0" not in tokens and "filler199" not in tokens


def test_snippet_short_text_whole_with_markers(db, fruit):
    (hit,) = search.keyword_search("orchard banana")
    assert hit.snippet == "apple >>>banana<<< >>>orchard<<<"


# --------------------------------------------------------------------------- keyword: hostile input


HOSTILE_EQUIVALENTS = [
    ('"apple"', "apple"),
    ('apple"', "apple"),
    ("'apple'", "apple"),
    ('"apple banana', "apple banana"),
    ("apple*", "apple"),
    ("*", ""),
    ("-apple", "apple"),
    ("apple -banana", "apple banana"),
    ("apple:banana", "apple banana"),
    ("text:foo", "text foo"),
    ("((apple", "apple"),
    ("apple)", "apple"),
    ("[apple] {banana}", "apple banana"),
    ("NEAR(apple", "NEAR apple"),
    ("NEAR(apple cherry, 2)", "NEAR apple cherry 2"),
    ("apple AND", "apple AND"),
    ("OR apple", "OR apple"),
    ("NOT apple", "NOT apple"),
    ("apple OR cherry", "apple OR cherry"),
    ("^apple", "apple"),
    ("apple + banana", "apple banana"),
    ("🍎apple🍌banana🍒", "apple banana"),
    ("apple\x00banana", "apple banana"),
    ("\x00apple\x00", "apple"),
    ("apple\u200bbanana", "apple banana"),
    ("apple;DROP TABLE chunks;--", "apple DROP TABLE chunks"),
    ("snake_case", "snake_case"),
]


@pytest.mark.parametrize("hostile,plain", HOSTILE_EQUIVALENTS)
def test_hostile_queries_equal_their_terms(db, fruit, hostile, plain):
    hits = search.keyword_search(hostile)
    expected = search.keyword_search(plain)
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in expected]
    # And the terms rule, checked against the text: every hit contains every term.
    terms = _words(hostile)
    texts = _chunk_texts(db)
    for h in hits:
        assert terms <= _words(texts[h.chunk_id])


def test_operators_are_plain_terms(db, fruit):
    # 'OR', 'NOT' and 'NEAR' are words to match, ANDed, not operators.
    assert search.keyword_search("apple OR cherry") == []
    assert [h.document_id for h in search.keyword_search("apple OR not")] == [fruit["e"]]
    assert [h.document_id for h in search.keyword_search("NEAR(apple")] == [fruit["e"]]
    assert [h.document_id for h in search.keyword_search("text:foo")] == [fruit["d"]]
    assert [h.document_id for h in search.keyword_search("AND identifiers")] == [fruit["d"]]


@pytest.mark.parametrize("query", ["", " ", "\t\n", "!!!", '"', '""', "()", "*", "-", ":", "🙂🙃", "\x00", "'-*:\"()^+"])
def test_queries_without_terms_return_nothing(db, fruit, query):
    assert search.keyword_search(query) == []
    assert search.hybrid_search(query, mode="keyword") == []


def test_ten_thousand_character_queries(db, fruit):
    matching = ("apple banana " * 769).ljust(10_000, "!")
    assert len(matching) == 10_000
    hits = search.keyword_search(matching)
    assert [h.document_id for h in hits] == [fruit["a"]]
    rng = random.Random(1)
    noise = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5)) for _ in range(1700))[:10_000]
    assert search.keyword_search(noise) == []
    assert search.keyword_search("x" * 10_000) == []
    assert search.keyword_search('"(' * 5_000) == []
    assert search.keyword_search("apple " + "🙂" * 9_994) != []
    assert search.hybrid_search(matching, mode="keyword")[0].id == fruit["a"]


def test_unicode_terms(db):
    doc = store.ingest("s", "u", "Zürich café naïve 東京", updated_at=BASE).document_id
    assert [h.document_id for h in search.keyword_search("zürich")] == [doc]
    assert [h.document_id for h in search.keyword_search("Café!")] == [doc]


# --------------------------------------------------------------------------- keyword: raw


def test_raw_fts5_syntax(db, fruit):
    assert {h.document_id for h in search.keyword_search("apple OR cherry", raw=True)} == {
        fruit["a"], fruit["b"], fruit["c"], fruit["e"]
    }
    assert [h.document_id for h in search.keyword_search('"apple banana"', raw=True)] == [fruit["a"]]
    assert search.keyword_search('"banana apple"', raw=True) == []
    assert {h.document_id for h in search.keyword_search("app*", raw=True)} == {fruit["a"], fruit["b"], fruit["e"]}
    assert [h.document_id for h in search.keyword_search("NEAR(cherry pie, 1)", raw=True)] == [fruit["b"]]
    assert search.keyword_search("NEAR(apple smoothie, 1)", raw=True) == []
    assert {h.document_id for h in search.keyword_search("apple NOT banana", raw=True)} == {fruit["b"], fruit["e"]}
    assert [h.document_id for h in search.keyword_search("text:orchard", raw=True)] == [fruit["a"]]


@pytest.mark.parametrize(
    "query", ['"unbalanced', "apple AND", "AND", "(apple", "NEAR(apple", "nosuchcolumn:apple", "apple)", "*", "apple\x00banana"]
)
def test_raw_syntax_error_raises_query_syntax_error(db, fruit, query):
    with pytest.raises(QuerySyntaxError):
        search.keyword_search(query, raw=True)
    # The same text without raw is just words.
    search.keyword_search(query)


def test_query_syntax_error_is_a_validation_error():
    assert issubclass(QuerySyntaxError, ValidationError)


# --------------------------------------------------------------------------- keyword: filters


@pytest.fixture
def split_corpus(db):
    """20 best-ranked matches in source A (old), 15 weaker matching documents in source B (new)."""
    embedder = HashingEmbedder(384)
    a_ids, b_ids = [], []
    for i in range(20):
        body = "postgres failover postgres failover"
        a_ids.append(store.ingest("A", f"a{i}", body, updated_at=BASE + i, embedder=embedder).document_id)
    for i in range(15):
        body = f"postgres failover notes with filler words number{i} " + " ".join(f"extra{j}" for j in range(i + 5))
        b_ids.append(store.ingest("B", f"b{i}", body, updated_at=BASE + 100 * DAY + i, embedder=embedder).document_id)
    # Unrelated documents so the filter has something to exclude in B too.
    for i in range(5):
        store.ingest("B", f"other{i}", f"kafka consumer lag {i}", updated_at=BASE + 100 * DAY, embedder=embedder)
    return a_ids, b_ids


def test_keyword_source_filter_inside_sql(split_corpus):
    a_ids, b_ids = split_corpus
    unfiltered = search.keyword_search("postgres failover", limit=20)
    assert {h.document_id for h in unfiltered} == set(a_ids)  # the ctx tool's post-filter would find no B
    hits = search.keyword_search("postgres failover", limit=10, source="B")
    assert len(hits) == 10
    assert {h.document_id for h in hits} <= set(b_ids)
    full = [h for h in search.keyword_search("postgres failover", limit=100) if h.document_id in set(b_ids)]
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in full[:10]]
    assert len(search.keyword_search("postgres failover", limit=80, source="B")) == 15
    assert search.keyword_search("postgres failover", source="nope") == []


def test_keyword_since_filter_inside_sql(split_corpus):
    a_ids, b_ids = split_corpus
    cutoff = BASE + 100 * DAY
    day = dt.date(2026, 4, 11)
    assert _iso(cutoff).startswith("2026-04-11")
    forms = [
        cutoff,
        day,
        "2026-04-11",
        dt.datetime(2026, 4, 11, tzinfo=dt.UTC),
        dt.datetime(2026, 4, 11, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        float(cutoff),
    ]
    for since in forms:
        hits = search.keyword_search("postgres failover", limit=10, since=since)
        assert len(hits) == 10, since
        assert {h.document_id for h in hits} <= set(b_ids)
    # Inclusive, and one second later drops the document at exactly the cutoff.
    assert len(search.keyword_search("postgres failover", since=cutoff)) == 15
    assert len(search.keyword_search("postgres failover", since=cutoff + 1)) == 14
    both = search.keyword_search("postgres failover", since=BASE + 10, source="A")
    assert {h.document_id for h in both} == set(a_ids[10:])


@pytest.mark.parametrize(
    "since",
    ["yesterday", "2026-13-01", "2026-02-30", "2026/04/11", "11-04-2026", "", "2026-04-11T00:00:00",
     dt.datetime(2026, 4, 11), -5, 1.5, True, [2026]],
)
def test_keyword_bad_since_raises(split_corpus, since):
    with pytest.raises(ValidationError):
        search.keyword_search("postgres", since=since)


def test_bad_source_raises(db, fruit):
    with pytest.raises(ValidationError):
        search.keyword_search("apple", source="")
    with pytest.raises(ValidationError):
        search.keyword_search("apple", source=3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hybrid


QUERIES = ["postgres failover", "vector", "kafka lag", "cache index search", "runbook incident"]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.6, 1.0])
def test_hybrid_matches_reference_algorithm(corpus, query, alpha):
    vector = _vec(query)
    results = search.hybrid_search(query, vector, alpha=alpha, limit=20)
    expected = reference_hybrid(corpus, query, vector, alpha=alpha, limit=20)
    assert len(results) == min(20, len(expected))
    _assert_same_as_reference(results, expected)


@pytest.mark.parametrize("query", QUERIES[:3])
def test_hybrid_reference_small_candidate_lists_and_filters(corpus, query):
    vector = _vec(query)
    for kwargs in (
        dict(ck=5, cv=7, limit=12),
        dict(ck=30, cv=3, limit=8),
        dict(ck=80, cv=80, limit=50, source="git"),
        dict(ck=10, cv=10, limit=10, since=BASE + 30 * DAY),
        dict(ck=15, cv=15, limit=10, source="jira", since="2026-01-20"),
    ):
        ck, cv = kwargs.pop("ck"), kwargs.pop("cv")
        results = search.hybrid_search(query, vector, candidates_keyword=ck, candidates_vector=cv, **kwargs)
        expected = reference_hybrid(corpus, query, vector, ck=ck, cv=cv, **kwargs)
        _assert_same_as_reference(results, expected)


def test_hybrid_result_fields(corpus):
    results = search.hybrid_search("postgres failover", _vec("postgres failover"), limit=30)
    assert results and all(isinstance(r, SearchResult) for r in results)
    rows = {
        r[0]: r[1:]
        for r in corpus.execute_sql("SELECT id, title, source, source_id, source_url, updated_at FROM documents")
    }
    chunk_doc = dict(corpus.execute_sql("SELECT id, document_id FROM chunks").fetchall())
    for r in results:
        title, source, source_id, url, updated = rows[r.id]
        assert (r.title, r.source, r.source_id, r.source_url) == (title, source, source_id, url)
        assert ISO.match(r.updated_at)
        assert r.updated_at == _iso(updated)
        assert chunk_doc[r.chunk_id] == r.id
        assert 0.0 <= r.score <= 1.0
        assert isinstance(r.snippet, str) and r.snippet
        assert r.explain is None
        data = r.to_dict()
        assert set(data) == {"id", "title", "source", "source_id", "source_url", "updated_at", "score", "snippet", "chunk_id"}
    assert len({r.id for r in results}) == len(results)  # one result per document


@pytest.mark.parametrize("query", QUERIES)
def test_hybrid_scores_in_unit_interval_and_sorted(corpus, query):
    for alpha in (0.0, 0.25, 0.6, 1.0):
        results = search.hybrid_search(query, _vec(query), alpha=alpha, limit=60)
        assert all(0.0 <= r.score <= 1.0 for r in results)
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
        assert results[0].score == pytest.approx(1.0) or alpha not in (0.0, 1.0)


def _doc_order_from(cands: list[Candidate], updated: dict[str, tuple]) -> list[str]:
    best: dict[str, float] = {}
    for c in cands:
        best[c.document_id] = max(best.get(c.document_id, -math.inf), c.score)
    return sorted(best, key=lambda d: (-best[d], -updated[d][1], d))


@pytest.mark.parametrize("query", QUERIES)
def test_alpha_one_orders_as_vector_search(corpus, query):
    vector = _vec(query)
    docs = _doc_rows(corpus)
    n_chunks = corpus.execute_sql("SELECT count(*) FROM chunk_vectors").fetchone()[0]
    expected = _doc_order_from(search.vector_search(vector, limit=n_chunks), docs)
    assert len(expected) == 60
    for kwargs in (dict(alpha=1.0), dict(mode="semantic"), dict(alpha=5), dict(mode="semantic", alpha=0.2)):
        results = search.hybrid_search(query, vector, candidates_vector=n_chunks, limit=60, **kwargs)
        assert _ids(results) == expected, kwargs


@pytest.mark.parametrize("query", QUERIES)
def test_alpha_zero_orders_as_keyword_search(corpus, query):
    vector = _vec(query)
    docs = _doc_rows(corpus)
    keyword = search.keyword_search(query, limit=80)
    expected = _doc_order_from(keyword, docs)
    keyword_mode = search.hybrid_search(query, mode="keyword", limit=60)
    assert _ids(keyword_mode) == expected[:60]
    assert keyword_mode == search.hybrid_search(query, vector, mode="keyword", limit=60)
    for alpha in (0.0, -1, -0.5):
        results = search.hybrid_search(query, vector, alpha=alpha, limit=60)
        positive = [r for r in results if r.score > 0]
        assert _ids(positive) == [r.id for r in keyword_mode if r.score > 0]
        assert [r.score for r in positive] == pytest.approx([r.score for r in keyword_mode if r.score > 0])
        assert all(r.score == 0 for r in results[len(positive):])


def test_keyword_mode_needs_no_vector_and_equals_alpha_zero(corpus):
    query = "kafka consumer lag"
    keyword_mode = search.hybrid_search(query, None, mode="keyword", limit=12, explain=True)
    assert keyword_mode
    for r in keyword_mode:
        assert r.explain["alpha"] == 0.0
        assert r.explain["semantic"] == 0.0
        assert r.explain["vector_candidates"] == 0
        assert r.score == pytest.approx(r.explain["keyword"])
    # With no vector signal, mode keyword is the contract's alpha = 0 over keyword candidates.
    expected = reference_hybrid(corpus, query, None, mode="keyword", limit=12)
    _assert_same_as_reference(keyword_mode, expected)


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_vector_modes_need_a_vector(corpus, mode):
    with pytest.raises(VectorError):
        search.hybrid_search("postgres failover", None, mode=mode)
    with pytest.raises(VectorError):
        search.hybrid_search("postgres failover", mode=mode)


def test_hybrid_bad_vector(corpus):
    bad = _vec("postgres").copy()
    bad[0] = np.nan
    with pytest.raises(VectorError):
        search.hybrid_search("postgres", bad)
    with pytest.raises(VectorError):  # DimensionMismatchError is a VectorError
        search.hybrid_search("postgres", np.ones(10))


@pytest.mark.parametrize("mode", ["bogus", "", "KEYWORD", None])
def test_unknown_mode_raises(corpus, mode):
    with pytest.raises(ValidationError):
        search.hybrid_search("postgres", _vec("postgres"), mode=mode)


def test_alpha_is_clamped(corpus):
    query, vector = "postgres failover", _vec("postgres failover")
    for outside, inside in ((5, 1.0), (1.0000001, 1.0), (float("inf"), 1.0), (-1, 0.0), (-0.01, 0.0), (float("-inf"), 0.0)):
        got = search.hybrid_search(query, vector, alpha=outside, limit=40, explain=True)
        want = search.hybrid_search(query, vector, alpha=inside, limit=40, explain=True)
        assert [(r.id, r.score, r.chunk_id) for r in got] == [(r.id, r.score, r.chunk_id) for r in want]
        assert all(r.explain["alpha"] == inside for r in got)


@pytest.mark.parametrize("alpha", [float("nan"), "0.5", None, True])
def test_bad_alpha_raises(corpus, alpha):
    with pytest.raises(ValidationError):
        search.hybrid_search("postgres", _vec("postgres"), alpha=alpha)


def test_empty_query_returns_nothing(corpus):
    for query in ("", "   ", "\n"):
        assert search.hybrid_search(query, _vec("postgres")) == []
        assert search.hybrid_search(query, _vec("postgres"), mode="semantic") == []
        assert search.hybrid_search(query, mode="keyword") == []


def test_explain(corpus):
    query, vector = "tls certificate rotation", _vec("tls certificate rotation")
    results = search.hybrid_search(query, vector, alpha=0.35, candidates_keyword=9, candidates_vector=11,
                                   limit=15, explain=True)
    keyword = search.keyword_search(query, limit=9)
    vectors = search.vector_search(vector, limit=11)
    k, v = _normalise(keyword), _normalise(vectors)
    assert results
    for r in results:
        e = r.explain
        assert set(e) >= {"keyword", "semantic", "alpha", "keyword_candidates", "vector_candidates"}
        assert e["alpha"] == 0.35
        assert e["keyword_candidates"] == len(keyword)
        assert e["vector_candidates"] == len(vectors) == 11
        assert e["keyword"] == pytest.approx(k.get(r.chunk_id, 0.0))
        assert e["semantic"] == pytest.approx(v.get(r.chunk_id, 0.0))
        assert 0.0 <= e["keyword"] <= 1.0 and 0.0 <= e["semantic"] <= 1.0
        assert r.score == pytest.approx(0.65 * e["keyword"] + 0.35 * e["semantic"])
        assert r.to_dict()["explain"] == e


def test_document_score_is_best_chunk_with_its_snippet(db):
    embedder = HashingEmbedder(384)
    body = "\n\n".join([
        "kafka consumer lag",
        "postgres primary failover runbook with patroni",
        "storage bucket lifecycle cost",
    ])
    doc = store.ingest("s", "multi", body, updated_at=BASE, embedder=embedder, max_tokens=12)
    store.ingest("s", "other", "postgres notes", updated_at=BASE, embedder=embedder)
    chunks = db.execute_sql("SELECT id, text FROM chunks WHERE document_id = ? ORDER BY chunk_index",
                            (doc.document_id,)).fetchall()
    assert len(chunks) == 3
    query = "postgres failover"
    results = search.hybrid_search(query, embedder.embed([query])[0], explain=True)
    top = results[0]
    assert top.id == doc.document_id
    assert top.chunk_id == chunks[1][0]
    assert ">>>postgres<<<" in top.snippet and ">>>failover<<<" in top.snippet
    keyword = {c.chunk_id: c for c in search.keyword_search(query)}
    assert top.snippet == keyword[chunks[1][0]].snippet
    assert top.score == pytest.approx(1.0)
    assert len([r for r in results if r.id == doc.document_id]) == 1
    # In semantic mode the snippet is the best chunk's plain text.
    semantic = search.hybrid_search(query, embedder.embed([query])[0], mode="semantic")
    best = [r for r in semantic if r.id == doc.document_id][0]
    assert best.chunk_id == chunks[1][0]
    assert best.snippet == chunks[1][1][:240]
    assert ">>>" not in best.snippet


def test_single_signal_documents_surface(db):
    k_doc = store.ingest("s", "keyword-only", "zebra stripes", updated_at=BASE).document_id  # no vector
    v_doc, _ = store.upsert_document("s", "vector-only", "lion mane", updated_at=BASE + 1)
    store.replace_chunks(v_doc.id, ["lion mane"], [[1.0, 0.0, 0.0, 0.0]], "m4")
    w_doc, _ = store.upsert_document("s", "weak", "giraffe neck", updated_at=BASE + 2)
    store.replace_chunks(w_doc.id, ["giraffe neck"], [[0.0, 1.0, 0.0, 0.0]], "m4")
    results = search.hybrid_search("zebra", [1.0, 0.0, 0.0, 0.0], alpha=0.6, explain=True)
    by_id = {r.id: r for r in results}
    assert _ids(results) == [v_doc.id, k_doc, w_doc.id]
    assert by_id[k_doc].explain["keyword"] == 1.0  # a one-entry list normalises to 1.0
    assert by_id[k_doc].explain["semantic"] == 0.0
    assert by_id[k_doc].score == pytest.approx(0.4)
    assert by_id[v_doc.id].explain["keyword"] == 0.0
    assert by_id[v_doc.id].explain["semantic"] == 1.0
    assert by_id[v_doc.id].score == pytest.approx(0.6)
    assert by_id[w_doc.id].score == 0.0
    assert by_id[k_doc].snippet == ">>>zebra<<< stripes"
    assert by_id[v_doc.id].snippet == "lion mane"
    # alpha 0.3: the keyword-only document wins.
    assert _ids(search.hybrid_search("zebra", [1.0, 0.0, 0.0, 0.0], alpha=0.3))[0] == k_doc


def test_ties_broken_by_updated_at_then_id(db):
    embedder = HashingEmbedder(384)
    stamps = [BASE + 300, BASE + 100, BASE + 300, BASE + 200, BASE + 300, BASE + 100, BASE + 200]
    ids = [store.ingest("s", f"same-{i}", "identical tie breaking text", updated_at=t, embedder=embedder).document_id
           for i, t in enumerate(stamps)]
    store.ingest("s", "weaker", "identical tie breaking text with more words to lower it", updated_at=BASE + 999,
                 embedder=embedder)
    updated = dict(zip(ids, stamps))
    expected = sorted(ids, key=lambda d: (-updated[d], d))
    vector = embedder.embed(["identical tie"])[0]
    for kwargs in (dict(), dict(alpha=0.0), dict(alpha=1.0), dict(mode="keyword"), dict(mode="semantic")):
        first = search.hybrid_search("identical tie", None if kwargs.get("mode") == "keyword" else vector, **kwargs)
        assert _ids(first)[:7] == expected, kwargs
        assert len({r.score for r in first[:7]}) == 1
        for _ in range(3):
            again = search.hybrid_search("identical tie", None if kwargs.get("mode") == "keyword" else vector, **kwargs)
            assert [(r.id, r.score, r.chunk_id, r.snippet) for r in again] == [
                (r.id, r.score, r.chunk_id, r.snippet) for r in first
            ]


def test_hybrid_filters_return_limit_results(split_corpus):
    a_ids, b_ids = split_corpus
    query = "postgres failover"
    vector = HashingEmbedder(384).embed([query])[0]
    unfiltered = search.hybrid_search(query, vector, candidates_keyword=20, candidates_vector=20, limit=20)
    assert set(_ids(unfiltered)) == set(a_ids)  # a post-filter would leave nothing for B
    for kwargs in (dict(source="B"), dict(since=BASE + 100 * DAY), dict(since="2026-04-11", source="B")):
        results = search.hybrid_search(query, vector, candidates_keyword=20, candidates_vector=20, limit=10, **kwargs)
        assert len(results) == 10, kwargs
        assert set(_ids(results)) <= set(b_ids)
        assert all(r.source == "B" for r in results)
        assert all(r.updated_at >= "2026-04-11T00:00:00Z" for r in results)
    semantic = search.hybrid_search(query, vector, mode="semantic", candidates_vector=20, limit=10, source="B")
    assert len(semantic) == 10 and set(_ids(semantic)) <= set(b_ids)
    keyword = search.hybrid_search(query, mode="keyword", candidates_keyword=20, limit=10, source="B")
    assert len(keyword) == 10 and set(_ids(keyword)) <= set(b_ids)


@pytest.mark.parametrize("since", ["not a date", "2026-02-30", dt.datetime(2026, 1, 1)])
def test_hybrid_bad_since_raises(split_corpus, since):
    with pytest.raises(ValidationError):
        search.hybrid_search("postgres", HashingEmbedder(384).embed(["postgres"])[0], since=since)


@pytest.mark.parametrize("kwargs", [dict(limit=0), dict(candidates_keyword=0), dict(candidates_vector=-3), dict(limit=1.5)])
def test_hybrid_bad_limits_raise(split_corpus, kwargs):
    with pytest.raises(ValidationError):
        search.hybrid_search("postgres", HashingEmbedder(384).embed(["postgres"])[0], **kwargs)


def test_hybrid_limit(corpus):
    vector = _vec("postgres failover")
    many = search.hybrid_search("postgres failover", vector, limit=40)
    assert len(many) == 40
    assert _ids(search.hybrid_search("postgres failover", vector, limit=5)) == _ids(many)[:5]
    assert len(search.hybrid_search("postgres failover", vector)) == 12


def test_hybrid_model_restricts_vectors(db):
    a, _ = store.upsert_document("s", "a", "alpha", updated_at=BASE)
    store.replace_chunks(a.id, ["alpha"], [[1.0, 0.0, 0.0]], "m-one")
    b, _ = store.upsert_document("s", "b", "beta", updated_at=BASE)
    store.replace_chunks(b.id, ["beta"], [[1.0, 0.1, 0.0]], "m-two")
    both = search.hybrid_search("gamma", [1.0, 0.0, 0.0], mode="semantic", explain=True)
    assert set(_ids(both)) == {a.id, b.id}
    only_two = search.hybrid_search("gamma", [1.0, 0.0, 0.0], mode="semantic", model="m-two", explain=True)
    assert _ids(only_two) == [b.id]
    assert only_two[0].explain["vector_candidates"] == 1
