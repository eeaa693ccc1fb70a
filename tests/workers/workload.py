"""The deterministic documents the worker processes write and the tests check.

Imported by the worker scripts (which run with this directory on sys.path) and
by the tests. Every paragraph of a document's body carries the document's
number and its version (``doc003``, ``v0007``), so any chunk tells which write
it came from. The number of paragraphs changes with the version, so a reader
that mixed two versions of a document would see a wrong chunk count too.
"""

from __future__ import annotations

import re

MAX_TOKENS = 25  # 100 bytes: each paragraph (65 to 84 bytes) is one chunk, two never fit
DIMS = 64
_FILLER = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
]
_VERSION = re.compile(r"\bv(\d{4})\b")
_DOC = re.compile(r"\bdoc(\d{3})\b")


def paragraph_count(doc: int, version: int) -> int:
    return 2 + (doc * 3 + version) % 4


def paragraph(doc: int, version: int, number: int) -> str:
    start = (doc * 7 + version * 3 + number) % len(_FILLER)
    words = [_FILLER[(start + k) % len(_FILLER)] for k in range(9)]
    return f"doc{doc:03d} v{version:04d} part{number} " + " ".join(words)


def body(doc: int, version: int) -> str:
    return "\n\n".join(paragraph(doc, version, n) for n in range(paragraph_count(doc, version)))


def item(source: str, doc: int, version: int) -> dict:
    return {
        "source": source,
        "source_id": f"doc{doc:03d}",
        "body": body(doc, version),
        "title": f"document {doc} version {version}",
        "updated_at": 1_700_000_000 + version,
        "metadata": {"doc": doc, "version": version},
    }


def version_of(text: str) -> int | None:
    """The version marker in a chunk text or snippet (None if the text has none)."""
    found = {int(v) for v in _VERSION.findall(text)}
    if len(found) > 1:
        raise AssertionError(f"text mixes versions {sorted(found)}: {text!r:.200}")
    return found.pop() if found else None


def doc_of(text: str) -> int | None:
    found = {int(v) for v in _DOC.findall(text)}
    if len(found) > 1:
        raise AssertionError(f"text mixes documents {sorted(found)}: {text!r:.200}")
    return found.pop() if found else None
