"""The ONNX Runtime embedder on tiny models the tests build: pooling, inputs, truncation,
batching, and every damaged model directory as our own error."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import tiny_models
from tiny_models import expected, make_model_dir

import ctx_models
from ctx_models import search, store
from ctx_models.errors import DimensionMismatchError, EmbedderUnavailableError, ModelFilesError
from ctx_models.onnx_embedder import OnnxEmbedder

pytest.importorskip("onnx", reason="the tests build their ONNX graphs with onnx (the test extra)")

TEXTS = [
    "postgres failover",
    "promote the standby database",
    "kafka consumer lag",
    "disk full",
    "a vector search model index",
    "",
    "unknown words only",
]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_from_the_directory_config(tmp_path, pooling):
    directory, hidden = make_model_dir(tmp_path / "m", pooling=pooling)
    embedder = OnnxEmbedder(directory, "tiny")
    assert embedder.pooling == pooling and embedder.dims == 8
    matrix = embedder.embed(TEXTS)
    assert matrix.dtype == np.float32 and matrix.shape == (len(TEXTS), 8)
    for row, text in zip(matrix, TEXTS, strict=True):
        np.testing.assert_allclose(row, expected(hidden, text, pooling), rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(matrix, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)


def test_without_a_pooling_config_the_registered_pooling_is_used(tmp_path):
    directory, hidden = make_model_dir(tmp_path / "m", pooling=None)
    embedder = OnnxEmbedder(directory, "tiny", pooling="cls")
    np.testing.assert_allclose(
        embedder.embed(["disk full"])[0], expected(hidden, "disk full", "cls"), rtol=1e-5, atol=1e-6
    )


def test_a_graph_without_token_type_ids_is_fed_only_what_it_declares(tmp_path):
    directory, hidden = make_model_dir(tmp_path / "m", token_type_ids=False)
    embedder = OnnxEmbedder(directory, "tiny")
    np.testing.assert_allclose(
        embedder.embed(["kafka consumer lag"])[0], expected(hidden, "kafka consumer lag"), rtol=1e-5, atol=1e-6
    )


def test_onnx_subfolder_layout_is_found(tmp_path):
    directory, hidden = make_model_dir(tmp_path / "m", onnx_name="onnx/model.onnx")
    assert OnnxEmbedder(directory).embed(["disk"]).shape == (1, 8)


def test_texts_are_truncated_at_the_maximum_length(tmp_path):
    directory, hidden = make_model_dir(tmp_path / "m", max_length=5)
    embedder = OnnxEmbedder(directory, "tiny")
    assert embedder.max_length == 5
    long = "postgres failover standby promote kafka consumer lag disk full"
    vector = embedder.embed([long])[0]
    np.testing.assert_allclose(vector, expected(hidden, "postgres failover standby"), rtol=1e-5, atol=1e-6)
    assert not np.allclose(vector, expected(hidden, long))


def test_batching_and_order_do_not_change_a_vector(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    alone = OnnxEmbedder(directory, "tiny", batch_size=64)
    batched = OnnxEmbedder(directory, "tiny", batch_size=2)
    one_by_one = np.stack([alone.embed([t])[0] for t in TEXTS])
    together = batched.embed(TEXTS)
    reversed_ = batched.embed(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    np.testing.assert_allclose(reversed_, one_by_one, atol=1e-6)
    assert alone.embed([]).shape == (0, 8)


def test_threads_share_one_embedder(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    embedder = OnnxEmbedder(directory, "tiny", batch_size=2)
    reference = embedder.embed(TEXTS)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(embedder.embed(TEXTS))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 80 and all(np.allclose(r, reference, atol=1e-6) for r in results)


# --------------------------------------------------------------------------- damage


def test_missing_directory(tmp_path):
    with pytest.raises(ModelFilesError, match="does not exist"):
        OnnxEmbedder(tmp_path / "nowhere")


def test_missing_onnx_file(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    (directory / "model.onnx").unlink()
    with pytest.raises(ModelFilesError, match=r"lacks model\.onnx \(or onnx/model\.onnx\)"):
        OnnxEmbedder(directory)


def test_missing_tokenizer(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ModelFilesError, match=r"lacks tokenizer\.json"):
        OnnxEmbedder(directory)


def test_truncated_onnx_file(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    data = (directory / "model.onnx").read_bytes()
    (directory / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFilesError, match="does not load as an ONNX model.*download it again"):
        OnnxEmbedder(directory)


def test_damaged_tokenizer_file(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    (directory / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(ModelFilesError, match="is not a tokenizer"):
        OnnxEmbedder(directory)


def test_tokenizer_of_another_model_is_caught_when_loading(tmp_path):
    """A larger vocabulary than the model's embedding table: ids past its end."""
    directory, _ = make_model_dir(tmp_path / "m")
    bigger = dict(tiny_models.VOCAB)
    bigger.update({f"word{i}": len(bigger) + i for i in range(200)})
    tiny_models.write_tokenizer(directory / "tokenizer.json", bigger)
    with pytest.raises(ModelFilesError, match="the tokenizer belongs to another model"):
        OnnxEmbedder(directory)


