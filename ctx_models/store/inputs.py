"""Validating what callers pass in, before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidationError
from ..fields import dump_json, dump_json_object, encodable, load_json, to_epoch


def optional_text(value: Any, what: str) -> str | None:
    """None, or a str :func:`checked_text` accepts."""
    return None if value is None else checked_text(value, what)


def checked_text(value: Any, what: str, *, empty: bool = True) -> str:
    """A str that SQLite and the other program can store faithfully, or a ValidationError."""
    if value is None:
        raise ValidationError(f"{what} is required, got None")
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {type(value).__name__}")
    if not empty and not value.strip():
        raise ValidationError(f"{what} must not be empty")
    if "\x00" in value:
        raise ValidationError(
            f"{what} contains a NUL character at index {value.index(chr(0))}; remove it "
            "(other SQLite programs cut text at NUL)"
        )
    return encodable(value, what)


def key_text(value: Any, what: str) -> str:
    """A str to look rows up by (an id, a source): any text that has a UTF-8 form."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a str, got {type(value).__name__}")
    return encodable(value, what)


def checked_raw_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        checked_text(value, "raw_json")
        dump_json(load_json(value, "raw_json", error=ValidationError), "raw_json")  # no "\udcff"
        return value
    return dump_json(value, "raw_json")


@dataclass
class PendingDocument:
    """A validated document on its way in, and what the store decided to do with it."""

    source: str
    source_id: str
    body: str
    title: str | None
    author: str | None
    source_url: str | None
    content_type: str
    metadata_json: str
    raw_json: str | None
    created_at: int | None
    updated_at: int | None
    # Decided against the stored row:
    id: str = ""
    status: str = ""
    final_created_at: int = 0
    final_updated_at: int = 0
    # The stored created_at is not epoch seconds (another program's): written anew.
    replace_created_at: bool = False
    dedup: str = ""
    chunks: list[str] | None = None
    vectors: np.ndarray | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.source,
            self.source_id,
            self.source_url,
            self.title,
            self.author,
            self.final_created_at,
            self.final_updated_at,
            self.content_type,
            self.body,
            self.metadata_json,
            self.raw_json,
            self.dedup,
        )


INGEST_KEYS = frozenset(
    "source source_id body title author source_url created_at updated_at content_type "
    "metadata raw_json".split()
)


def pending_document(
    source: Any,
    source_id: Any,
    body: Any,
    *,
    title: Any = None,
    author: Any = None,
    source_url: Any = None,
    created_at: Any = None,
    updated_at: Any = None,
    content_type: Any = "text/plain",
    metadata: Any = None,
    raw_json: Any = None,
) -> PendingDocument:
    return PendingDocument(
        source=checked_text(source, "source", empty=False),
        source_id=checked_text(source_id, "source_id", empty=False),
        body=checked_text(body, "body"),
        title=optional_text(title, "title"),
        author=optional_text(author, "author"),
        source_url=optional_text(source_url, "source_url"),
        content_type=checked_text(content_type, "content_type", empty=False),
        metadata_json=dump_json_object({} if metadata is None else metadata, "metadata"),
        raw_json=checked_raw_json(raw_json),
        created_at=None if created_at is None else to_epoch(created_at, "created_at"),
        updated_at=None if updated_at is None else to_epoch(updated_at, "updated_at"),
    )


def pending_from_item(item: Any) -> PendingDocument:
    if isinstance(item, PendingDocument):
        return item
    if not isinstance(item, Mapping):
        raise ValidationError(
            f"ingest_many() items must be mappings with source, source_id and body, "
            f"got {type(item).__name__}"
        )
    unknown = set(item) - INGEST_KEYS
    if unknown:
        raise ValidationError(
            f"unknown item keys {sorted(unknown)}; allowed: {sorted(INGEST_KEYS)}"
        )
    missing = {"source", "source_id", "body"} - set(item)
    if missing:
        raise ValidationError(f"item lacks {sorted(missing)}")
    return pending_document(**item)
