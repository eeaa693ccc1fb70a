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
from ctx_models.backends.sqlite import keyword as fts
from ctx_models.embedders import HashingEmbedder
from ctx_models.errors import QuerySyntaxError, ValidationError, VectorError
from ctx_models.search import Candidate, SearchResult

# Search behaves the same on both backends; what is FTS5's own (BM25 scores, its syntax) is
# marked SQLite only.
pytestmark = pytest.mark.backends("sqlite", "postgres")

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


def _reciprocal(cands: list[Candidate]) -> dict[str, float]:
    """RRF per chunk, equal scores sharing the better rank."""
    out, rank, previous = {}, 0, None
    for position, c in enumerate(cands, 1):
        if c.score != previous:
            rank, previous = position, c.score
        out[c.chunk_id] = (search.RRF_K + 1) / (search.RRF_K + rank)
    return out


def _informative(vector, vectors, source=None, since=None, model=None) -> bool:
    """The contract's "a list whose scores are all equal is left out", over every vector searched."""
    everything = search.vector_search(vector, limit=10_000, source=source, since=since, model=model)
    return len(everything) == 1 or everything[0].score - everything[-1].score >= np.finfo(np.float64).eps


def reference_hybrid(db, query, vector, *, mode="hybrid", alpha=None, fusion="rrf", ck=80, cv=80, limit=12,
                     source=None, since=None, model=None):
    """The contract's hybrid algorithm, steps 1-5, with ctx_models' deliberate differences.

    Fusion by min-max (the contract's) or reciprocal rank; a semantic list whose
    scores are all equal, or an empty keyword list in hybrid mode, is left out;
    vector hits scoring 0 or less do not count, nor a hit only a signal of weight 0 found
    (a keyword match min-max normalises to 0 still counts).
    Returns [(document id, score, best chunk ids)], best first.
    """
    if alpha is None:
        alpha = search.DEFAULT_ALPHA[fusion]
    a = 0.0 if mode == "keyword" else 1.0 if mode == "semantic" else float(alpha)
    keyword = search.keyword_search(query, limit=ck, source=source, since=since) if mode != "semantic" else []
    vectors = []
    if mode == "semantic" or (mode == "hybrid" and keyword):
        vectors = search.vector_search(vector, limit=cv, source=source, since=since, model=model)
        if vectors and not _informative(vector, vectors, source, since, model):
            vectors = []
        vectors = [c for c in vectors if c.score > 0]
    normalise = _normalise if fusion == "minmax" else _reciprocal
    k, v = normalise(keyword), normalise(vectors)
    doc_of = {c.chunk_id: c.document_id for c in keyword + vectors}
    per_doc: dict[str, list[tuple[float, str]]] = {}
    for chunk_id, doc_id in doc_of.items():
        if not ((a < 1.0 and chunk_id in k) or (a > 0.0 and chunk_id in v)):
            continue  # no signal of non-zero weight found it
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

@pytest.mark.backends("sqlite")  # FTS5's own: BM25 scores as −rank

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

@pytest.mark.backends("sqlite")  # FTS5's own: BM25 scores as −rank

def test_keyword_scores_are_negated_rank_on_larger_corpus(corpus):
    hits = search.keyword_search("postgres failover", limit=80)
    reference = _fts_reference(corpus, '"postgres" OR "failover"')
    assert len(hits) == min(80, len(reference)) > 5
    ref = dict(reference)
    for h in hits:
        assert h.score == pytest.approx(ref[h.chunk_id], rel=1e-12)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert sorted(ref.values(), reverse=True)[: len(hits)] == pytest.approx([h.score for h in hits])