def test_output_length_other_than_the_model_s(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m", dims=8)
    with pytest.raises(ModelFilesError, match="outputs 8-dimension vectors, but all-minilm-l6-v2 has 384"):
        OnnxEmbedder(directory, "all-minilm-l6-v2", 384)


def test_output_length_other_than_the_stored_vectors(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m", dims=8)
    db = ctx_models.connect(tmp_path / "s.sqlite")
    ctx_models.run_migrations(db)
    try:
        store.ingest("docs", "a", "postgres failover")
        (chunk,) = store.pending_chunks("tiny")
        store.upsert_embeddings([(chunk.id, "tiny", [1.0, 0.0, 0.0, 0.0])])
        store.ingest("docs", "b", "kafka consumer lag")
        with pytest.raises(DimensionMismatchError):
            store.embed_pending(OnnxEmbedder(directory, "tiny"))
    finally:
        db.close()


def test_unsupported_pooling_and_bad_configs(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ModelFilesError, match="only mean and cls pooling"):
        OnnxEmbedder(directory)
    (directory / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match="not readable JSON"):
        OnnxEmbedder(directory)


def test_a_graph_with_inputs_we_cannot_fill(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    tiny_models.write_onnx(directory / "model.onnx", 8, extra_input=True)
    with pytest.raises(ModelFilesError, match="pixel_values"):
        OnnxEmbedder(directory)


def test_every_model_error_is_an_embedder_unavailable_error():
    assert issubclass(ModelFilesError, EmbedderUnavailableError)
    assert issubclass(ModelFilesError, ctx_models.CtxModelsError)


def test_search_with_a_tiny_model_finds_its_own_text(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    embedder = OnnxEmbedder(directory, "tiny")
    db = ctx_models.connect(tmp_path / "s.sqlite")
    ctx_models.run_migrations(db)
    try:
        store.ingest("docs", "a", "postgres failover standby", embedder=embedder)
        store.ingest("docs", "b", "kafka consumer lag", embedder=embedder)
        found = search.vector_search("kafka consumer lag", embedder=embedder)
        assert found and found[0].score == pytest.approx(1.0, abs=1e-5)
    finally:
        db.close()


def test_batches_keep_to_the_token_budget_and_group_similar_lengths(tmp_path, monkeypatch):
    directory, _ = make_model_dir(tmp_path / "m")
    embedder = OnnxEmbedder(directory, "tiny", batch_size=3)
    reference = np.stack([embedder.embed([t])[0] for t in TEXTS])
    monkeypatch.setattr("ctx_models.onnx_embedder.BATCH_TOKENS", 12)
    shapes = []
    run = embedder._run
    monkeypatch.setattr(embedder, "_run", lambda ids, mask: shapes.append(ids.shape) or run(ids, mask))
    np.testing.assert_allclose(embedder.embed(TEXTS), reference, atol=1e-6)
    assert sum(rows for rows, _ in shapes) == len(TEXTS)
    assert all(rows <= 3 and (rows == 1 or rows * width <= 12) for rows, width in shapes)
    widths = [width for _, width in shapes]
    assert widths == sorted(widths)  # shortest texts first, so each batch pads little


def test_texts_that_are_not_strings_are_our_error(tmp_path):
    directory, _ = make_model_dir(tmp_path / "m")
    with pytest.raises(ctx_models.ValidationError, match="texts must be str, got int"):
        OnnxEmbedder(directory).embed(["fine", 3])
