"""vector_search exactness and filters, and the VectorIndex cache (ctx_models.backends.sqlite)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import ctx_models
from ctx_models import integrity, search, store
from ctx_models.backends.sqlite import vectors as vectors_module
from ctx_models.backends.sqlite.state import index_for
from ctx_models.backends.sqlite.vectors import VectorIndex
from ctx_models.errors import (
    CorruptValueError,
    EmbedderUnavailableError,
    OutOfMemoryError,
    ValidationError,
    VectorError,
)
from ctx_models.models import bound_database

ROOT = Path(__file__).resolve().parent.parent

DIMS = 32
N_DOCS = 100
CHUNKS_PER_DOC = 20  # 2,000 vectors
SOURCES = ("A", "B", "C", "D")
BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
TOL = 1e-5


# --------------------------------------------------------------------------- helpers


def _index(db) -> VectorIndex:
    return index_for(db, db.connection())


def _cosine(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Brute-force cosine in float64; 0 for zero-length vectors."""
    m = matrix.astype(np.float64)
    q = np.asarray(query, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
    dots = m @ q
    out = np.zeros(len(m))
    nz = norms > 0
    out[nz] = dots[nz] / norms[nz]
    return out


def _assert_matches_reference(hits, reference: dict[str, float], k: int) -> None:
    """``hits`` are the exact top ``k`` of ``reference`` (chunk id -> cosine), allowing ties."""
    expected_len = min(k, len(reference))
    assert len(hits) == expected_len
    ids = [h.chunk_id for h in hits]
    assert len(set(ids)) == len(ids)
    # Every returned score is the true cosine of its chunk.
    for hit in hits:
        assert hit.chunk_id in reference
        assert hit.score == pytest.approx(reference[hit.chunk_id], abs=TOL)
    # Best first.
    for a, b in zip(hits, hits[1:]):
        assert a.score >= b.score
    # Same set as the reference top k, and same order, up to ties within TOL.
    ranked = sorted(reference.items(), key=lambda kv: -kv[1])
    boundary = ranked[expected_len - 1][1]
    must = {cid for cid, s in ranked if s > boundary + TOL}
    may = {cid for cid, s in ranked if s >= boundary - TOL}
    assert must <= set(ids)
    assert set(ids) <= may
    ref_scores = [reference[cid] for cid in ids]
    expected_scores = [s for _, s in ranked[:expected_len]]
    assert ref_scores == pytest.approx(expected_scores, abs=TOL)


class Corpus:
    """Random vectors stored through replace_chunks, with what the test needs to check them."""

    def __init__(self) -> None:
        self.chunk_ids: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.source: dict[str, str] = {}
        self.updated: dict[str, int] = {}
        self.model: dict[str, str] = {}
        self.doc_of: dict[str, str] = {}

    def reference(self, query, *, source=None, since=None, model=None) -> dict[str, float]:
        keep = [
            i
            for i, cid in enumerate(self.chunk_ids)
            if (source is None or self.source[cid] == source)
            and (since is None or self.updated[cid] >= since)
            and (model is None or self.model[cid] == model)
        ]
        matrix = np.stack([self.vectors[i] for i in keep])
        scores = _cosine(matrix, query)
        return {self.chunk_ids[i]: float(s) for i, s in zip(keep, scores)}


def _fill(rng: np.random.Generator, *, n_docs=N_DOCS, per_doc=CHUNKS_PER_DOC, zero_docs=(), models=("m1",)):
    corpus = Corpus()
    for d in range(n_docs):
        source = SOURCES[d % len(SOURCES)]
        updated = BASE + d * DAY
        doc, _ = store.upsert_document(source, f"doc-{d}", f"document {d}", updated_at=updated)
        vectors = rng.standard_normal((per_doc, DIMS)).astype(np.float32)
        if d in zero_docs:
            vectors[:] = 0.0
        model = models[d % len(models)]
        chunks = store.replace_chunks(doc.id, [f"doc {d} chunk {i}" for i in range(per_doc)], vectors, model)
        for chunk, vector in zip(chunks, vectors):
            corpus.chunk_ids.append(chunk.id)
            corpus.vectors.append(vector)
            corpus.source[chunk.id] = source
            corpus.updated[chunk.id] = updated
            corpus.model[chunk.id] = model
            corpus.doc_of[chunk.id] = doc.id
    return corpus


@pytest.fixture(scope="module")
def corpus_template(tmp_path_factory):
    """The 2,000-vector corpus, built once per module into a file that tests copy."""
    path = tmp_path_factory.mktemp("vector-corpus") / "template.sqlite"
    database = ctx_models.connect(path)
    ctx_models.run_migrations(database)
    built = _fill(np.random.default_rng(1234), zero_docs=(7,))
    database.close()  # the last close checkpoints the WAL into the main file
    return path, built


@pytest.fixture
def corpus(corpus_template, tmp_path):
    template, built = corpus_template
    path = tmp_path / "corpus.sqlite"
    shutil.copyfile(template, path)
    database = ctx_models.connect(path)
    yield built
    database.close()


# --------------------------------------------------------------------------- exactness


def test_vector_search_equals_brute_force(corpus):
    rng = np.random.default_rng(99)
    assert len(corpus.chunk_ids) == 2000
    for k in (1, 10, 80, 500):
        for _ in range(3):
            query = rng.standard_normal(DIMS).astype(np.float32)
            hits = search.vector_search(query, limit=k)
            _assert_matches_reference(hits, corpus.reference(query), k)
            for hit in hits:
                assert hit.document_id == corpus.doc_of[hit.chunk_id]


@pytest.mark.parametrize("k", [1, 3, 80, 199, 200, 250])
@pytest.mark.parametrize("levels", [1, 2, 5, 50])
def test_top_k_is_best_first_then_smallest_rowid_under_ties(k, levels):
    # Few distinct scores, so many rows tie with the k-th best; rowids shuffled so
    # the smallest are not simply the first positions.
    rng = np.random.default_rng(k * 100 + levels)
    scores = rng.integers(0, levels, 200).astype(np.float32)
    rowids = rng.permutation(10_000)[:200].astype(np.int64)
    top = vectors_module._top_k(scores, rowids, k)
    expected = sorted(range(200), key=lambda i: (-scores[i], rowids[i]))[:k]
    assert top.tolist() == expected


def test_vector_search_accepts_list_and_float64_query(corpus):
    query = np.random.default_rng(5).standard_normal(DIMS)
    as_array = search.vector_search(query.astype(np.float32), limit=25)
    as_list = search.vector_search([float(x) for x in query], limit=25)
    assert [h.chunk_id for h in as_list] == [h.chunk_id for h in as_array]
    _assert_matches_reference(as_list, corpus.reference(query), 25)


def test_query_scale_does_not_change_scores(corpus):
    query = np.random.default_rng(6).standard_normal(DIMS).astype(np.float32)
    small = search.vector_search(query, limit=20)
    big = search.vector_search(query * 1000, limit=20)
    assert [h.chunk_id for h in small] == [h.chunk_id for h in big]
    assert [h.score for h in small] == pytest.approx([h.score for h in big], abs=TOL)


def test_limit_larger_than_store_returns_everything(corpus):
    query = np.random.default_rng(7).standard_normal(DIMS).astype(np.float32)
    hits = search.vector_search(query, limit=5000)
    assert len(hits) == 2000
    _assert_matches_reference(hits, corpus.reference(query), 5000)


def test_all_zero_stored_vectors_score_zero(corpus):
    zero_ids = {cid for cid in corpus.chunk_ids if not np.any(corpus.vectors[corpus.chunk_ids.index(cid)])}
    assert len(zero_ids) == CHUNKS_PER_DOC
    query = np.random.default_rng(8).standard_normal(DIMS).astype(np.float32)
    hits = search.vector_search(query, limit=2000)
    scores = {h.chunk_id: h.score for h in hits}
    assert zero_ids <= set(scores)
    assert all(scores[cid] == 0.0 for cid in zero_ids)
    assert not any(np.isnan(h.score) for h in hits)


def test_all_zero_query_scores_zero_for_all(corpus):
    hits = search.vector_search(np.zeros(DIMS, dtype=np.float32), limit=2000)
    assert len(hits) == 2000
    assert {h.chunk_id for h in hits} == set(corpus.chunk_ids)
    assert all(h.score == 0.0 for h in hits)


@pytest.mark.parametrize("length", [DIMS - 1, DIMS + 1, 1, 384])
def test_query_of_another_length_finds_nothing_and_says_why(corpus, length, caplog):
    """Vectors are compared with stored vectors of their own length; other lengths never fail."""
    with caplog.at_level(logging.INFO, logger="ctx_models.search"):
        assert search.vector_search(np.ones(length, dtype=np.float32), limit=5) == []
    assert f"length {length}" in caplog.text
    results = search.hybrid_search("doc chunk", np.ones(length, dtype=np.float32), explain=True)
    assert results, "the keyword hits are still returned"
    assert not results.signals["semantic"].used
    assert "no stored vector has the question's length" in results.signals["semantic"].note
    assert "semantic: left out" in results[0].explain["signals"]["semantic"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_query_raises_vector_error(corpus, bad):
    query = np.ones(DIMS, dtype=np.float32)
    query[3] = bad
    with pytest.raises(VectorError):
        search.vector_search(query, limit=5)


@pytest.mark.parametrize("query", [None, [], [[1.0] * DIMS], b"abc"])
def test_malformed_query_raises_vector_error(corpus, query):
    with pytest.raises(VectorError):
        search.vector_search(query, limit=5)


def test_text_query_needs_the_stored_models_embedder(corpus):
    """Text is embedded with the model of the stored vectors; an unknown one is an error saying so."""
    with pytest.raises(EmbedderUnavailableError, match="register_embedder"):
        search.vector_search("abc", limit=5)


def test_empty_store_returns_nothing(db):
    assert search.vector_search(np.ones(8, dtype=np.float32), limit=5) == []


# --------------------------------------------------------------------------- filters


def test_source_filter_returns_limit_results(corpus):
    rng = np.random.default_rng(10)
    for source in ("B", "D"):
        query = rng.standard_normal(DIMS).astype(np.float32)
        hits = search.vector_search(query, limit=30, source=source)
        assert all(corpus.source[h.chunk_id] == source for h in hits)
        _assert_matches_reference(hits, corpus.reference(query, source=source), 30)


def test_unknown_source_returns_nothing(corpus):
    assert search.vector_search(np.ones(DIMS), limit=5, source="nope") == []


def test_since_filter_all_forms(corpus):
    query = np.random.default_rng(11).standard_normal(DIMS).astype(np.float32)
    cutoff = BASE + 90 * DAY  # documents 90..99: 200 chunks
    day = dt.datetime.fromtimestamp(cutoff, tz=dt.UTC).date()
    forms = [
        cutoff,
        day,
        day.isoformat(),
        dt.datetime.fromtimestamp(cutoff, tz=dt.UTC),
        dt.datetime.fromtimestamp(cutoff, tz=dt.timezone(dt.timedelta(hours=5))),
    ]
    reference = corpus.reference(query, since=cutoff)
    assert len(reference) == 10 * CHUNKS_PER_DOC
    for since in forms:
        hits = search.vector_search(query, limit=40, since=since)
        assert all(corpus.updated[h.chunk_id] >= cutoff for h in hits)
        _assert_matches_reference(hits, reference, 40)


def test_since_is_inclusive(corpus):
    cutoff = BASE + 99 * DAY  # exactly the newest document's updated_at
    hits = search.vector_search(np.ones(DIMS), limit=100, since=cutoff)
    assert len(hits) == CHUNKS_PER_DOC
    assert search.vector_search(np.ones(DIMS), limit=100, since=cutoff + 1) == []


def test_source_and_since_combined(corpus):
    query = np.random.default_rng(12).standard_normal(DIMS).astype(np.float32)
    cutoff = BASE + 50 * DAY
    hits = search.vector_search(query, limit=25, source="C", since=cutoff)
    assert all(corpus.source[h.chunk_id] == "C" and corpus.updated[h.chunk_id] >= cutoff for h in hits)
    _assert_matches_reference(hits, corpus.reference(query, source="C", since=cutoff), 25)


@pytest.mark.parametrize("since", ["yesterday", "2026-02-30", "2026/01/01", "2026-01-01T00:00:00"])
def test_bad_since_string_raises(db, since):
    _fill(np.random.default_rng(0), n_docs=2, per_doc=2)
    with pytest.raises(ValidationError):
        search.vector_search(np.ones(DIMS), limit=5, since=since)


def test_naive_datetime_since_raises(db):
    _fill(np.random.default_rng(0), n_docs=2, per_doc=2)
    with pytest.raises(ValidationError):
        search.vector_search(np.ones(DIMS), limit=5, since=dt.datetime(2026, 1, 1))


def test_model_filter(db):
    corpus = _fill(np.random.default_rng(3), n_docs=20, per_doc=10, models=("m1", "m2"))
    query = np.random.default_rng(4).standard_normal(DIMS).astype(np.float32)
    for model in ("m1", "m2"):
        hits = search.vector_search(query, limit=30, model=model)
        assert all(corpus.model[h.chunk_id] == model for h in hits)
        _assert_matches_reference(hits, corpus.reference(query, model=model), 30)
    assert search.vector_search(query, limit=30, model="other") == []
    everything = search.vector_search(query, limit=30)
    _assert_matches_reference(everything, corpus.reference(query), 30)


def test_model_filter_with_other_dims(db):
    """Two models of different lengths: each query length finds its own model's vectors."""
    rng = np.random.default_rng(21)
    doc, _ = store.upsert_document("A", "x", "x", updated_at=BASE)
    small = rng.standard_normal((5, 8)).astype(np.float32)
    chunks = store.replace_chunks(doc.id, [f"c{i}" for i in range(5)], small, "small-8")
    doc2, _ = store.upsert_document("A", "y", "y", updated_at=BASE)
    large = rng.standard_normal((4, 16)).astype(np.float32)
    chunks2 = store.replace_chunks(doc2.id, [f"d{i}" for i in range(4)], large, "large-16")
    hits = search.vector_search(small[2], limit=10, model="small-8")
    assert hits[0].chunk_id == chunks[2].id
    assert hits[0].score == pytest.approx(1.0, abs=TOL)
    assert {h.chunk_id for h in hits} == {c.id for c in chunks}
    hits2 = search.vector_search(large[1], limit=10)
    assert {h.chunk_id for h in hits2} == {c.id for c in chunks2}
    assert search.vector_search(small[0], limit=10, model="large-16") == []


# --------------------------------------------------------------------------- the cache


def _ingest_code(db_path: Path, source_id: str, body: str) -> str:
    return textwrap.dedent(
        f"""
        import ctx_models
        from ctx_models import store
        from ctx_models.embedders import HashingEmbedder
        db = ctx_models.connect({str(db_path)!r})
        store.ingest("other-process", {source_id!r}, {body!r}, updated_at=1767225600,
                     embedder=HashingEmbedder(384))
        db.close()
        """
    )


def _run_other_process(code: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _seed_hashing(embedder, n=5):
    ids = []
    for i in range(n):
        result = store.ingest("docs", f"d{i}", f"seed document number {i} about topic{i}", embedder=embedder,
                              updated_at=BASE + i)
        ids.append(result.document_id)
    return ids


def _doc_ids(hits) -> set[str]:
    return {h.document_id for h in hits}


def test_repeated_search_does_not_rebuild(db, embedder):
    _seed_hashing(embedder)
    query = embedder.embed(["topic3"])[0]
    first = search.vector_search(query, limit=3)
    index = _index(db)
    builds = index.builds
    assert builds >= 1
    assert index.size == 5
    for _ in range(5):
        again = search.vector_search(query, limit=3)
        assert [(h.chunk_id, h.score) for h in again] == [(h.chunk_id, h.score) for h in first]
    search.keyword_search("seed")
    search.hybrid_search("topic3", query)
    search.vector_search(query, limit=3, source="docs", since=BASE)
    assert _index(db) is index
    assert index.builds == builds


def _answers(hits) -> list[tuple]:
    return [(h.chunk_id, h.document_id, h.score, h.snippet) for h in hits]


def test_kept_details_answer_exactly_as_sql(corpus, monkeypatch):
    """A small index keeps each chunk's id, document and snippet from its second search on;
    its answers are the ones read from SQL, filters included."""
    rng = np.random.default_rng(7)
    queries = [rng.standard_normal(DIMS).astype(np.float32) for _ in range(4)]
    filters = [{}, {"source": "B"}, {"since": BASE + 50 * DAY}, {"limit": 2000}]

    def answers():
        return [_answers(search.vector_search(q, **{"limit": 80, **f})) for q in queries for f in filters]

    with monkeypatch.context() as patch:
        patch.setattr(vectors_module, "_DETAILS_MAX_ROWS", 0)  # every search reads SQL
        from_sql = answers()
        assert _index(bound_database())._groups[DIMS].details is None
    builds = _index(bound_database()).builds
    assert answers() == from_sql
    assert _index(bound_database())._groups[DIMS].details is not None
    assert _index(bound_database()).builds == builds
    assert all(hit[3].startswith("doc ") for hit in from_sql[0])


def test_one_search_reads_no_details(corpus):
    search.vector_search(np.ones(DIMS, np.float32), limit=5)
    assert _index(bound_database())._groups[DIMS].details is None


def test_big_index_fetches_its_winners_from_sql(corpus, monkeypatch):
    monkeypatch.setattr(vectors_module, "_DETAILS_MAX_ROWS", 1999)
    query = np.random.default_rng(8).standard_normal(DIMS).astype(np.float32)
    answers = [_answers(search.vector_search(query, limit=50)) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert _index(bound_database())._groups[DIMS].details is None


def test_vector_without_chunk_is_left_out_by_both_paths(db, db_path, embedder):
    """A chunk_vectors row whose chunk is gone (another program's leftover) is never a hit."""
    _seed_hashing(embedder)
    query = embedder.embed(["orphaned vector"])[0]
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(
        "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES ('gone', 'gone', ?)",
        (np.asarray(query, "<f4").tobytes(),),
    )
    conn.close()
    first, second, third = (search.vector_search(query, limit=10) for _ in range(3))
    assert len(first) == 5 and "gone" not in {h.chunk_id for h in first}
    assert _answers(second) == _answers(third) == _answers(first)
    assert _index(db)._groups[384].details is not None


def test_own_ingest_is_seen_by_next_search(db, embedder):
    _seed_hashing(embedder)
    query = embedder.embed(["zanzibar marmalade"])[0]
    before = search.vector_search(query, limit=10)
    builds = _index(db).builds
    new = store.ingest("docs", "new", "zanzibar marmalade", embedder=embedder)
    after = search.vector_search(query, limit=10)
    assert _index(db).builds == builds + 1
    assert new.document_id not in _doc_ids(before)
    assert after[0].document_id == new.document_id
    assert after[0].score == pytest.approx(1.0, abs=TOL)
    assert len(after) == len(before) + 1


def test_own_delete_is_seen_by_next_search(db, embedder):
    ids = _seed_hashing(embedder)
    query = embedder.embed(["topic2"])[0]
    assert search.vector_search(query, limit=1)[0].document_id == ids[2]
    assert store.delete_document(ids[2])
    hits = search.vector_search(query, limit=10)
    assert ids[2] not in _doc_ids(hits)
    assert len(hits) == 4


def test_vector_written_by_another_process_is_found(db, db_path, embedder):
    _seed_hashing(embedder)
    query = embedder.embed(["quixotic hovercraft eels"])[0]
    before = search.vector_search(query, limit=10)
    assert len(before) == 5
    builds = _index(db).builds
    _run_other_process(_ingest_code(db_path, "remote", "quixotic hovercraft eels"))
    after = search.vector_search(query, limit=10)
    assert _index(db).builds == builds + 1
    assert len(after) == 6
    assert after[0].score == pytest.approx(1.0, abs=TOL)
    remote = db.execute_sql("SELECT id FROM documents WHERE source = 'other-process'").fetchone()[0]
    assert after[0].document_id == remote
    # And the hybrid path sees it too, without reopening.
    hybrid = search.hybrid_search("quixotic hovercraft eels", query, limit=3)
    assert hybrid[0].id == remote


NAN_VECTOR = "x'" + (np.full(384, np.nan, "<f4").tobytes()).hex() + "'"
INF_VECTOR = "x'" + (np.full(384, np.inf, "<f4").tobytes()).hex() + "'"


@pytest.mark.parametrize("stored", ["'not a vector'", "x'0102'", "x''", "42", NAN_VECTOR, INF_VECTOR])
def test_corrupt_stored_vector_is_left_out_with_a_warning_until_repaired(db, db_path, embedder, stored, caplog):
    """Another program's bad vector must not fail every search: it is skipped, and the warning
    says to repair (before, every vector search raised CorruptValueError until the repair)."""
    ids = _seed_hashing(embedder)
    query = embedder.embed(["topic2"])[0]
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(f"UPDATE chunk_vectors SET embedding = {stored} WHERE rowid = 1")
    conn.close()
    with caplog.at_level("WARNING", logger="ctx_models"):
        hits = search.vector_search(query, limit=5)
    assert hits[0].document_id == ids[2] and ids[0] not in _doc_ids(hits)
    assert any("check --repair" in r.getMessage() for r in caplog.records), caplog.records
    report = integrity.check(db, repair=True)
    assert report.clean, report
    assert search.vector_search(query, limit=1)[0].document_id == ids[2]


def _mapping_flags(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds ``address`` (Linux)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        first = line.split()[0]
        if "-" in first and not first.endswith(":"):
            start, end = (int(part, 16) for part in first.split("-"))
            inside = start <= address < end
        elif inside and first == "VmFlags:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux reports mappings in /proc")
def test_matrix_lives_in_memory_without_huge_pages(corpus):
    """The matrix is in a mapping of its own marked no-huge-pages ('nh'), so its first touch
    never waits for the kernel to compact memory; searches still answer exactly."""
    index = _index(bound_database())
    query = corpus.vectors[5]
    _assert_matches_reference(search.vector_search(query, limit=10), corpus.reference(query), 10)
    matrix = index._groups[DIMS].matrix
    assert matrix.flags.writeable and matrix.dtype == np.float32
    assert "nh" in _mapping_flags(matrix.__array_interface__["data"][0])
    # Small matrices too (a group with fewer rows than room was made for is copied into one).
    assert vectors_module._new_matrix(0, DIMS).shape == (0, DIMS)
    small = vectors_module._new_matrix(3, 4)
    small[:] = 2.0
    assert small.sum() == 24.0 and "nh" in _mapping_flags(small.__array_interface__["data"][0])


def test_vectors_too_big_for_memory_raise_our_error_and_leave_the_index_usable(corpus, monkeypatch):
    """When the system refuses the matrix's memory, the search says how much it needed and what
    to do (OutOfMemoryError, which is also a MemoryError); once memory is there again the next
    search builds the index and answers exactly."""

    def no_memory(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(vectors_module.mmap, "mmap", no_memory)
    query = corpus.vectors[3]
    with pytest.raises(OutOfMemoryError, match=r"needs 0\.3 MB for 2,000 vectors of 32 dimensions") as err:
        search.vector_search(query, limit=5)
    assert "PostgreSQL" in str(err.value) and isinstance(err.value, MemoryError)
    monkeypatch.undo()
    _assert_matches_reference(search.vector_search(query, limit=5), corpus.reference(query), 5)


def test_build_restores_the_connections_cache_size(db, embedder, monkeypatch):
    """The build scans with a small page cache and gives the connection its own back, also on error."""
    _seed_hashing(embedder)
    db.execute_sql("PRAGMA cache_size = -12345")
    seen = []
    real = vectors_module._read_groups

    def spy(conn):
        seen.append(conn.execute("PRAGMA cache_size").fetchone()[0])
        return real(conn)

    monkeypatch.setattr(vectors_module, "_read_groups", spy)
    index = _index(db)
    builds = index.builds
    search.vector_search(embedder.embed(["topic1"])[0], limit=3)
    assert index.builds == builds + 1
    assert seen == [-vectors_module._SCAN_CACHE_KIB]
    assert db.execute_sql("PRAGMA cache_size").fetchone()[0] == -12345

    def broken(conn):
        raise CorruptValueError("broken on purpose")

    monkeypatch.setattr(vectors_module, "_read_groups", broken)
    index.invalidate()
    with pytest.raises(CorruptValueError):
        search.vector_search(embedder.embed(["topic1"])[0], limit=3)
    assert db.execute_sql("PRAGMA cache_size").fetchone()[0] == -12345


def test_huge_finite_stored_vector_is_normalised_not_refused(db, db_path, embedder):
    ids = _seed_hashing(embedder)
    query = embedder.embed(["topic2"])[0]
    huge = embedder.embed(["seed document number 2 about topic2"])[0].astype(np.float64) * 1e30
    assert np.isfinite(huge.astype("<f4")).all()  # finite, but its float32 norm overflows
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE chunk_vectors SET embedding = ? WHERE chunk_id IN "
            "(SELECT id FROM chunks WHERE document_id = ?)",
            (huge.astype("<f4").tobytes(), ids[2]),
        )
    conn.close()
    hit = search.vector_search(query, limit=1)[0]
    assert hit.document_id == ids[2]
    assert 0.0 < hit.score <= 1.0 + 1e-6


def test_delete_by_raw_sqlite_from_another_connection(db, db_path, embedder):
    ids = _seed_hashing(embedder)
    query = embedder.embed(["topic4"])[0]
    assert search.vector_search(query, limit=1)[0].document_id == ids[4]
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        chunk_ids = "SELECT id FROM chunks WHERE document_id = ?"
        conn.execute(f"DELETE FROM chunk_vectors WHERE chunk_id IN ({chunk_ids})", (ids[4],))
        conn.execute(f"DELETE FROM embeddings WHERE chunk_id IN ({chunk_ids})", (ids[4],))
        conn.execute("DELETE FROM chunks_fts WHERE document_id = ?", (ids[4],))
        conn.execute("DELETE FROM chunks WHERE document_id = ?", (ids[4],))
        conn.execute("DELETE FROM documents WHERE id = ?", (ids[4],))
        conn.execute("COMMIT")
    finally:
        conn.close()
    hits = search.vector_search(query, limit=10)
    assert ids[4] not in _doc_ids(hits)
    assert len(hits) == 4
    assert all(r.id != ids[4] for r in search.hybrid_search("topic4", query))


def test_raw_delete_of_vector_only_is_seen(db, db_path, embedder):
    """Deleting just the chunk_vectors row (another program) removes the chunk from vector search."""
    ids = _seed_hashing(embedder)
    query = embedder.embed(["topic1"])[0]
    assert search.vector_search(query, limit=1)[0].document_id == ids[1]
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("DELETE FROM chunk_vectors WHERE document_id = ?", (ids[1],))
    finally:
        conn.close()
    hits = search.vector_search(query, limit=10)
    assert ids[1] not in _doc_ids(hits)
    assert len(hits) == 4


def test_rolled_back_vector_is_not_returned(db, embedder):
    _seed_hashing(embedder)
    query = embedder.embed(["ephemeral platypus"])[0]
    search.vector_search(query, limit=10)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with db.atomic():
            new = store.ingest("docs", "tmp", "ephemeral platypus", embedder=embedder)
            inside = search.vector_search(query, limit=10)
            assert inside[0].document_id == new.document_id  # visible inside the transaction
            raise Abort
    after = search.vector_search(query, limit=10)
    assert new.document_id not in _doc_ids(after)
    assert len(after) == 5
    # The rolled-back vector was the best match: a stale index would fill the
    # top slot with a row that no longer exists and come back short.
    (best,) = search.vector_search(query, limit=1)
    assert best.document_id != new.document_id
    # The other documents share no word with the question: no closer than orthogonal, no evidence.
    assert search.hybrid_search("ephemeral platypus", query, mode="semantic") == []
    seed_query = embedder.embed(["seed topic1"])[0]
    assert len(search.hybrid_search("seed topic1", seed_query, mode="semantic", candidates_vector=2)) == 2
    again = search.vector_search(query, limit=10)
    assert [h.chunk_id for h in again] == [h.chunk_id for h in after]
    assert all(r.id != new.document_id for r in search.hybrid_search("ephemeral platypus", query))


def test_rolled_back_vector_without_search_inside(db, embedder):
    _seed_hashing(embedder)
    query = embedder.embed(["ephemeral wombat"])[0]
    search.vector_search(query, limit=10)
    with db.atomic() as txn:
        new = store.ingest("docs", "tmp", "ephemeral wombat", embedder=embedder)
        txn.rollback()
    after = search.vector_search(query, limit=10)
    assert new.document_id not in _doc_ids(after)
    assert len(after) == 5
    assert len(search.vector_search(query, limit=1)) == 1


def test_rolled_back_delete_keeps_vector(db, embedder):
    ids = _seed_hashing(embedder)
    query = embedder.embed(["topic0"])[0]
    assert search.vector_search(query, limit=1)[0].document_id == ids[0]

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        with db.atomic():
            store.delete_document(ids[0])
            assert ids[0] not in _doc_ids(search.vector_search(query, limit=10))
            raise Abort
    after = search.vector_search(query, limit=10)
    assert after[0].document_id == ids[0]
    assert len(after) == 5


def test_committed_write_inside_transaction_is_seen_after(db, embedder):
    _seed_hashing(embedder)
    query = embedder.embed(["committed narwhal"])[0]
    search.vector_search(query, limit=10)
    with db.atomic():
        new = store.ingest("docs", "kept", "committed narwhal", embedder=embedder)
        search.vector_search(query, limit=10)
    after = search.vector_search(query, limit=10)
    assert after[0].document_id == new.document_id
    assert len(after) == 6


def test_index_is_per_connection(db, db_path, embedder):
    _seed_hashing(embedder)
    search.vector_search(embedder.embed(["topic1"])[0], limit=1)
    first = _index(db)
    assert index_for(db, db.connection()) is first
    other = ctx_models.connect(db_path)
    try:
        ctx_models.run_migrations(other)
        assert index_for(other, other.connection()) is not first
        hits = search.vector_search(embedder.embed(["topic1"])[0], limit=10)
        assert len(hits) == 5
    finally:
        other.close()
        ctx_models.bind(db)


def test_search_inside_manual_begin_then_rollback(db, embedder):
    """A transaction opened with peewee's db.begin() (not atomic()): searches inside it
    see its uncommitted rows, and after db.rollback() the rolled-back vector is gone."""
    _seed_hashing(embedder)
    query = embedder.embed(["manual lemur"])[0]
    search.vector_search(query, limit=10)
    doc_id, chunk_id = str(uuid.uuid4()), str(uuid.uuid4())
    text = "manual lemur"
    db.begin()
    try:
        # Rows written the way the ctx tool writes them, through this connection.
        db.execute_sql(
            "INSERT INTO documents (id, source, source_id, created_at, updated_at, body, dedup_hash) "
            "VALUES (?, 'raw', 'lemur', ?, ?, ?, ?)",
            (doc_id, BASE, BASE, text, "0" * 64),
        )
        digest = hashlib.sha256(text.encode()).hexdigest()
        db.execute_sql("INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES (?, ?, 0, ?, ?)",
                       (chunk_id, doc_id, text, digest))
        db.execute_sql("INSERT INTO chunks_fts (chunk_id, document_id, text) VALUES (?, ?, ?)", (chunk_id, doc_id, text))
        db.execute_sql("INSERT INTO embeddings (chunk_id, model, dims, created_at, hash) VALUES (?, ?, ?, ?, ?)",
                       (chunk_id, embedder.model, embedder.dims, BASE, digest))
        db.execute_sql("INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?, ?, ?)",
                       (chunk_id, doc_id, np.asarray(query, dtype="<f4").tobytes()))
        (inside,) = search.vector_search(query, limit=1)
        assert inside.chunk_id == chunk_id
    finally:
        db.rollback()
    (best,) = search.vector_search(query, limit=1)
    assert best.chunk_id != chunk_id
    assert len(search.vector_search(query, limit=10)) == 5
