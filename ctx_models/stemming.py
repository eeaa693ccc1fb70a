"""English word stems (Snowball's English stemmer), remembered once computed.

The SQLite backend matches a question's word forms through their stems, and the
PostgreSQL backend marks matches in snippets with them (PostgreSQL's own
``english`` configuration stems with Snowball too).

>>> stem("scanners"), stem("running")
('scanner', 'run')
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["stem"]


class _Stemmer:
    """Snowball's English stemmer, with memory; one at a time (the stemmer keeps state)."""

    def __init__(self) -> None:
        self._stemmer: Any = None
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, word: str) -> str:
        stem = self._known.get(word)
        if stem is None:
            with self._lock:
                if self._stemmer is None:
                    # Imported on first use: snowballstemmer imports all of its 30
                    # languages (16 ms), which a vector search should not pay.
                    import snowballstemmer

                    self._stemmer = snowballstemmer.stemmer("english")
                stem = self._stemmer.stemWord(word)
            if len(self._known) < 500_000:  # bounded on unbounded vocabularies
                self._known[word] = stem
        return stem


stem = _Stemmer()