def test_keyword_words_are_optional_and_bm25_ranks(db, fruit):
    """Every word optional: more of the question's words (and rarer ones) rank first."""
    assert {h.document_id for h in search.keyword_search("apple")} == {fruit["a"], fruit["b"], fruit["e"]}
    assert {h.document_id for h in search.keyword_search("cherry orchard")} == {
        fruit["a"], fruit["b"], fruit["c"]
    }
    both = store.ingest("fruit", "both", "cherry orchard", updated_at=BASE - 1).document_id
    assert search.keyword_search("cherry orchard")[0].document_id == both  # the one with both words
    assert {h.document_id for h in search.keyword_search("cherry")} == {fruit["b"], fruit["c"], both}
    texts = _chunk_texts(db)
    for h in search.keyword_search("cherry banana"):
        assert {"cherry", "banana"} & _words(texts[h.chunk_id])
    # A question whose words are mostly absent still finds the chunk with the one that is there.
    assert [h.document_id for h in search.keyword_search("which fruit goes in a smoothie")] == [fruit["c"]]


@pytest.mark.backends("sqlite")  # FTS5's BM25: a word's IDF
def test_words_in_more_than_half_of_the_chunks_are_left_out(db, fruit):
    # "apple" is in more than half of the chunks: BM25 gives it no weight (FTS5 clamps its
    # IDF to 1e-6), so it is left out and cannot drag in chunks that match nothing else.
    assert {h.document_id for h in search.keyword_search("apple smoothie")} == {fruit["c"]}


def test_keyword_all_words_are_required_with_match_all(db, fruit):
    assert [h.document_id for h in search.keyword_search("apple banana", match="all")] == [fruit["a"]]
    assert search.keyword_search("apple smoothie", match="all") == []
    texts = _chunk_texts(db)
    for h in search.keyword_search("cherry banana", match="all"):
        assert {"cherry", "banana"} <= _words(texts[h.chunk_id])
    with pytest.raises(ValidationError):
        search.keyword_search("apple", match="some")


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
    hit = search.keyword_search("orchard banana")[0]
    assert hit.document_id == fruit["a"]
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


@pytest.mark.backends("sqlite")  # FTS5's own: on PostgreSQL and, or, not are English stop words
@pytest.mark.parametrize("hostile,plain", HOSTILE_EQUIVALENTS)
def test_hostile_queries_equal_their_terms(db, fruit, hostile, plain):
    hits = search.keyword_search(hostile)
    expected = search.keyword_search(plain)
    assert [(h.chunk_id, h.score) for h in hits] == [(h.chunk_id, h.score) for h in expected]
    # And the word rule, checked against the text: every hit contains a word of the question.
    terms = _words(hostile)
    texts = _chunk_texts(db)
    for h in hits:
        assert terms & _words(texts[h.chunk_id])
    strict = search.keyword_search(hostile, match="all")
    assert [(h.chunk_id, h.score) for h in strict] == [
        (h.chunk_id, h.score) for h in search.keyword_search(plain, match="all")
    ]
    for h in strict:
        assert terms <= _words(texts[h.chunk_id])

@pytest.mark.backends("sqlite")  # FTS5's own: on PostgreSQL and, or, not are English stop words

def test_operators_are_plain_terms(db, fruit):
    # 'OR', 'NOT' and 'NEAR' are words to match, not operators.
    assert search.keyword_search("apple OR cherry", match="all") == []
    assert [h.document_id for h in search.keyword_search("apple OR not", match="all")] == [fruit["e"]]
    assert [h.document_id for h in search.keyword_search("NEAR(apple", match="all")] == [fruit["e"]]
    assert [h.document_id for h in search.keyword_search("text:foo", match="all")] == [fruit["d"]]
    assert [h.document_id for h in search.keyword_search("AND identifiers", match="all")] == [fruit["d"]]
    # Optional words: "or" and "not" are words of document e, so it ranks first.
    assert search.keyword_search("OR NOT")[0].document_id == fruit["e"]
    assert [h.document_id for h in search.keyword_search("NEAR")] == [fruit["e"]]


@pytest.mark.parametrize("query", ["", " ", "\t\n", "!!!", '"', '""', "()", "*", "-", ":", "🙂🙃", "\x00", "'-*:\"()^+"])
def test_queries_without_terms_return_nothing(db, fruit, query):
    assert search.keyword_search(query) == []
    assert search.hybrid_search(query, mode="keyword") == []


