"""Peewee models for the six tables of the storage contract.

The models import without a database: they are bound to :data:`database_proxy`,
which :func:`ctx_models.connect` (or :func:`bind`) points at a real database.
For a second database in the same process use peewee's ``bind_ctx``::

    with other_db.bind_ctx(ctx_models.MODELS):
        ...

Declared column types, NOT NULLs, SQL defaults, UNIQUE constraints, foreign
keys and the four named indexes are exactly the contract's, so a database made
here opens in the ``ctx`` tool and the reverse, and peewee's own tools
(``playhouse.schema_diff``, ``pwiz``) see the models and the file agree.
Foreign keys get ``index=False`` because the contract's indexes have names of
their own; they are declared with ``add_index`` below.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from peewee import (
    SQL,
    Database,
    DatabaseProxy,
    ForeignKeyField,
    Model,
    ModelIndex,
)
from playhouse.sqlite_ext import FTS5Model, SearchField

from .errors import DatabaseError
from .fields import (
    EpochField,
    IntegerField,
    IntegerTextField,
    JSONObjectField,
    TextField,
    VectorField,
)

__all__ = [
    "database_proxy",
    "bind",
    "bound_database",
    "new_id",
    "new_ids",
    "Document",
    "Chunk",
    "Checkpoint",
    "ChunkFTS",
    "Embedding",
    "ChunkVector",
    "MODELS",
    "CONTRACT_TABLES",
    "SCHEMA_VERSION",
]

#: Placeholder every model is bound to until :func:`bind` or ``connect()`` runs.
database_proxy = DatabaseProxy()


def new_id() -> str:
    """A fresh UUID v4 string, the id format the ``ctx`` tool uses."""
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    """``count`` fresh UUID v4 strings from one read of the system's random source.

    ``uuid4()`` reads it once per id, releasing the GIL each time; while the
    ingest worker thread runs, every such release can wait for a thread switch.
    """
    raw = os.urandom(16 * count)
    return [str(uuid.UUID(bytes=raw[i : i + 16], version=4)) for i in range(0, 16 * count, 16)]


class BaseModel(Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class Document(BaseModel):
    """One item from a connector: its text, metadata and dedup hash."""

    id = TextField(primary_key=True, default=new_id)
    source = TextField()
    source_id = TextField()
    source_url = TextField(null=True)
    title = TextField(null=True)
    author = TextField(null=True)
    created_at = EpochField()
    updated_at = EpochField()
    content_type = TextField(default="text/plain", constraints=[SQL("DEFAULT 'text/plain'")])
    body = TextField()
    metadata = JSONObjectField(
        column_name="metadata_json", default=dict, constraints=[SQL("DEFAULT '{}'")]
    )
    raw_json = TextField(null=True)
    dedup_hash = TextField()

    class Meta:
        table_name = "documents"
        constraints = [SQL("UNIQUE(source, source_id)")]

    def __repr__(self) -> str:
        return f"<Document {self.id} {self.source}:{self.source_id}>"


class Chunk(BaseModel):
    """A piece of a document's body, in order; ``hash`` is SHA-256 of ``text``."""

    id = TextField(primary_key=True, default=new_id)
    document = ForeignKeyField(
        Document, column_name="document_id", backref="chunks", index=False, lazy_load=True
    )
    chunk_index = IntegerField()
    text = TextField()
    hash = TextField()

    class Meta:
        table_name = "chunks"
        constraints = [SQL("UNIQUE(document_id, chunk_index)")]

    def __repr__(self) -> str:
        return f"<Chunk {self.id} #{self.chunk_index} of {self.__data__.get('document')}>"


class Checkpoint(BaseModel):
    """A connector's sync cursor: the newest ``updated_at`` it has synced."""

    source = TextField(primary_key=True)
    cursor = IntegerTextField()
    updated_at = EpochField()

    class Meta:
        table_name = "checkpoints"


class ChunkFTS(FTS5Model):
    """The FTS5 index over chunk text (SQLite only; BM25 ranking via ``rank``).

    An ordinary FTS5 table with its own copy of the text and no triggers: the
    store writes and deletes its rows beside the chunks, in the same transaction.
    """

    chunk_id = SearchField(unindexed=True)
    document_id = SearchField(unindexed=True)
    text = SearchField()

    class Meta:
        database = database_proxy
        table_name = "chunks_fts"


class Embedding(BaseModel):
    """Which model embedded a chunk, the vector length, and the chunk hash it saw."""

    chunk = ForeignKeyField(
        Chunk, column_name="chunk_id", primary_key=True, backref="embeddings", lazy_load=True
    )
    model = TextField()
    dims = IntegerField()
    created_at = EpochField()
    hash = TextField()

    class Meta:
        table_name = "embeddings"


class ChunkVector(BaseModel):
    """A chunk's embedding vector as a float32 BLOB."""

    chunk = ForeignKeyField(
        Chunk, column_name="chunk_id", primary_key=True, backref="vectors", lazy_load=True
    )
    document = ForeignKeyField(
        Document, column_name="document_id", backref="chunk_vectors", index=False, lazy_load=True
    )
    embedding = VectorField()

    class Meta:
        table_name = "chunk_vectors"


# The contract's named indexes; ``create_tables`` creates them with their tables.
Chunk.add_index(ModelIndex(Chunk, (Chunk.document,), name="idx_chunks_document_id"))
Document.add_index(ModelIndex(Document, (Document.source,), name="idx_documents_source"))
Document.add_index(
    ModelIndex(Document, (Document.updated_at.desc(),), name="idx_documents_updated_at")
)
ChunkVector.add_index(
    ModelIndex(ChunkVector, (ChunkVector.document,), name="idx_chunk_vectors_document_id")
)

#: Every model, parents before children (the order ``create_tables`` and deletes need).
MODELS: tuple[type[Model], ...] = (Document, Chunk, Checkpoint, ChunkFTS, Embedding, ChunkVector)

#: The contract's tables, in the order a reader meets them.
CONTRACT_TABLES = (
    "documents",
    "chunks",
    "checkpoints",
    "chunks_fts",
    "embeddings",
    "chunk_vectors",
)

#: The newest schema version this package knows how to create and read (see :mod:`.schema`).
SCHEMA_VERSION = 1


def bind(database: Database) -> Database:
    """Point every model at ``database`` (a peewee database you configured yourself)."""
    database_proxy.initialize(database)
    return database


def bound_database() -> Any:
    """The database the models currently use, honouring ``bind_ctx``; raise if none."""
    database = Document._meta.database
    if isinstance(database, DatabaseProxy):
        database = database.obj
    if database is None:
        raise DatabaseError(
            "no database is bound: call ctx_models.connect(path) first, "
            "or ctx_models.bind(your_peewee_database)"
        )
    return database
