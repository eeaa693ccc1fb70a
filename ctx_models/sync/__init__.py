"""Filling a store from folders of files, as ``ctx sync filesystem`` does, incrementally.

:func:`sync_folder` walks a folder, reads the files that are new or changed
(text as UTF-8; PDF, DOCX, PPTX and XLSX extracted), and writes them as the
documents ctx's filesystem connector makes, with chunks and vectors, one
transaction per batch. A second run over unchanged files reads none of them
and writes nothing.
"""

from __future__ import annotations

from .extract import ExtractionError, extract_text
from .folder import DEFAULT_MAX_BYTES, STAT_KEY, SyncReport, store_embedder, sync_folder
from .lock import sync_lock
from .walk import ALWAYS_EXCLUDED, DEFAULT_INCLUDE, EXTRACTED_TYPES

__all__ = [
    "ALWAYS_EXCLUDED",
    "DEFAULT_INCLUDE",
    "DEFAULT_MAX_BYTES",
    "EXTRACTED_TYPES",
    "STAT_KEY",
    "ExtractionError",
    "SyncReport",
    "extract_text",
    "store_embedder",
    "sync_folder",
    "sync_lock",
]
