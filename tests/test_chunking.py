"""The contract's chunking rule, pinned by hand-written outputs and by a port of the ctx tool's chunker.

max_chars = max_tokens x 4, counted in UTF-8 bytes (Rust's ``str::len``). Paragraphs
split on "\\n\\n", trimmed (Rust's ``str::trim``: Unicode White_Space), empty ones
dropped, packed with "\\n\\n" while within max; an oversized paragraph is cut at the
last newline, else the last space, before the limit, never inside a character.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctx_models import ValidationError, store
from ctx_models.chunking import DEFAULT_MAX_TOKENS, chunk_text
from ctx_models.hashing import chunk_hash

# Unicode White_Space (what Rust's str::trim removes), written out independently.
RUST_WHITESPACE = "".join(
    map(
        chr,
        [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
         0x202F, 0x205F, 0x3000],
    )
)

BOX = "\u2500"  # '─', 3 bytes in UTF-8
SMILE = "\U0001f600"  # 4 bytes in UTF-8


def nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


# --------------------------------------------------------------------------- a port of the Rust chunker


def _rust_trim(text: str) -> str:
    return text.strip(RUST_WHITESPACE)


def _snap(data: bytes, index: int) -> int:
    if index >= len(data):
        return len(data)
    while index > 0 and (data[index] & 0xC0) == 0x80:
        index -= 1
    return index


def _second_char(data: bytes) -> int:
    i = 1
    while i < len(data) and (data[i] & 0xC0) == 0x80:
        i += 1
    return i


def rust_chunk_text(text: str, max_tokens: int) -> list[str]:
    """context-harness-core's chunk::chunk_text, transcribed statement by statement."""
    max_chars = max_tokens * 4
    if text == "":
        return [""]
    chunks: list[str] = []
    buf = ""
    for para in text.split("\n\n"):
        trimmed = _rust_trim(para)
        if not trimmed:
            continue
        would_be = nbytes(trimmed) if not buf else nbytes(buf) + 2 + nbytes(trimmed)
        if would_be > max_chars and buf:
            chunks.append(buf)
            buf = ""
        if nbytes(trimmed) > max_chars:
            if buf:
                chunks.append(buf)
                buf = ""
            remaining = trimmed.encode("utf-8")
            while remaining:
                split_at = _snap(remaining, min(len(remaining), max_chars))
                if split_at == 0:
                    split_at = _second_char(remaining)
                if split_at < len(remaining):
                    window = remaining[:split_at]
                    pos = window.rfind(b"\n")
                    if pos < 0:
                        pos = window.rfind(b" ")
                    actual = pos + 1 if pos >= 0 else split_at
                else:
                    actual = split_at
                actual = _snap(remaining, actual)
                if actual == 0:
                    actual = _second_char(remaining)
                piece = remaining[:actual].decode("utf-8")
                if _rust_trim(piece):
                    chunks.append(_rust_trim(piece))
                remaining = remaining[actual:]
        else:
            buf = trimmed if not buf else buf + "\n\n" + trimmed
    if buf:
        chunks.append(buf)
    if not chunks:
        chunks.append(_rust_trim(text))
    return chunks


# --------------------------------------------------------------------------- hand-written outputs

LETTERS26 = "abcdefghijklmnopqrstuvwxyz"

HAND_CASES = [
    # (text, max_tokens, expected)  -- max_tokens=5 means 20 bytes
    ("Hello, world!", 5, ["Hello, world!"]),
    ("aaaa\n\nbbbb\n\ncccc", 5, ["aaaa\n\nbbbb\n\ncccc"]),
    # exactly 20 bytes joined stays one chunk; 21 does not
    ("aaaaaaaa\n\nbbbbbbbbbb", 5, ["aaaaaaaa\n\nbbbbbbbbbb"]),
    ("aaaaaaaa\n\nbbbbbbbbbbb", 5, ["aaaaaaaa", "bbbbbbbbbbb"]),
    # trimming, empty paragraphs dropped, three newlines are a split plus leading newline
    ("  hello  \n\n\n\n   \n\n world \t", 5, ["hello\n\nworld"]),
    ("a\n\n\nb", 5, ["a\n\nb"]),
    # oversized paragraph: cut after the last space before the limit
    (
        "the quick brown fox jumps over the lazy dog",
        5,
        ["the quick brown fox", "jumps over the lazy", "dog"],
    ),
    # a newline in the window wins over a later space
    ("aaaa\nbbbb cccc dddd eeee", 5, ["aaaa", "bbbb cccc dddd eeee"]),
    # no newline or space: a hard cut at the limit
    (LETTERS26, 5, [LETTERS26[:20], LETTERS26[20:]]),
    # an oversized paragraph flushes the buffer and is not merged with what follows
    (f"hi\n\n{LETTERS26}\n\nyo", 5, ["hi", LETTERS26[:20], LETTERS26[20:], "yo"]),
    # bytes, not characters: 7 x '─' is 7 characters but 21 bytes
    (BOX * 6, 5, [BOX * 6]),
    (BOX * 7, 5, [BOX * 6, BOX]),
    # 6 x '─' (18 bytes) + "\n\n" + "a" is 21 bytes: two chunks
    (BOX * 6 + "\n\na", 5, [BOX * 6, "a"]),
    # emoji straddling the limit is not cut: 2 + 5*4 = 22 bytes, byte 20 is inside the 5th emoji
    ("ab" + SMILE * 5, 5, ["ab" + SMILE * 4, SMILE]),
    # the space at byte 20 is not "before the limit": cut at the earlier space
    (f"abc {SMILE * 4} xyz", 5, ["abc", f"{SMILE * 4} xyz"]),
    # max_tokens=1 -> 4 bytes
    (SMILE * 2, 1, [SMILE, SMILE]),
    (f"{BOX}a{BOX}", 1, [f"{BOX}a", BOX]),
    ("ab cd ef", 1, ["ab", "cd", "ef"]),
    # empty and whitespace-only bodies give one empty chunk
    ("", 5, [""]),
    ("   \n\n \t \n\n", 5, [""]),
    # Rust trims Unicode White_Space (NBSP, ideographic space) but not U+001F
    ("\u00a0x\u3000", 5, ["x"]),
    ("\x1fabc\x1f", 5, ["\x1fabc\x1f"]),
]


