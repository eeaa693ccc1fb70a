"""The FTS5 rows of the store: writing and deleting ``chunks_fts`` beside the chunks.

``chunks_fts`` has no triggers and no link to ``chunks`` besides the UNINDEXED
``chunk_id`` column, which FTS5 cannot look up without reading every row. So
when we write FTS rows we give each the rowid of its chunk; deleting a
document's rows is then a handful of rowid lookups. Rows written by another
program need not be aligned: when the aligned delete finds fewer rows than
there are chunks, the slow delete by ``document_id`` finishes the job.
"""

from __future__ import annotations

from collections.abc import Sequence

from peewee import SQL, Database

from ...models import Chunk, ChunkFTS

__all__ = ["insert_fts_rows_since", "delete_fts_rows", "max_chunk_rowid"]

_ROWID = SQL("rowid")


def max_chunk_rowid(db: Database) -> int:
    """The largest rowid in ``chunks`` (0 when empty); new chunks get larger ones."""
    return db.execute_sql("SELECT coalesce(max(rowid), 0) FROM chunks").fetchone()[0]


def insert_fts_rows_since(db: Database, rowid: int) -> int:
    """Write the FTS row of every chunk whose rowid is above ``rowid``; returns the count.

    The text is copied inside SQLite, not sent again from Python.
    """
    fts_max = db.execute_sql("SELECT coalesce(max(rowid), 0) FROM chunks_fts").fetchone()[0]
    new_chunks = Chunk.select(_ROWID, Chunk.id, Chunk.document, Chunk.text).where(_ROWID > rowid)
    if fts_max <= rowid:
        fields = [ChunkFTS.rowid, ChunkFTS.chunk_id, ChunkFTS.document_id, ChunkFTS.text]
    else:
        # Another program's rows sit above our rowids: let FTS5 number ours.
        new_chunks = new_chunks.select(Chunk.id, Chunk.document, Chunk.text).order_by(_ROWID)
        fields = [ChunkFTS.chunk_id, ChunkFTS.document_id, ChunkFTS.text]
    # Peewee returns lastrowid for inserts; the cursor knows how many rows went in.
    return db.execute(ChunkFTS.insert_from(new_chunks, fields)).rowcount


def delete_fts_rows(
    db: Database, document_ids: Sequence[str], *, always_scan: bool = False
) -> None:
    """Delete the FTS rows of these documents' chunks (call before deleting the chunks)."""
    chunk_rows = Chunk.select(_ROWID).where(Chunk.document.in_(document_ids))
    chunk_ids = Chunk.select(Chunk.id).where(Chunk.document.in_(document_ids))
    expected = Chunk.select().where(Chunk.document.in_(document_ids)).count()
    deleted = (
        ChunkFTS.delete()
        .where(ChunkFTS.rowid.in_(chunk_rows) & ChunkFTS.chunk_id.in_(chunk_ids))
        .execute()
    )
    if always_scan or deleted < expected:
        ChunkFTS.delete().where(ChunkFTS.document_id.in_(document_ids)).execute()
