"""Property tests (hypothesis): vector encoding, query building, keyword search and chunking."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ctx_models
from ctx_models import search, store
from ctx_models.backends.sqlite import keyword as fts
from ctx_models.chunking import chunk_text
from ctx_models.errors import ValidationError
from ctx_models.fields import VectorField, decode_vector, encode_vector
from ctx_models.words import unique_words, words

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Unicode White_Space: what the contract's "trim" (Rust's str::trim) removes.
WHITE_SPACE = set(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# Any code point, lone surrogates included (st.text() leaves them out by default).
surrogates = st.characters(categories=["Cs"])
any_text = st.lists(
    st.one_of(st.characters(), st.characters(max_codepoint=0x7F), surrogates), max_size=60
).map("".join)
# Everything a str can hold that SQLite can take: no lone surrogates.
storable_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


# --------------------------------------------------------------------------- vectors


finite_float32 = hnp.arrays(
    dtype=np.float32,
    shape=st.integers(1, 64),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@FAST
@given(finite_float32)
def test_encode_vector_round_trip_is_bit_exact(vector: np.ndarray) -> None:
    blob = encode_vector(vector)
    assert blob == vector.astype("<f4").tobytes()
    assert len(blob) == 4 * len(vector)
    back = decode_vector(blob)
    assert back.dtype == np.float32 and back.shape == vector.shape
    assert (
        back.view(np.uint32).tolist() == vector.view(np.uint32).tolist()
    )  # -0.0 and subnormals included
    assert encode_vector(back) == blob


@FAST
@given(finite_float32, st.sampled_from(["array", "list", "big-endian", "float64", "bytes"]))
def test_vector_field_round_trip_is_bit_exact(vector: np.ndarray, form: str) -> None:
    field = VectorField()
    given_value = {
        "array": vector,
        "list": [float(x) for x in vector],
        "big-endian": vector.astype(">f4"),
        "float64": vector.astype(np.float64),
        "bytes": vector.astype("<f4").tobytes(),
    }[form]
    stored = field.db_value(given_value)
    assert stored == vector.astype("<f4").tobytes()
    read = field.python_value(stored)
    assert read.view(np.uint32).tolist() == vector.view(np.uint32).tolist()


# --------------------------------------------------------------------------- queries and keyword search


@pytest.fixture(scope="module")
def search_db(tmp_path_factory: pytest.TempPathFactory):
    """One database for the whole module: hypothesis runs many examples per test function."""
    path: Path = tmp_path_factory.mktemp("props") / "ctx.sqlite"
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    for n, text in enumerate(VOCAB_TEXTS):
        store.ingest("props", f"doc{n}", text)
    yield db
    db.close()


VOCAB = ["alpha", "beta", "gamma", "delta", "near", "and", "or", "not", "x1", "y2"]
VOCAB_TEXTS = [
    "alpha beta gamma",
    "alpha delta near",
    "beta and or not",
    "gamma x1 y2 alpha",
    "delta delta delta",
    "not near alpha beta",
]
OPERATOR_CHARS = [
    '"',
    "*",
    "^",
    ":",
    "+",
    "-",
    "(",
    ")",
    "{",
    "}",
    " ",
    "\t",
    ",",
    "\x00",
    "🔥",
    "\ud800",
]


@FAST
@given(any_text)
def test_user_query_never_raises_and_quotes_every_term(text: str) -> None:
    terms = unique_words(text)
    assert fts.user_query(text) == " ".join(f'"{t}"' for t in terms)
    assert fts.user_query(text, "any") == " OR ".join(f'"{t}"' for t in terms)
    assert '"' not in "".join(terms)
    # Every letter, digit, underscore and combining mark of the text is in some word, in order.
    kept = "".join(ch for ch in text if re.match(r"\w", ch) or unicodedata.category(ch)[0] == "M")
    assert "".join(words(text)) == kept


@FAST
@given(any_text)
def test_keyword_search_never_raises(search_db, text: str) -> None:
    ctx_models.bind(search_db)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be sent to SQLite: refused with our error, or dropped
        # like any other non-word character. Never a crash.
        try:
            result = search.keyword_search(text)
        except ValidationError:
            return
    else:
        result = search.keyword_search(text)
    assert isinstance(result, list)
    assert not search_db.in_transaction()


@FAST
@given(storable_text)
def test_keyword_search_accepts_everything_sqlite_can_store(search_db, text: str) -> None:
    ctx_models.bind(search_db)
    assert isinstance(search.keyword_search(text), list)
    assert isinstance(search.hybrid_search(text, mode="keyword"), list)


@FAST
@given(
    st.lists(
        st.one_of(
            st.sampled_from(VOCAB),
            st.sampled_from([v.upper() for v in VOCAB]),
            st.sampled_from(OPERATOR_CHARS),
        ),
        max_size=12,
    )
)
def test_keyword_search_ands_the_words(search_db, parts: list[str]) -> None:
    """With match="all", whatever operators surround them, the words are ANDed: every chunk holding all."""
    ctx_models.bind(search_db)
    text = " ".join(parts)
    wanted = {w.lower() for w in re.findall(r"\w+", text)}
    expected = sorted(
        f"doc{n}" for n, body in enumerate(VOCAB_TEXTS) if wanted and wanted <= set(body.split())
    )
    try:
        hits = search.keyword_search(text, match="all")
    except ValidationError:
        assert "\ud800" in text
        return
    ids = {d.id: d.source_id for d in ctx_models.Document.select()}
    assert sorted(ids[h.document_id] for h in hits) == expected


@FAST
@given(
    st.lists(
        st.one_of(
            st.sampled_from(VOCAB),
            st.sampled_from([v.upper() for v in VOCAB]),
            st.sampled_from(OPERATOR_CHARS),
        ),
        max_size=12,
    )
)
def test_keyword_search_ors_the_informative_words(search_db, parts: list[str]) -> None:
    """By default every chunk holding any word of the question is found, except through words
    in more than half of the chunks (BM25 gives them no weight), unless only such words remain."""
    ctx_models.bind(search_db)
    text = " ".join(parts)
    wanted = {w.lower() for w in re.findall(r"\w+", text)}
    holding = {w: {n for n, body in enumerate(VOCAB_TEXTS) if w in body.split()} for w in wanted}
    informative = {w for w in wanted if len(holding[w]) <= len(VOCAB_TEXTS) / 2} or wanted
    expected = sorted(f"doc{n}" for w in informative for n in holding[w])
    try:
        hits = search.keyword_search(text)
    except ValidationError:  # a lone surrogate is refused in every question, as in every input
        assert "\ud800" in text
        return
    ids = {d.id: d.source_id for d in ctx_models.Document.select()}
    assert sorted({ids[h.document_id] for h in hits}) == sorted(set(expected))


# --------------------------------------------------------------------------- chunking


def non_space(text: str) -> list[str]:
    return [c for c in text if c not in WHITE_SPACE]


chunk_alphabet = st.characters(exclude_categories=("Cs",))
bodies = st.lists(
    st.one_of(
        st.sampled_from([" ", "\n", "\n\n", "\t", "\u3000", " \n\n "]),
        chunk_alphabet,
        st.sampled_from(["a", "é", "€", "😀", "word", "longerword"]),
    ),
    max_size=300,
).map("".join)


@FAST
@given(bodies, st.integers(1, 30))
def test_chunk_text_invariants(body: str, max_tokens: int) -> None:
    chunks = chunk_text(body, max_tokens)
    assert chunks, "every document has at least one chunk"
    limit = max_tokens * 4
    for chunk in chunks:
        assert len(chunk.encode("utf-8")) <= limit, (chunk, limit)
    assert non_space("".join(chunks)) == non_space(body)
    if non_space(body):
        assert all(non_space(c) for c in chunks), "no empty chunk besides an empty body's"
    else:
        assert chunks == [""]
    assert chunk_text(body, max_tokens) == chunks  # deterministic


word = st.text(
    st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=12
)


@FAST
@given(st.integers(4, 30), st.data())
def test_chunk_text_keeps_words_whole_and_in_order(max_tokens: int, data: st.DataObject) -> None:
    limit = max_tokens * 4
    words = data.draw(
        st.lists(
            word.filter(lambda w: len(w.encode()) < limit and not set(w) & WHITE_SPACE),
            min_size=1,
            max_size=60,
        )
    )
    separators = data.draw(
        st.lists(st.sampled_from([" ", "\n", "\n\n"]), min_size=len(words), max_size=len(words))
    )
    body = "".join(w + s for w, s in zip(words, separators)).rstrip()
    chunks = chunk_text(body, max_tokens)
    assert [w for c in chunks for w in c.split()] == words
    assert all(len(c.encode()) <= limit for c in chunks)


@FAST
@given(any_text, surrogates, any_text)
def test_chunk_text_and_ingest_refuse_lone_surrogates(
    search_db, before: str, surrogate: str, after: str
) -> None:
    ctx_models.bind(search_db)
    text = before + surrogate + after
    with pytest.raises(ValidationError):
        chunk_text(text)
    with pytest.raises(ValidationError):
        store.ingest("props", "surrogate", text)
    assert store.get_document_by_source("props", "surrogate") is None
