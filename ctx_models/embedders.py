"""Embedders: what turns chunk text into vectors.

:class:`Embedder` is the protocol the store accepts; plug in any model by
giving it a ``model`` name, ``dims`` and an ``embed`` method.
:class:`HashingEmbedder` is a deterministic, dependency-free embedder for demos
and tests. It hashes word tokens into a fixed number of buckets (the "hashing
trick"), so texts sharing words get similar vectors; it knows nothing of
meaning, so do not mistake it for a semantic model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import ValidationError, VectorError

__all__ = ["Embedder", "HashingEmbedder", "embed_texts", "TOKEN_PATTERN"]

#: Word tokens: runs of letters, digits and underscores (the keyword search's term rule).
TOKEN_PATTERN = re.compile(r"\w+")


@runtime_checkable
class Embedder(Protocol):
    """Anything that embeds texts: a model name, a vector length and ``embed``."""

    model: str
    dims: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return a ``(len(texts), dims)`` float32 matrix, one row per text."""
        ...


def embed_texts(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Call ``embedder`` and check its output: shape, finiteness, float32."""
    if not isinstance(embedder, Embedder):
        raise ValidationError(
            f"embedder {embedder!r:.60} lacks model, dims or embed(); see ctx_models.embedders.Embedder"
        )
    if not texts:
        return np.zeros((0, embedder.dims), dtype=np.float32)
    matrix = np.asarray(embedder.embed(list(texts)))
    expected = (len(texts), embedder.dims)
    if matrix.shape != expected:
        raise VectorError(
            f"embedder {embedder.model!r} returned shape {matrix.shape}, expected {expected}"
        )
    if matrix.dtype.kind not in "iuf":
        raise VectorError(
            f"embedder {embedder.model!r} returned {matrix.dtype} values, not numbers"
        )
    matrix = matrix.astype(np.float32, copy=False)
    if not np.isfinite(matrix).all():
        raise VectorError(f"embedder {embedder.model!r} returned NaN or infinite values")
    return matrix


class HashingEmbedder:
    """Feature hashing of lower-cased word tokens into ``dims`` buckets, L2-normalised.

    Each token adds ±1 to one bucket, both chosen by a BLAKE2b hash of the
    token, so results are identical across processes and machines. A text with
    no word tokens embeds to the zero vector.
    """

    def __init__(self, dims: int = 384) -> None:
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ValidationError(f"dims must be a positive integer, got {dims!r}")
        self.dims = dims
        self.model = f"hashing-v1-{dims}"
        self._buckets = _BucketTable(dims)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dims={self.dims})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        tokens_per_text = [TOKEN_PATTERN.findall(text.lower()) for text in texts]
        counts = np.fromiter((len(t) for t in tokens_per_text), dtype=np.int64, count=len(texts))
        # A dict lookup per token, done by map() in C; unseen tokens go through __missing__.
        signed = np.fromiter(
            map(self._buckets.__getitem__, (t for tokens in tokens_per_text for t in tokens)),
            dtype=np.int64,
            count=int(counts.sum()),
        )
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        flat = rows * self.dims + np.abs(signed) - 1
        matrix = np.bincount(
            flat, weights=np.sign(signed).astype(np.float64), minlength=len(texts) * self.dims
        )
        matrix = matrix.reshape(len(texts), self.dims).astype(np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.divide(matrix, norms, out=matrix, where=norms > 0)
        return matrix


class _BucketTable(dict[str, int]):
    """token -> signed bucket: ``index + 1`` for +1, ``-(index + 1)`` for -1, chosen by BLAKE2b."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.dims = dims

    def __missing__(self, token: str) -> int:
        value = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        bucket = (value % self.dims) + 1
        bucket = bucket if value >> 63 else -bucket
        if len(self) < 1_000_000:  # bound memory on unbounded vocabularies
            self[token] = bucket
        return bucket
