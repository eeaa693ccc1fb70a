"""Snippets: the contract's match markers, and the start of a chunk for hits without them.

Keyword hits carry FTS5's snippet, with ``>>>`` and ``<<<`` around the
matching words and ``...`` where text was cut, as the ``ctx`` tool shows them.
Vector hits have no matching words: they show the start of the chunk, cut at a
word boundary.
"""

from __future__ import annotations

__all__ = ["START", "END", "ELLIPSIS", "TOKENS", "VECTOR_CHARS", "start_of", "plain"]

START, END, ELLIPSIS, TOKENS = ">>>", "<<<", "...", 48
#: How much of a chunk a vector hit shows.
VECTOR_CHARS = 240


def start_of(text: str, limit: int = VECTOR_CHARS) -> str:
    """The start of ``text``, cut at a word boundary with an ellipsis when it goes on.

    >>> start_of("alpha beta gamma", 12)
    'alpha beta...'
    """
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + ELLIPSIS


def plain(snippet: str) -> str:
    """The snippet without its match markers, on one line.

    >>> plain("the >>>replica<<< lag")
    'the replica lag'
    """
    return " ".join(snippet.replace(START, "").replace(END, "").split())
