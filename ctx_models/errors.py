"""The exceptions ctx_models raises.

Every failure a caller can cause derives from :class:`CtxModelsError`, so
``except CtxModelsError`` is enough to catch them all. Each message says what
was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CtxModelsError",
    "ConfigError",
    "DatabaseError",
    "ConnectionLostError",
    "NotADatabaseError",
    "SchemaVersionError",
    "ValidationError",
    "VectorError",
    "DimensionMismatchError",
    "QuerySyntaxError",
    "CorruptValueError",
    "EmbedderUnavailableError",
    "ModelFilesError",
    "OutOfMemoryError",
    "SyncInProgressError",
    "NotFoundError",
    "TimeLimitError",
]


class CtxModelsError(Exception):
    """Base class of every error ctx_models raises on purpose."""


class ConfigError(CtxModelsError):
    """A configuration file is missing, unreadable or lacks ``[db] path``."""


class DatabaseError(CtxModelsError):
    """The database file cannot be opened, read or written."""


class ConnectionLostError(DatabaseError):
    """The connection to the database server was lost during a call (a server restart, a
    terminated session); what that call was writing was rolled back, and the next call
    connects again."""


class NotADatabaseError(DatabaseError):
    """The path names something that is not a usable SQLite database."""


class SchemaVersionError(DatabaseError):
    """The database was written by a newer ctx_models; it is left untouched."""


class ValidationError(CtxModelsError, ValueError):
    """A value passed to the API is not acceptable; nothing was written."""


class VectorError(ValidationError):
    """A vector is empty, not 1-D, not numeric, or holds NaN or infinity."""


class DimensionMismatchError(VectorError):
    """A vector's length differs from the length already used for its model."""


class QuerySyntaxError(ValidationError):
    """A raw FTS5 query (``raw=True``) is not valid FTS5 syntax."""


class CorruptValueError(CtxModelsError):
    """A value stored by another program cannot be decoded (bad BLOB, bad cursor)."""


class EmbedderUnavailableError(CtxModelsError):
    """No embedder is known for a model name, or its package is not installed."""


class ModelFilesError(EmbedderUnavailableError):
    """A model's files are not on this machine (and cannot be downloaded), or are damaged."""


class OutOfMemoryError(CtxModelsError, MemoryError):
    """The stored vectors do not fit in this process's memory for an in-memory search."""


class SyncInProgressError(CtxModelsError):
    """Another sync is writing to the same store; nothing was read or written."""


class NotFoundError(CtxModelsError, LookupError):
    """What was asked for by id or name (a document, a tool) does not exist."""


class TimeLimitError(CtxModelsError, TimeoutError):
    """A request ran past its time limit; the answer, when it comes, is dropped."""
