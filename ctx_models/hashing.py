"""The contract's two hashes, byte for byte as the ``ctx`` tool computes them."""

from __future__ import annotations

import hashlib
import struct

__all__ = ["chunk_hash", "dedup_hash"]


def chunk_hash(text: str) -> str:
    """Lowercase hex SHA-256 of the chunk text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dedup_hash(source: str, source_id: str, updated_at: int, body: str) -> str:
    """SHA-256 over source, source_id, updated_at (int64 little-endian) and body, unseparated."""
    digest = hashlib.sha256()
    digest.update(source.encode("utf-8"))
    digest.update(source_id.encode("utf-8"))
    digest.update(struct.pack("<q", updated_at))
    digest.update(body.encode("utf-8"))
    return digest.hexdigest()
