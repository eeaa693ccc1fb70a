"""Identifiers (table, index, column names) written into SQL text, quoted the one safe way.

Values always go in as bound parameters; names cannot, so every name put into an
SQL string goes through :func:`quote_identifier`. Both SQLite and PostgreSQL read
a double-quoted identifier with inner double quotes doubled, whatever else it holds.
"""

from __future__ import annotations

__all__ = ["quote_identifier"]


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier: ``my"idx`` -> ``"my""idx"``.

    A NUL cannot be written in SQL text at all, so it is refused (ValueError):
    a caller reading names from a database another program wrote passes them as
    parameters where it can (e.g. SQLite's ``pragma_index_xinfo(?)``).
    """
    if "\x00" in name:
        raise ValueError(f"an SQL identifier cannot hold a NUL character: {name!r}")
    return '"' + name.replace('"', '""') + '"'
