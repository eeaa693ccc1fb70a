"""ctx_models: the data layer of the Context Harness store, on peewee and SQLite.

One SQLite file holds documents, their chunks, an FTS5 index over the chunks,
embedding metadata, embedding vectors and per-connector sync checkpoints, in
the schema the ``ctx`` tool uses (see the storage contract).

>>> import ctx_models
>>> db = ctx_models.connect(":memory:")
>>> ctx_models.run_migrations(db).version
1
"""

from __future__ import annotations

from .backends import connect
from .errors import (
    ConfigError,
    ConnectionLostError,
    CorruptValueError,
    CtxModelsError,
    DatabaseError,
    DimensionMismatchError,
    EmbedderUnavailableError,
    ModelFilesError,
    NotADatabaseError,
    OutOfMemoryError,
    QuerySyntaxError,
    SchemaVersionError,
    SyncInProgressError,
    ValidationError,
    VectorError,
)
from .fields import EpochField, IntegerTextField, JSONObjectField, VectorField
from .models import (
    MODELS,
    Checkpoint,
    Chunk,
    ChunkFTS,
    ChunkVector,
    Document,
    Embedding,
    bind,
    bound_database,
    database_proxy,
)
from .schema import SCHEMA_VERSION, MigrationResult, run_migrations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "connect",
    "bind",
    "bound_database",
    "database_proxy",
    "run_migrations",
    "MigrationResult",
    "SCHEMA_VERSION",
    "MODELS",
    "Document",
    "Chunk",
    "Checkpoint",
    "ChunkFTS",
    "Embedding",
    "ChunkVector",
    "VectorField",
    "EpochField",
    "JSONObjectField",
    "IntegerTextField",
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
]
