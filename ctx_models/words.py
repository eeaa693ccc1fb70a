"""The word rule: which runs of characters in a question are words.

A word is a run of Unicode letters, digits, underscores and combining marks.
Python's ``\\w`` has no combining marks, so on its own it would cut a Devanagari
or Thai word into letters at every vowel sign or virama; here the marks join
the runs around them. This is the contract's rule for the ``ctx`` tool's
keyword search (letters, combining marks and digits, plus underscore), and
keyword search quotes each word whole so that FTS5 tokenises it as it
tokenised the indexed text.

>>> words("How do I promote a standby database?")
['How', 'do', 'I', 'promote', 'a', 'standby', 'database']
>>> words("हिन्दी भाषा")
['हिन्दी', 'भाषा']
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["words", "unique_words"]

# Splitting on one non-word character at a time keeps the runs of \w at even
# positions and each separator alone at an odd one.
_SEPARATOR = re.compile(r"(\W)")


def words(text: str) -> list[str]:
    """The words of ``text`` in order, as written (case kept)."""
    found: list[str] = []
    current = ""
    for position, piece in enumerate(_SEPARATOR.split(text)):
        if position % 2 == 0 or unicodedata.category(piece).startswith("M"):
            current += piece  # a run of \w, or a combining mark that joins two runs
        elif current:
            found.append(current)
            current = ""
    if current:
        found.append(current)
    return found


def unique_words(text: str) -> list[str]:
    """The words of ``text``, each once whatever its case, as first written.

    The first spelling is kept rather than a lower-cased one: FTS5 folds case
    with its own tables, and ``str.lower`` differs from them on a few letters.
    """
    first: dict[str, str] = {}
    for word in words(text):
        first.setdefault(word.lower(), word)
    return list(first.values())