@pytest.mark.parametrize(("text", "max_tokens", "expected"), HAND_CASES)
def test_hand_written_outputs(text: str, max_tokens: int, expected: list[str]) -> None:
    assert chunk_text(text, max_tokens) == expected
    assert rust_chunk_text(text, max_tokens) == expected  # the port agrees with the hand-written rule


def test_store_reexports_the_same_chunker() -> None:
    assert store.chunk_text("a b c d e f g h", 1) == chunk_text("a b c d e f g h", 1)


def test_default_max_tokens_is_700_tokens_of_2800_bytes() -> None:
    assert DEFAULT_MAX_TOKENS == 700
    assert chunk_text("a" * 2800) == ["a" * 2800]
    assert chunk_text("a" * 2801) == ["a" * 2800, "a"]
    # 934 x '─' = 2802 bytes but only 934 characters: split by bytes
    assert chunk_text(BOX * 934) == [BOX * 933, BOX]


def test_deterministic() -> None:
    text = "Alpha\n\nBeta\n\n" + "word " * 40 + "\n\n" + BOX * 30
    first = chunk_text(text, 5)
    for _ in range(3):
        assert chunk_text(text, 5) == first
    assert [chunk_hash(c) for c in chunk_text(text, 5)] == [chunk_hash(c) for c in first]


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "5", None])
def test_max_tokens_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValidationError):
        chunk_text("text", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [b"bytes", None, 12, "lone \ud800 surrogate"])
def test_text_must_be_valid_str(bad: object) -> None:
    with pytest.raises(ValidationError):
        chunk_text(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- properties

ALPHABET = ["a", "b", "c", " ", "\n", "\n\n", "\t", BOX, SMILE, "\u00e9", "\u00a0", "\u3000", "\x1f", "\r"]
texts = st.lists(st.sampled_from(ALPHABET), max_size=80).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=texts, max_tokens=st.integers(min_value=1, max_value=6))
def test_matches_the_rust_chunker(text: str, max_tokens: int) -> None:
    assert chunk_text(text, max_tokens) == rust_chunk_text(text, max_tokens)


@settings(max_examples=300, deadline=None)
@given(text=texts, max_tokens=st.integers(min_value=1, max_value=6))
def test_invariants(text: str, max_tokens: int) -> None:
    chunks = chunk_text(text, max_tokens)
    assert chunks, "at least one chunk"
    limit = max_tokens * 4
    for chunk in chunks:
        assert nbytes(chunk) <= limit
        assert chunk == _rust_trim(chunk)
        chunk.encode("utf-8")  # whole characters only
    if len(chunks) > 1:
        assert all(chunks)
    # only whitespace is ever dropped
    def squeeze(s):
        return "".join(ch for ch in s if ch not in RUST_WHITESPACE)

    assert squeeze("".join(chunks)) == squeeze(text)


# --------------------------------------------------------------------------- through the store


def test_ingest_stores_the_rule_s_chunks_with_contiguous_indexes(db, db_path) -> None:
    body = "intro\n\n" + " ".join(f"w{i}" for i in range(40)) + "\n\n" + SMILE * 9 + "\n\nend"
    result = store.ingest("fs", "doc", body, max_tokens=5)
    expected = chunk_text(body, 5)
    assert len(expected) > 4
    assert result.chunks == len(expected)
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index",
            (result.document_id,),
        ).fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == list(range(len(expected)))
    assert [r[1] for r in rows] == expected
    assert [r[2] for r in rows] == [chunk_hash(t) for t in expected]