def test_ten_thousand_character_queries(db, fruit):
    matching = ("apple banana " * 769).ljust(10_000, "!")
    assert len(matching) == 10_000
    hits = search.keyword_search(matching)
    assert hits[0].document_id == fruit["a"]
    assert [h.document_id for h in search.keyword_search(matching, match="all")] == [fruit["a"]]
    rng = random.Random(1)
    noise = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5)) for _ in range(1700))[:10_000]
    assert search.keyword_search(noise) == []
    assert search.keyword_search("x" * 10_000) == []
    assert search.keyword_search('"(' * 5_000) == []
    assert search.keyword_search("apple " + "🙂" * 9_994) != []
    assert search.hybrid_search(matching, mode="keyword", match="all")[0].id == fruit["a"]


def test_unicode_terms(db):
    doc = store.ingest("s", "u", "Zürich café naïve 東京", updated_at=BASE).document_id
    assert [h.document_id for h in search.keyword_search("zürich")] == [doc]
    assert [h.document_id for h in search.keyword_search("Café!")] == [doc]


# --------------------------------------------------------------------------- keyword: raw

@pytest.mark.backends("sqlite")  # FTS5's own: raw syntax is the engine's (PostgreSQL: tsquery)

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


@pytest.mark.backends("sqlite")  # FTS5's own: raw syntax is the engine's (PostgreSQL: tsquery)
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
     dt.datetime(2026, 4, 11), 1.5, True, [2026]],  # before 1970 (-5) filters nothing: ok
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


@pytest.mark.parametrize("fusion", search.FUSIONS)
@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.6, 1.0])
def test_hybrid_matches_reference_algorithm(corpus, query, alpha, fusion):
    vector = _vec(query)
    results = search.hybrid_search(query, vector, alpha=alpha, limit=20, fusion=fusion)
    expected = reference_hybrid(corpus, query, vector, alpha=alpha, limit=20, fusion=fusion)
    assert len(results) == min(20, len(expected))
    _assert_same_as_reference(results, expected)


@pytest.mark.parametrize("fusion", search.FUSIONS)
@pytest.mark.parametrize("query", QUERIES[:3])
def test_hybrid_reference_small_candidate_lists_and_filters(corpus, query, fusion):
    vector = _vec(query)
    for kwargs in (
        dict(ck=5, cv=7, limit=12),
        dict(ck=30, cv=3, limit=8),
        dict(ck=80, cv=80, limit=50, source="git"),
        dict(ck=10, cv=10, limit=10, since=BASE + 30 * DAY),
        dict(ck=15, cv=15, limit=10, source="jira", since="2026-01-20"),
    ):
        ck, cv = kwargs.pop("ck"), kwargs.pop("cv")
        results = search.hybrid_search(
            query, vector, candidates_keyword=ck, candidates_vector=cv, fusion=fusion, **kwargs
        )
        expected = reference_hybrid(corpus, query, vector, ck=ck, cv=cv, fusion=fusion, **kwargs)
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


@pytest.mark.parametrize("fusion", search.FUSIONS)
@pytest.mark.parametrize("query", QUERIES)
def test_hybrid_scores_in_unit_interval_and_sorted(corpus, query, fusion):
    for alpha in (0.0, 0.25, 0.6, 1.0):
        results = search.hybrid_search(query, _vec(query), alpha=alpha, limit=60, fusion=fusion)
        assert all(0.0 <= r.score <= 1.0 for r in results)
        # Min-max maps the last of each list to 0, and such a hit is still evidence.
        assert all(r.score > 0.0 for r in results) or fusion == "minmax"
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
    similar = [c for c in search.vector_search(vector, limit=n_chunks) if c.score > 0]
    expected = _doc_order_from(similar, docs)
    assert len(expected) > 10
    for kwargs in (dict(alpha=1.0), dict(mode="semantic"), dict(mode="semantic", alpha=0.2),
                   dict(mode="semantic", fusion="minmax")):
        results = search.hybrid_search(query, vector, candidates_vector=n_chunks, limit=60, **kwargs)
        assert _ids(results) == expected[:60], kwargs


