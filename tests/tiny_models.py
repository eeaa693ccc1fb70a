"""Tiny sentence-embedding models the tests build themselves: an ONNX graph and a tokenizer.

The encoder is a lookup: token i's hidden state is row i of a fixed table
(plus a token-type row when the graph takes ``token_type_ids``), so the test
can compute the expected pooled vector in numpy, independently of the embedder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WORDS = [
    "postgres", "failover", "standby", "promote", "kafka", "consumer", "lag", "disk",
    "full", "the", "a", "database", "index", "search", "vector", "model",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
VOCAB = {token: i for i, token in enumerate(SPECIALS + WORDS)}
CLS, SEP = VOCAB["[CLS]"], VOCAB["[SEP]"]


def table(dims: int, rows: int = len(VOCAB), seed: int = 7) -> np.ndarray:
    """The embedding table: one row per token id."""
    return np.random.default_rng(seed).normal(size=(rows, dims)).astype(np.float32)


def write_onnx(
    path: Path, dims: int, *, token_type_ids: bool = True, rows: int = len(VOCAB), extra_input: bool = False
) -> np.ndarray:
    """A graph with inputs input_ids, attention_mask[, token_type_ids]; output last_hidden_state."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = table(dims, rows)
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
    ]
    initializers = [numpy_helper.from_array(weights, "word_embeddings")]
    nodes = [
        helper.make_node("Gather", ["word_embeddings", "input_ids"], ["words"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis"], ["mask_3d"]),
    ]
    initializers.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "axis"))
    hidden = "words"
    if token_type_ids:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "seq"]))
        types = np.full((2, dims), 0.5, dtype=np.float32)
        initializers.append(numpy_helper.from_array(types, "type_embeddings"))
        nodes += [
            helper.make_node("Gather", ["type_embeddings", "token_type_ids"], ["types"]),
            helper.make_node("Add", ["words", "types"], ["with_types"]),
        ]
        hidden = "with_types"
    if extra_input:
        inputs.append(helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3]))
    # Padded positions are zeroed, as a real encoder's outputs there are meaningless.
    nodes.append(helper.make_node("Mul", [hidden, "mask_3d"], ["last_hidden_state"]))
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", dims])
    graph = helper.make_graph(nodes, "tiny", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return weights + (0.5 if token_type_ids else 0.0)


def write_tokenizer(path: Path, vocab: dict[str, int] | None = None) -> None:
    """A word-level tokenizer that adds [CLS] ... [SEP], as BERT's does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = vocab or VOCAB
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer.save(str(path))


def make_model_dir(
    directory: Path,
    dims: int = 8,
    *,
    pooling: str | None = "mean",
    max_length: int | None = None,
    token_type_ids: bool = True,
    onnx_name: str = "model.onnx",
) -> tuple[Path, np.ndarray]:
    """A model directory in the sentence-transformers layout; returns it and the hidden-state table."""
    directory.mkdir(parents=True, exist_ok=True)
    hidden = write_onnx(directory / onnx_name, dims, token_type_ids=token_type_ids)
    write_tokenizer(directory / "tokenizer.json")
    if pooling is not None:
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(
            json.dumps(
                {
                    "word_embedding_dimension": dims,
                    "pooling_mode_cls_token": pooling == "cls",
                    "pooling_mode_mean_tokens": pooling == "mean",
                }
            )
        )
    if max_length is not None:
        (directory / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_length, "do_lower_case": False})
        )
    return directory, hidden


def ids_of(text: str, max_length: int | None = None) -> list[int]:
    """The token ids the tiny tokenizer gives ``text``, truncated as the tokenizer does."""
    words = [VOCAB.get(w, VOCAB["[UNK]"]) for w in text.split()]
    if max_length is not None:
        words = words[: max_length - 2]
    return [CLS, *words, SEP]


def expected(hidden: np.ndarray, text: str, pooling: str = "mean", max_length: int | None = None) -> np.ndarray:
    """The vector the embedder must give ``text``: pooled hidden states, L2-normalised."""
    rows = hidden[ids_of(text, max_length)]
    vector = rows[0] if pooling == "cls" else rows.mean(axis=0)
    return vector / np.linalg.norm(vector)
