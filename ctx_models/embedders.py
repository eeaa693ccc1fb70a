"""Embedders: what turns chunk text into vectors, and how a stored model name finds its embedder.

:class:`Embedder` is the protocol the store accepts; plug in any model by
giving it a ``model`` name, ``dims`` and an ``embed`` method.

* The models ``ctx`` embeds with (``all-minilm-l6-v2``, ``bge-*-en-v1.5``,
  ``nomic-embed-text-v1[.5]``, ``multilingual-e5-*``) are transformer
  sentence embedders run with ONNX Runtime
  (:class:`~ctx_models.onnx_embedder.OnnxEmbedder`,
  ``pip install 'ctx-models[models]'``); :mod:`ctx_models.model_files` says
  where their files come from.
* :class:`WordLlamaEmbedder` is a semantic model that runs offline: the
  ``wordllama`` package ships its 256-dimension weights in its wheel
  (``pip install 'ctx-models[semantic]'``).
* :class:`HashingEmbedder` is deterministic and needs nothing: it hashes words
  into buckets (the "hashing trick"), so texts sharing words get similar
  vectors. It knows nothing of meaning; it is the fallback, and good for tests.

:func:`default_embedder` never downloads: all-minilm-l6-v2 when its files are
on this machine, else WordLlama, else hashing.

Every vector in the database records the model that made it
(``embeddings.model``). :func:`embedder_for_model` turns that name back into an
embedder through a small registry, so a search embeds the question with the
model that embedded the chunks. Register your own with :func:`register_embedder`.

>>> embedder_for_model("hashing-v1-8").dims
8
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import model_files
from .errors import EmbedderUnavailableError, ValidationError, VectorError

__all__ = [
    "Embedder",
    "HashingEmbedder",
    "WordLlamaEmbedder",
    "embed_texts",
    "default_embedder",
    "embedder_for_model",
    "register_embedder",
    "known_models",
    "TOKEN_PATTERN",
    "MAX_DIMS",
]

log = logging.getLogger(__name__)

#: The hashing embedder's tokens: runs of letters, digits and underscores. (Its
#: vectors are defined by this rule; keyword search uses :mod:`ctx_models.words`.)
TOKEN_PATTERN = re.compile(r"\w+")
#: The largest vector length accepted for a built-in embedder; larger is a typo, not a model.
MAX_DIMS = 65_536


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
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMS:
            raise ValidationError(f"dims must be an integer from 1 to {MAX_DIMS}, got {dims!r}")
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


class WordLlamaEmbedder:
    """WordLlama's ``l2_supercat`` model, 256 dimensions, loaded from its wheel with no network.

    WordLlama averages static token embeddings distilled from large language
    models: fast on a CPU, and semantic. ``WordLlama.load()`` looks for the
    tokenizer in the wrong folder and then downloads it; loading from the
    package's own folder with downloads disabled avoids both. Vectors are
    L2-normalised; blank text embeds to the zero vector (never NaN).
    """

    model = "wordllama-l2-supercat-256"
    dims = 256

    def __init__(self) -> None:
        try:
            wordllama = _import_wordllama()
        except ImportError:
            raise EmbedderUnavailableError(
                f"the {self.model} embedder needs the wordllama package: "
                "pip install 'ctx-models[semantic]'"
            ) from None
        try:
            self._model = wordllama.WordLlama.load(
                config="l2_supercat",
                dim=self.dims,
                cache_dir=os.path.dirname(wordllama.__file__),
                disable_download=True,
            )
        except (OSError, ValueError) as exc:
            raise EmbedderUnavailableError(
                f"wordllama is installed but its weights did not load ({exc}); "
                "reinstall it: pip install --force-reinstall 'ctx-models[semantic]'"
            ) from exc
        # The tokenizer is a Rust object shared by every call: one thread at a time.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "WordLlamaEmbedder()"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dims), dtype=np.float32)
        # Blank text has no words: its vector stays zero (WordLlama would embed the space token).
        filled = [i for i, text in enumerate(texts) if text.strip()]
        if not filled:
            return matrix
        with self._lock:
            vectors = self._model.embed([texts[i] for i in filled], norm=False, batch_size=256)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(filled), self.dims)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > np.finfo(np.float32).eps)
        vectors[(norms <= np.finfo(np.float32).eps)[:, 0]] = 0.0
        matrix[filled] = vectors
        return matrix


def _import_wordllama() -> Any:
    """Import wordllama without the side effect of its import.

    wordllama calls ``logging.basicConfig(level=INFO)`` when imported, which
    would switch on INFO logging for the whole application; the root logger's
    handlers and level are put back as they were.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import wordllama
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    return wordllama


