"""A sentence-embedding model run with ONNX Runtime and Hugging Face ``tokenizers``.

:class:`OnnxEmbedder` loads a model directory in the sentence-transformers
layout: ``model.onnx`` (or ``onnx/model.onnx``), ``tokenizer.json``, and where
present ``1_Pooling/config.json`` (mean or CLS pooling) and
``sentence_bert_config.json`` (the maximum length). It embeds as
sentence-transformers and the ``ctx`` tool do: tokenise, truncate at the
maximum length, run the encoder, pool over the attention mask, L2-normalise.
This is the stack fastembed and ``ctx`` use; torch is not needed
(``pip install 'ctx-models[models]'``).

Every way a model directory can be damaged (a missing file, a truncated ONNX
file, a tokenizer of another model, an output length other than the expected
one) raises :class:`~ctx_models.errors.ModelFilesError` when the directory is
loaded, never an onnxruntime error while embedding.

Threads: ONNX Runtime runs each call on its intra-op thread pool, one thread
per physical core by default (2 here); ``threads`` sets it. Calls from several
Python threads are safe: the session is thread-safe, and tokenisation holds a lock.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EmbedderUnavailableError, ModelFilesError, ValidationError

__all__ = ["OnnxEmbedder", "ONNX_FILES", "POOLINGS", "find_onnx_file"]

log = logging.getLogger(__name__)

#: Where a model directory may hold its ONNX graph, in the order looked for.
ONNX_FILES = ("model.onnx", "onnx/model.onnx", "model_optimized.onnx")
#: The pooling modes understood (sentence-transformers' names for them).
POOLINGS = ("mean", "cls")
#: Texts per call of the encoder at most, and tokens (rows x padded width) per call at most:
#: short texts go many to a call, long ones fewer, which bounds memory (attention grows with
#: the square of the width). Measured with all-MiniLM-L6-v2 on 128 NFCorpus chunks of 256
#: tokens: 4,096 tokens a call took 532 MB and 12.8 chunks/s, 2,048 356 MB and 13.2, 1,024
#: 241 MB and 14.4 (a CPU gains nothing from larger calls).
BATCH_SIZE = 64
BATCH_TOKENS = 1024
#: The inputs of a BERT-style encoder we know how to fill.
_KNOWN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def find_onnx_file(directory: Path) -> Path | None:
    """The directory's ONNX graph, or None."""
    for name in ONNX_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, None when the file is absent; damage is a ModelFilesError."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFilesError(f"{path} is not readable JSON ({exc}); download the file again") from None
    if not isinstance(data, dict):
        raise ModelFilesError(f"{path} is not a JSON object; download the file again")
    return data


def _pooling_from(directory: Path) -> str | None:
    """Mean or CLS from ``1_Pooling/config.json``, None when the directory does not say."""
    config = _read_json(directory / "1_Pooling" / "config.json")
    if config is None:
        return None
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    raise ModelFilesError(
        f"{directory / '1_Pooling' / 'config.json'} asks for pooling {modes or 'none'}; "
        f"only {' and '.join(POOLINGS)} pooling are supported"
    )


def _max_length_from(directory: Path) -> int | None:
    config = _read_json(directory / "sentence_bert_config.json")
    value = None if config is None else config.get("max_seq_length")
    return value if isinstance(value, int) and value > 0 else None


