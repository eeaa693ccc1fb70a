"""An embedder that hands back the stored vectors of chunk texts a changed document already had."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..embedders import Embedder, embed_texts
from ..hashing import chunk_hash
from ..models import Chunk, ChunkVector, Embedding

__all__ = ["ReusingEmbedder"]


class ReusingEmbedder:
    """The store's embedder, handing back the stored vector of a chunk text a document had before.

    Before a changed document is written, its chunks' current vectors of this
    model are loaded by hash; chunk texts found there are not embedded again.
    A document's vectors are dropped once its batch is committed.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model, self.dims = inner.model, inner.dims
        self.cache: dict[str, np.ndarray] = {}
        self.by_document: dict[str, list[str]] = {}
        self.reused = 0

    def remember(self, document_id: str) -> None:
        query: Any = (
            ChunkVector.select(Chunk.hash, ChunkVector.embedding)
            .join(Chunk, on=(ChunkVector.chunk == Chunk.id))
            .join(Embedding, on=(Embedding.chunk == Chunk.id))
            .where(
                (Chunk.document == document_id)
                & (Embedding.model == self.model)
                & (Embedding.hash == Chunk.hash)
            )
            .tuples()
        )
        hashes = []
        for digest, vector in query:
            if vector is not None and len(vector) == self.dims:
                self.cache[digest] = np.asarray(vector, dtype=np.float32)
                hashes.append(digest)
        self.by_document[document_id] = hashes

    def forget(self, document_id: str) -> None:
        for digest in self.by_document.pop(document_id, ()):
            self.cache.pop(digest, None)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.cache:
            return embed_texts(self.inner, texts)
        found = [self.cache.get(chunk_hash(text)) for text in texts]
        missing = [i for i, vector in enumerate(found) if vector is None]
        matrix = np.empty((len(texts), self.dims), dtype=np.float32)
        if missing:
            matrix[missing] = embed_texts(self.inner, [texts[i] for i in missing])
        for i, vector in enumerate(found):
            if vector is not None:
                matrix[i] = vector
        self.reused += len(texts) - len(missing)
        return matrix