# --------------------------------------------------------------------------- the registry

_FACTORIES: dict[str, Callable[[], Embedder]] = {WordLlamaEmbedder.model: WordLlamaEmbedder}
# ctx's model names: their files are found (or downloaded) when first used.
_FACTORIES.update({name: model_files.factory(name) for name in model_files.MODELS})
_HASHING_NAME = re.compile(r"hashing-v1-([0-9]{1,6})")
_LOADED: dict[str, Embedder] = {}
_LOADED_LOCK = threading.Lock()
_warned_fallback = False


def register_embedder(model: str, factory: Callable[[], Embedder]) -> None:
    """Make ``embedder_for_model(model)`` call ``factory`` (once; the embedder is kept).

    Use it for your own model, so that searches find it by the name stored with
    its vectors.
    """
    if not isinstance(model, str) or not model:
        raise ValidationError(f"model must be a non-empty str, got {model!r}")
    if not callable(factory):
        raise ValidationError(f"factory must be callable, got {factory!r}")
    with _LOADED_LOCK:
        _FACTORIES[model] = factory
        _LOADED.pop(model, None)


def known_models() -> list[str]:
    """The registered model names (``hashing-v1-N`` is known for every N as well)."""
    return sorted(_FACTORIES)


def embedder_for_model(model: str) -> Embedder:
    """The embedder that made vectors named ``model``; loaded once, then reused.

    Raises :class:`~ctx_models.EmbedderUnavailableError` when the name is not
    known or its package is not installed, with what to install.
    """
    with _LOADED_LOCK:
        found = _LOADED.get(model)
        if found is not None:
            return found
        hashing = _HASHING_NAME.fullmatch(model) if isinstance(model, str) else None
        if hashing:
            found = HashingEmbedder(int(hashing.group(1)))
        elif model in _FACTORIES:
            found = _FACTORIES[model]()
        else:
            raise EmbedderUnavailableError(
                f"no embedder is known for model {model!r}; known: hashing-v1-N, "
                f"{', '.join(known_models())}. Register yours with "
                "ctx_models.embedders.register_embedder(name, factory)"
            )
        _LOADED[model] = found
        return found


#: The transformer model the default embedder prefers when its files are on this machine.
PREFERRED_MODEL = "all-minilm-l6-v2"


def default_embedder() -> Embedder:
    """The best model available with no download; see the README's "Choosing a model".

    all-minilm-l6-v2 (``ctx``'s default) when ``ctx-models[models]`` is
    installed and its files are on this machine (an explicit path, ``ctx``'s,
    fastembed's or Hugging Face's cache); else WordLlama when
    ``ctx-models[semantic]`` is installed; else the hashing embedder (384),
    with one warning per process, since hashing vectors are not semantic.
    """
    global _warned_fallback
    preferred = _local_preferred()
    if preferred is not None:
        return preferred
    try:
        return embedder_for_model(WordLlamaEmbedder.model)
    except EmbedderUnavailableError as exc:
        if not _warned_fallback:
            log.warning("%s; using the hashing embedder, which is not semantic", exc)
            _warned_fallback = True
        return embedder_for_model("hashing-v1-384")


def _local_preferred() -> Embedder | None:
    """The preferred transformer model if it loads without a download, else None."""
    with _LOADED_LOCK:
        found = _LOADED.get(PREFERRED_MODEL)
    if found is not None:
        return found
    if not model_files.runtime_installed():
        return None
    try:
        embedder = model_files.load(PREFERRED_MODEL, download=False)
    except EmbedderUnavailableError as exc:
        log.info("default model: %s not used: %s", PREFERRED_MODEL, exc)
        return None
    with _LOADED_LOCK:
        return _LOADED.setdefault(PREFERRED_MODEL, embedder)