@pytest.mark.parametrize("query", QUERIES)
def test_alpha_zero_orders_as_keyword_search(corpus, query):
    vector = _vec(query)
    docs = _doc_rows(corpus)
    keyword = search.keyword_search(query, limit=80)
    expected = _doc_order_from(keyword, docs)
    keyword_mode = search.hybrid_search(query, mode="keyword", limit=60)
    assert _ids(keyword_mode) == expected[:60]
    assert keyword_mode == search.hybrid_search(query, vector, mode="keyword", limit=60)
    for fusion in search.FUSIONS:
        results = search.hybrid_search(query, vector, alpha=0.0, limit=60, fusion=fusion)
        # Chunks found only by the vector signal score 0 at alpha 0, so they are not returned.
        assert _ids(results) == _ids(search.hybrid_search(query, mode="keyword", limit=60, fusion=fusion))


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
def test_without_a_vector_the_question_is_embedded_with_the_stored_model(corpus, mode):
    query = "postgres failover"
    given = search.hybrid_search(query, _vec(query), mode=mode, explain=True)
    resolved = search.hybrid_search(query, mode=mode, explain=True)
    assert given and [(r.id, r.score) for r in resolved] == [(r.id, r.score) for r in given]
    assert resolved.signals["semantic"].note == "model hashing-v1-384"
    assert search.vector_search(query) == search.vector_search(_vec(query))
    with_embedder = search.hybrid_search(query, mode=mode, embedder=EMBEDDER)
    assert [r.id for r in with_embedder] == [r.id for r in given]


def test_a_model_that_is_not_installed_is_named_with_what_to_install(corpus):
    corpus.execute_sql("UPDATE embeddings SET model = 'wordllama-l2-supercat-256'")
    import ctx_models.embedders as embedders

    def missing():
        raise ctx_models.EmbedderUnavailableError("needs wordllama: pip install 'ctx-models[semantic]'")

    embedders.register_embedder("wordllama-l2-supercat-256", missing)
    try:
        with pytest.raises(ctx_models.EmbedderUnavailableError, match=r"ctx-models\[semantic\]"):
            search.hybrid_search("postgres failover", mode="semantic")
        # Hybrid still answers with keywords, and says why the semantic signal is missing.
        results = search.hybrid_search("postgres failover")
        assert results
        assert "pip install" in results.signals["semantic"].note
    finally:
        embedders.register_embedder("wordllama-l2-supercat-256", embedders.WordLlamaEmbedder)


def test_hybrid_bad_vector(corpus):
    bad = _vec("postgres").copy()
    bad[0] = np.nan
    with pytest.raises(VectorError):
        search.hybrid_search("postgres", bad)
    # A vector of another length is compared with nothing: the keyword hits remain.
    results = search.hybrid_search("postgres", np.ones(10))
    assert _ids(results) == _ids(search.hybrid_search("postgres", mode="keyword"))
    assert "length 10" in results.signals["semantic"].note


@pytest.mark.parametrize("mode", ["bogus", "", "KEYWORD", None])
def test_unknown_mode_raises(corpus, mode):
    with pytest.raises(ValidationError):
        search.hybrid_search("postgres", _vec("postgres"), mode=mode)


@pytest.mark.parametrize("outside", [5, 1.0000001, float("inf"), -1, -0.01, float("-inf")])
def test_alpha_outside_the_unit_interval_is_an_error(corpus, outside):
    with pytest.raises(ValidationError, match="alpha must be from 0"):
        search.hybrid_search("postgres failover", _vec("postgres failover"), alpha=outside)


