"""Comparing a SQLite database's schema with the contract's, through SQLite's own pragmas."""

from __future__ import annotations

from typing import Any

from ...identifiers import quote_identifier
from ...models import CONTRACT_TABLES, MODELS

__all__ = ["describe_schema", "reference_schema", "schema_differences"]


def describe_schema(conn: Any) -> dict[str, Any]:
    """What SQLite reports about the contract's tables: columns, indexes, foreign keys, FTS5 columns.

    ``conn`` is a ``sqlite3.Connection`` or a peewee database. Primary key columns
    are reported without NOT NULL, which the contract leaves open.
    """
    execute = conn.execute_sql if hasattr(conn, "execute_sql") else conn.execute
    description: dict[str, Any] = {}
    for table in CONTRACT_TABLES:
        row = execute("SELECT type, sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        if row is None:
            continue
        if table == "chunks_fts":
            description[table] = {"fts5_columns": _fts5_columns(row[1])}
            continue
        columns = [
            (name, decl_type, bool(notnull) and not pk, default, pk)
            for _, name, decl_type, notnull, default, pk in execute(f"PRAGMA table_info({quote_identifier(table)})")
        ]
        indexes = {}
        for _, name, unique, origin, partial in execute(f"PRAGMA index_list({quote_identifier(table)})"):
            # The index's name is another program's (any text, NUL included): a parameter.
            info = tuple(
                (col, bool(desc), coll)
                for _, _, col, desc, coll, key in execute(
                    "SELECT * FROM pragma_index_xinfo(?)", (name,)
                )
                if key
            )
            indexes[name] = (bool(unique), origin, bool(partial), info)
        foreign_keys = sorted(
            (src, ref_table, dst, on_update, on_delete, match)
            for _, _, ref_table, src, dst, on_update, on_delete, match in execute(
                f"PRAGMA foreign_key_list({quote_identifier(table)})"
            )
        )
        description[table] = {"columns": columns, "indexes": indexes, "foreign_keys": foreign_keys}
    return description


def _fts5_columns(sql: str) -> list[str] | None:
    """The column list of a ``CREATE VIRTUAL TABLE ... USING fts5(...)``, identifiers unquoted."""
    head, _, rest = sql.partition("(")
    if "fts5" not in head.lower() or not rest.rstrip().endswith(")"):
        return None
    items = [item.strip() for item in rest.rstrip()[:-1].split(",")]
    return [" ".join(part.strip('"`[]') for part in item.split()) for item in items]


def reference_schema() -> dict[str, Any]:
    """:func:`describe_schema` of a new database holding the models' tables and indexes.

    The contract's schema is what ``create_tables`` makes of the models, which
    is all ``run_migrations`` creates on a new SQLite file.
    """
    from peewee import SqliteDatabase

    reference = SqliteDatabase(":memory:")
    try:
        with reference.bind_ctx(MODELS):
            reference.create_tables(MODELS)
        return describe_schema(reference)
    finally:
        reference.close()


def schema_differences(actual: dict[str, Any], expected: dict[str, Any] | None = None) -> list[str]:
    """Human-readable differences from the contract's schema; empty when they match."""
    expected = reference_schema() if expected is None else expected
    problems: list[str] = []
    for table, want in expected.items():
        have = actual.get(table)
        if have is None:
            problems.append(f"table {table} is missing")
            continue
        for key in ("fts5_columns", "foreign_keys"):
            if key in want and have.get(key) != want[key]:
                problems.append(
                    f"{table}: {key.replace('_', ' ')} are {have.get(key)}, expected {want[key]}"
                )
        if "columns" in want:
            have_columns = {c[0]: c for c in have["columns"]}
            for column in want["columns"]:
                if column[0] not in have_columns:
                    problems.append(f"{table}: column {column[0]} is missing")
                elif have_columns[column[0]] != column:
                    problems.append(
                        f"{table}: column {column[0]} is {have_columns[column[0]][1:]}, expected {column[1:]}"
                    )
            for name in sorted(set(have_columns) - {c[0] for c in want["columns"]}):
                problems.append(f"{table}: unexpected column {name}")
            for name, index in want["indexes"].items():
                if name.startswith("sqlite_autoindex"):
                    if index not in have["indexes"].values():
                        problems.append(f"{table}: constraint index {index[3]} is missing")
                elif name not in have["indexes"]:
                    problems.append(f"{table}: index {name} is missing")
                elif have["indexes"][name] != index:
                    problems.append(
                        f"{table}: index {name} is {have['indexes'][name]}, expected {index}"
                    )
    return problems
