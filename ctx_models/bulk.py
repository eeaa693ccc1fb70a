"""Bulk inserts: peewee's ``insert_many`` statement, compiled once and reused.

Peewee builds an ``insert_many`` query node by node, which costs about as much
per row as SQLite takes to store it. Here peewee compiles the statement for one
row (table, columns, ``ON CONFLICT`` clause: all from the models), and the
``VALUES`` group is repeated for as many rows as one statement may carry. Rows
must already hold database values (what ``Field.db_value`` returns); the store
validates and converts them before they get here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from peewee import Database, Field, Model, ModelInsert

__all__ = ["BulkInsert"]

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER since 3.32 is 32766; stay well below it.
MAX_PARAMETERS = 30_000
MAX_ROWS_PER_STATEMENT = 2_000


class BulkInsert:
    """A multi-row INSERT for ``fields`` of ``model``, reusable for any number of rows."""

    def __init__(
        self,
        model: type[Model],
        fields: Sequence[Field],
        on_conflict: Callable[[ModelInsert], ModelInsert] | None = None,
    ) -> None:
        self.model = model
        self.fields = list(fields)
        self.on_conflict = on_conflict
        self.width = len(self.fields)
        self.rows_per_statement = max(1, min(MAX_ROWS_PER_STATEMENT, MAX_PARAMETERS // self.width))
        self._templates: dict[type[Database], tuple[str, str, str]] = {}

    def _template(self, db: Database) -> tuple[str, str, str]:
        """(head, one row's placeholder group, tail) of the statement in ``db``'s dialect."""
        template = self._templates.get(type(db))
        if template is None:
            query = self.model.insert_many([(None,) * self.width], fields=self.fields)
            if self.on_conflict is not None:
                query = self.on_conflict(query)
            sql, params = db.get_sql_context().sql(query).query()
            group = "(" + ", ".join([db.param] * self.width) + ")"
            head, found, tail = sql.partition(" VALUES " + group)
            if not found or len(params) != self.width or db.param in tail:
                raise RuntimeError(f"unexpected insert SQL for {self.model.__name__}: {sql}")
            template = self._templates[type(db)] = (head + " VALUES ", group, tail)
        return template

    @staticmethod
    @lru_cache(maxsize=64)
    def _statement(head: str, group: str, tail: str, rows: int) -> str:
        return head + ", ".join([group] * rows) + tail

    def execute(self, db: Database, rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` (tuples of database values); returns how many were sent."""
        template = self._template(db)
        limit = self.rows_per_statement * self.width
        batch: list[Any] = []
        count = 0
        for row in rows:
            batch.extend(row)
            count += 1
            if len(batch) >= limit:
                db.execute_sql(self._statement(*template, self.rows_per_statement), batch)
                batch = []
        if batch:
            db.execute_sql(self._statement(*template, len(batch) // self.width), batch)
        return count
