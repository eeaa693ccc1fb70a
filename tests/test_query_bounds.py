"""A question is bounded: at most MAX_QUERY_CHARS characters and, for keyword search,
MAX_QUERY_WORDS distinct words; past either, our ValidationError says which and what to do.

Before, a single 1 MB word took 16.7 s (each of its prefixes was copied and compared),
and 100,000 words became 100,000 index look-ups and query terms.
"""

from __future__ import annotations

import pytest

from ctx_models import search, store
from ctx_models.errors import ValidationError
from ctx_models.words import unique_words

pytestmark = pytest.mark.backends("sqlite", "postgres")

ONE_MB_WORD = "prot" + "e" * (1_000_000 - 4)
MANY_WORDS = " ".join(f"w{i}" for i in range(100_000))


@pytest.fixture
def corpus(db):
    store.ingest("s", "a", "proteins and protein folding", updated_at=1_767_225_600)
    store.ingest("s", "b", "word w1 and w2", updated_at=1_767_225_600)
    return db


CALLS = {
    "keyword_search": lambda q: search.keyword_search(q),
    "keyword_search all": lambda q: search.keyword_search(q, match="all"),
    "hybrid": lambda q: search.hybrid_search(q),
    "hybrid keyword": lambda q: search.hybrid_search(q, mode="keyword"),
    "hybrid semantic": lambda q: search.hybrid_search(q, mode="semantic"),
    "vector_search": lambda q: search.vector_search(q),
}


@pytest.mark.parametrize("call", CALLS)
def test_a_one_megabyte_word_is_refused_with_the_bound(corpus, call: str) -> None:
    with pytest.raises(ValidationError, match=r"1,000,000 characters.*MAX_QUERY_CHARS"):
        CALLS[call](ONE_MB_WORD)


@pytest.mark.parametrize("call", [c for c in CALLS if c not in ("hybrid semantic", "vector_search")])
def test_a_hundred_thousand_words_are_refused_with_the_bound(corpus, call: str) -> None:
    # Short enough in characters, too many words for keyword search.
    words = " ".join(f"w{i}" for i in range(search.MAX_QUERY_WORDS + 1))
    assert len(words) <= search.MAX_QUERY_CHARS
    with pytest.raises(ValidationError, match=r"2,001 different words.*MAX_QUERY_WORDS"):
        CALLS[call](words)
    with pytest.raises(ValidationError, match="MAX_QUERY_CHARS|MAX_QUERY_WORDS"):
        CALLS[call](MANY_WORDS)


def test_semantic_search_takes_many_words_within_the_characters(corpus, embedder) -> None:
    store.embed_pending(embedder)
    words = " ".join(f"w{i}" for i in range(search.MAX_QUERY_WORDS + 1))
    assert search.hybrid_search(words, mode="semantic") is not None
    assert isinstance(search.vector_search(words), list)


def test_questions_at_the_bounds_are_searched(corpus) -> None:
    long_word = "prot" + "e" * (search.MAX_QUERY_CHARS - 4)
    assert search.hybrid_search(long_word, mode="keyword") == []
    words = " ".join(["protein"] + [f"x{i}" for i in range(search.MAX_QUERY_WORDS - 1)])
    assert len(unique_words(words)) == search.MAX_QUERY_WORDS
    found = search.hybrid_search(words, mode="keyword")
    assert [r.source_id for r in found] == ["a"]


def test_the_cli_says_it_in_one_line(corpus, run_cli, location) -> None:
    code, out, err = run_cli("search", ONE_MB_WORD, "--db", str(location))
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "MAX_QUERY_CHARS" in err and "unexpected" not in err
