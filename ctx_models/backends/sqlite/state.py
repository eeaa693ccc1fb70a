"""What each connection keeps between searches, and how it knows the data changed.

SQLite tells a connection that the data may have changed through two counters:
``PRAGMA data_version`` moves when another connection (or process) commits,
``total_changes`` when this one writes. Both belong to one connection, so each
connection (in peewee: each thread) keeps its own vector index and word counts,
valid while the counters stand still.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from dataclasses import dataclass, field

from peewee import Database

from .keyword import KeywordStats
from .vectors import VectorIndex

__all__ = ["ConnectionState", "state_for", "index_for"]


@dataclass
class ConnectionState:
    """What a connection keeps between searches: its vector index and keyword statistics."""

    vectors: VectorIndex = field(default_factory=VectorIndex)
    keywords: KeywordStats = field(default_factory=KeywordStats)


# One state per connection: the change counters are per connection, so an index
# validated by one connection says nothing about another's snapshot. Peewee
# gives each thread its own connection; a single-threaded program has one.
_STATES: weakref.WeakKeyDictionary[
    Database, dict[int, tuple[sqlite3.Connection, ConnectionState]]
] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def state_for(db: Database, conn: sqlite3.Connection) -> ConnectionState:
    """The search state of ``db`` as seen through ``conn`` (its current thread's connection)."""
    with _STATES_LOCK:
        per_connection = _STATES.setdefault(db, {})
        entry = per_connection.get(id(conn))
        # The connection is kept in the entry, so its id cannot be reused while listed.
        if entry is None or entry[0] is not conn:
            _forget_closed(per_connection)
            entry = per_connection[id(conn)] = (conn, ConnectionState())
        return entry[1]


def index_for(db: Database, conn: sqlite3.Connection) -> VectorIndex:
    """The vector index of ``db`` as seen through ``conn``."""
    return state_for(db, conn).vectors


def _forget_closed(per_connection: dict[int, tuple[sqlite3.Connection, ConnectionState]]) -> None:
    for key, (conn, _) in list(per_connection.items()):
        try:
            _ = conn.total_changes
        except sqlite3.ProgrammingError:  # closed
            del per_connection[key]