class OnnxEmbedder:
    """A transformer sentence embedder from a model directory; see the module's docstring.

    ``model`` is the name stored with its vectors; ``dims`` the expected
    vector length (checked against the model's output when loaded; None takes
    the model's). ``pooling`` and ``max_length`` come from the directory's
    sentence-transformers configs when present, else from these arguments.
    """

    def __init__(
        self,
        path: str | Path,
        model: str | None = None,
        dims: int | None = None,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        batch_size: int = BATCH_SIZE,
        threads: int = 0,
    ) -> None:
        ort, tokenizers = _import_runtime()
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise ModelFilesError(
                f"model directory {directory} does not exist; give the folder that holds "
                "model.onnx and tokenizer.json"
            )
        onnx_file = find_onnx_file(directory)
        missing = [
            name
            for name, present in (
                ("model.onnx (or onnx/model.onnx)", onnx_file is not None),
                ("tokenizer.json", (directory / "tokenizer.json").is_file()),
            )
            if not present
        ]
        if missing:
            raise ModelFilesError(f"model directory {directory} lacks {' and '.join(missing)}")
        assert onnx_file is not None
        self.path = directory
        self.model = model or directory.name
        self.pooling = _pooling_from(directory) or pooling or "mean"
        if self.pooling not in POOLINGS:
            raise ModelFilesError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        self.max_length = _max_length_from(directory) or max_length or 512
        self.batch_size = max(1, int(batch_size))
        try:
            self._tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:  # the Rust tokenizer raises plain Exception on bad JSON
            raise ModelFilesError(
                f"{directory / 'tokenizer.json'} is not a tokenizer ({_short(exc)}); "
                "download the file again"
            ) from None
        # Truncate here, pad ourselves per batch (the file's own settings, e.g. fixed
        # padding to 128, are not sentence-transformers' behaviour).
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_length)
        self._tokenizer_lock = threading.Lock()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the graph optimiser's notes are noise here
        # Threads that spin between calls steal the cores from the rest of the program (and
        # from other processes on a small machine); sleeping costs a little latency.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(onnx_file), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime's own exception classes, e.g. InvalidProtobuf
            raise ModelFilesError(
                f"{onnx_file} does not load as an ONNX model ({_short(exc)}); it may be "
                "truncated: download it again"
            ) from None
        inputs = [i.name for i in self._session.get_inputs()]
        unknown = [name for name in inputs if name not in _KNOWN_INPUTS]
        if "input_ids" not in inputs or unknown:
            raise ModelFilesError(
                f"{onnx_file} is not a text encoder this embedder can feed: its inputs are "
                f"{inputs} (expected input_ids, attention_mask, optionally token_type_ids)"
            )
        self._inputs = inputs
        outputs = self._session.get_outputs()
        names = [o.name for o in outputs]
        self._output = next(
            (n for n in ("last_hidden_state", "token_embeddings") if n in names), names[0]
        )
        self.dims = self._probe(onnx_file, dims)

    def __repr__(self) -> str:
        return f"OnnxEmbedder({str(self.path)!r}, model={self.model!r}, dims={self.dims})"

    # ------------------------------------------------------------------ loading checks

    def _probe(self, onnx_file: Path, expected: int | None) -> int:
        """Run the model once on the tokenizer's largest id: catches a tokenizer of another model.

        A vocabulary larger than the model's embedding table makes the encoder
        fail on the ids past its end; an output of another length than
        ``expected`` means the files are another model's.
        """
        top = self._tokenizer.get_vocab_size(with_added_tokens=True) - 1
        ids = np.array([[0, max(top, 0), 0]], dtype=np.int64)
        try:
            vector = self._run(ids, np.ones_like(ids))[0]
        except Exception as exc:
            raise ModelFilesError(
                f"{onnx_file} fails on token id {top} of {self.path / 'tokenizer.json'} "
                f"({_short(exc)}): the tokenizer belongs to another model; put the model's "
                "own tokenizer.json beside it"
            ) from None
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise ModelFilesError(f"{onnx_file} does not output one finite vector per text")
        if expected is not None and len(vector) != expected:
            raise ModelFilesError(
                f"{onnx_file} outputs {len(vector)}-dimension vectors, but {self.model} has "
                f"{expected}: the directory holds another model's files"
            )
        return len(vector)

    # ------------------------------------------------------------------ embedding

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Encoder and pooling for one padded batch: a (batch, dims) float32 matrix."""
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self._session.run([self._output], {n: feed[n] for n in self._inputs})
        hidden = np.asarray(hidden, dtype=np.float32)
        if hidden.ndim == 2:  # the graph pools itself
            return hidden
        if hidden.ndim != 3:
            raise ModelFilesError(f"the model in {self.path} outputs shape {hidden.shape}")
        if self.pooling == "cls":
            return hidden[:, 0, :]
        weights = mask.astype(np.float32)[:, :, None]
        summed = (hidden * weights).sum(axis=1)
        return summed / np.maximum(weights.sum(axis=1), 1e-9)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dims)`` float32 matrix of L2-normalised vectors, in the order given.

        Texts are sorted by token count and batched, so each batch pads little;
        a text's vector does not depend on the texts batched with it.
        """
        texts = list(texts)
        matrix = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return matrix
        if not all(isinstance(text, str) for text in texts):
            bad = next(t for t in texts if not isinstance(t, str))
            raise ValidationError(f"texts must be str, got {type(bad).__name__}")
        with self._tokenizer_lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids_per_text = [e.ids for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: len(ids_per_text[i]))
        for batch in self._batches(order, [len(ids) for ids in ids_per_text]):
            width = max(len(ids_per_text[i]) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(ids_per_text[i])
                ids[row, :n] = ids_per_text[i]
                mask[row, :n] = 1
            try:
                pooled = self._run(ids, mask)
            except ModelFilesError:
                raise
            except Exception as exc:  # onnxruntime's errors: ours, with the model named
                raise EmbedderUnavailableError(
                    f"model {self.model} ({self.path}) failed to embed: {_short(exc)}"
                ) from None
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            matrix[batch] = pooled / np.maximum(norms, 1e-12)
        return matrix


    def _batches(self, order: list[int], lengths: list[int]) -> list[list[int]]:
        """Consecutive runs of ``order`` (shortest first) within the row and token budgets."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            # Sorted ascending, so the newest text sets the padded width of the batch.
            if current and (
                len(current) >= self.batch_size or (len(current) + 1) * lengths[i] > BATCH_TOKENS
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches


def _short(exc: BaseException) -> str:
    """An exception's first line, bounded: onnxruntime's messages run to pages."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _import_runtime() -> tuple[Any, Any]:
    """onnxruntime and tokenizers, or the extra to install."""
    try:
        import onnxruntime
        import tokenizers
    except ImportError:
        raise EmbedderUnavailableError(
            "transformer models need onnxruntime and tokenizers: pip install 'ctx-models[models]'"
        ) from None
    return onnxruntime, tokenizers
