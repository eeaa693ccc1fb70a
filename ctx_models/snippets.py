"""Snippets: the contract's match markers, and the start of a chunk for hits without them.

Keyword hits carry FTS5's snippet, with ``>>>`` and ``<<<`` around the
matching words and ``...`` where text was cut, as the ``ctx`` tool shows them.
Vector hits have no matching words: they show the start of the chunk, cut at a
word boundary.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["START", "END", "ELLIPSIS", "TOKENS", "VECTOR_CHARS", "start_of", "plain", "around"]

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


_TOKEN = re.compile(r"\w+")


def around(text: str, hits: Collection[int], tokens: int = TOKENS) -> str:
    """The ``tokens`` words of ``text`` that hold the most hits, hits marked as FTS5 marks them.

    ``hits`` are the character offsets where matching words start.

    >>> around("one two three four five", {14}, 3)
    '...three >>>four<<< five'
    """
    words = list(_TOKEN.finditer(text))
    if not words:
        return text
    marked = {i for i, word in enumerate(words) if word.start() in hits}
    first = 0
    if marked and len(words) > tokens:
        ordered = sorted(marked)
        # The window with the most hits, started a little before its first one.
        best = max(ordered, key=lambda h: sum(1 for x in ordered if h <= x < h + tokens))
        first = max(0, min(best - tokens // 6, len(words) - tokens))
    last = min(len(words), first + tokens) - 1
    pieces = []
    cursor = words[first].start()
    for i in range(first, last + 1):
        word = words[i]
        pieces.append(text[cursor : word.start()])
        pieces.append(f"{START}{word.group()}{END}" if i in marked else word.group())
        cursor = word.end()
    body = "".join(pieces)
    return (ELLIPSIS if first > 0 else "") + body + (ELLIPSIS if last < len(words) - 1 else "")