def test_alpha_defaults_per_fusion(corpus):
    query, vector = "postgres failover", _vec("postgres failover")
    for fusion in search.FUSIONS:
        results = search.hybrid_search(query, vector, fusion=fusion, explain=True)
        assert results.alpha == search.DEFAULT_ALPHA[fusion]
        assert all(r.explain["alpha"] == search.DEFAULT_ALPHA[fusion] for r in results)
    assert search.DEFAULT_ALPHA["minmax"] == 0.6  # the contract's


@pytest.mark.parametrize("alpha", [float("nan"), "0.5", True])
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
                                   limit=15, explain=True, fusion="minmax")
    keyword = search.keyword_search(query, limit=9)
    vectors = search.vector_search(vector, limit=11)
    k, v = _normalise(keyword), _normalise(vectors)
    assert results
    for r in results:
        e = r.explain
        assert set(e) >= {"keyword", "semantic", "alpha", "keyword_candidates", "vector_candidates",
                          "fusion", "signals", "keyword_rank", "semantic_rank"}
        assert e["fusion"] == "minmax"
        assert e["signals"] == {"keyword": str(results.signals["keyword"]),
                                "semantic": str(results.signals["semantic"])}
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
    chunks = db.execute_sql(f"SELECT id, text FROM chunks WHERE document_id = {db.param} ORDER BY chunk_index",
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
    results = search.hybrid_search("zebra", [1.0, 0.0, 0.0, 0.0], alpha=0.6, explain=True, fusion="minmax")
    by_id = {r.id: r for r in results}
    assert _ids(results) == [v_doc.id, k_doc]  # the orthogonal "weak" document is no evidence
    assert by_id[k_doc].explain["keyword"] == 1.0  # a one-entry list normalises to 1.0
    assert by_id[k_doc].explain["semantic"] == 0.0
    assert by_id[k_doc].score == pytest.approx(0.4)
    assert by_id[v_doc.id].explain["keyword"] == 0.0
    assert by_id[v_doc.id].explain["semantic"] == 1.0
    assert by_id[v_doc.id].score == pytest.approx(0.6)
    assert by_id[k_doc].snippet == ">>>zebra<<< stripes"
    assert by_id[v_doc.id].snippet == "lion mane"
    # alpha 0.3: the keyword-only document wins.
    assert _ids(search.hybrid_search("zebra", [1.0, 0.0, 0.0, 0.0], alpha=0.3, fusion="minmax"))[0] == k_doc
    # No word of the question in the corpus: hybrid returns nothing, semantic mode still answers.
    nothing = search.hybrid_search("tiger", [1.0, 0.0, 0.0, 0.0])
    assert nothing == [] and "no chunk holds any word" in nothing.why_empty
    assert _ids(search.hybrid_search("tiger", [1.0, 0.0, 0.0, 0.0], mode="semantic")) == [v_doc.id]


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


@pytest.mark.parametrize(
    "word, scattered",
    [
        ("हिन्दी", "द and न and ह"),  # Devanagari: the virama and vowel signs are combining marks
        ("สวัสดี", "สด and สว"),  # Thai: the vowel marks above the letters are combining marks
    ],
)
def test_words_with_combining_marks_are_one_term(db, backend, word, scattered):
    """Python's \\w misses combining marks: cut there, the word would become letters matched
    anywhere. Quoted whole, FTS5 tokenises it as it tokenised the text: one phrase."""
    whole = store.ingest("s", "whole", f"{word} text", updated_at=BASE).document_id
    store.ingest("s", "scattered", f"only the letters {scattered}", updated_at=BASE + 1)
    assert re.findall(r"\w+", word) != [word]  # the \w rule would cut it
    assert fts.user_query(word) == f'"{word}"'
    for match in ("any", "all"):
        assert [h.document_id for h in search.keyword_search(word, match=match)] == [whole]
    if backend == "sqlite":  # FTS5 syntax: the pieces the \w rule would make, ANDed as ctx
        # does, also find the scattered letters
        pieces = " ".join(f'"{p}"' for p in re.findall(r"\w+", word))
        assert len(search.keyword_search(pieces, raw=True)) == 2
