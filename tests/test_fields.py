"""The custom peewee fields: VectorField, EpochField, JSONObjectField and IntegerTextField.

Values go through the real models (ChunkVector, Document, Checkpoint) on a real
database; the stored bytes are read back with raw SQL to check the encodings the
storage contract fixes.
"""

from __future__ import annotations

import datetime as dt
import json
import struct

import numpy as np
import pytest

import ctx_models
from ctx_models import (
    Checkpoint,
    Chunk,
    ChunkVector,
    CorruptValueError,
    CtxModelsError,
    Document,
    ValidationError,
    VectorError,
)
from ctx_models.fields import UnreadableJSON

UTC = dt.UTC
MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
F32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def db():
    """Overrides conftest's file database: an in-memory one with the schema, bound to the models.

    The fields behave the same on any SQLite database; memory keeps these many small tests fast.
    """
    database = ctx_models.connect(":memory:")
    ctx_models.run_migrations(database)
    yield database
    database.close()


def _count(table: str, db) -> int:
    return db.execute_sql(f"SELECT count(*) FROM {table}").fetchone()[0]


def _new_document(db, source_id: str = "doc", **overrides) -> str:
    """Insert a document row with raw SQL (so only the field under test goes through peewee)."""
    doc_id = overrides.pop("id", f"id-{source_id}")
    db.execute_sql(
        "INSERT INTO documents (id, source, source_id, created_at, updated_at, body, dedup_hash) "
        "VALUES (?, 'test', ?, 0, 0, 'body', 'hash')",
        (doc_id, source_id),
    )
    return doc_id


@pytest.fixture
def chunk(db):
    """(chunk id, document id) of one chunk that vectors can be attached to."""
    doc_id = _new_document(db)
    db.execute_sql(
        "INSERT INTO chunks (id, document_id, chunk_index, text, hash) VALUES ('c1', ?, 0, 'text', 'h')",
        (doc_id,),
    )
    return "c1", doc_id


def _store_vector(chunk, value) -> np.ndarray:
    chunk_id, doc_id = chunk
    ChunkVector.delete().where(ChunkVector.chunk == chunk_id).execute()
    ChunkVector.create(chunk=chunk_id, document=doc_id, embedding=value)
    return ChunkVector.get(ChunkVector.chunk == chunk_id).embedding


def _raw_blob(db, chunk_id: str = "c1") -> bytes:
    row = db.execute_sql(
        "SELECT embedding, typeof(embedding) FROM chunk_vectors WHERE chunk_id = ?", (chunk_id,)
    ).fetchone()
    assert row[1] == "blob"
    return bytes(row[0])


def _bits(array: np.ndarray) -> list[int]:
    return np.asarray(array, dtype=np.float32).view(np.uint32).tolist()


# --------------------------------------------------------------------------- VectorField: round trips


EXACT_F32 = [0.5, -2.0, float(np.float32(1e-3)), F32_MAX, -F32_MAX, 0.0, -0.0, 1.0,
             float(np.finfo(np.float32).tiny), float(np.float32(1.4e-45)), 123456.75]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda v: np.array(v, dtype=np.float32), id="numpy-float32"),
        pytest.param(lambda v: np.array(v, dtype=np.float64), id="numpy-float64"),
        pytest.param(lambda v: list(v), id="python-list"),
        pytest.param(lambda v: tuple(v), id="python-tuple"),
        pytest.param(lambda v: [np.float32(x) for x in v], id="list-of-numpy-scalars"),
    ],
)
def test_vector_exact_float32_values_round_trip_bit_identical(db, chunk, make):
    value = make(EXACT_F32)
    back = _store_vector(chunk, value)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.float32
    assert back.shape == (len(EXACT_F32),)
    assert _bits(back) == _bits(np.array(EXACT_F32, dtype=np.float32))
    # -0.0 keeps its sign bit
    assert np.signbit(back[6])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32])
def test_vector_integer_arrays_round_trip_as_float32(db, chunk, dtype):
    value = np.array([0, 1, 2, 3, 100, 7], dtype=dtype)
    back = _store_vector(chunk, value)
    assert back.dtype == np.float32
    assert back.tolist() == [0.0, 1.0, 2.0, 3.0, 100.0, 7.0]


def test_vector_python_int_list_round_trips(db, chunk):
    back = _store_vector(chunk, [1, -2, 3, 2**24])
    assert back.tolist() == [1.0, -2.0, 3.0, 16777216.0]


def test_vector_float64_values_are_rounded_to_float32(db, chunk):
    value = np.array([0.1, 1 / 3, -2.718281828459045, 1e30], dtype=np.float64)
    back = _store_vector(chunk, value)
    assert _bits(back) == _bits(value.astype(np.float32))


def test_vector_1536_dims_round_trip_and_blob_layout(db, chunk):
    rng = np.random.default_rng(7)
    value = rng.standard_normal(1536).astype(np.float32)
    back = _store_vector(chunk, value)
    assert back.shape == (1536,)
    assert _bits(back) == _bits(value)
    blob = _raw_blob(db)
    assert len(blob) == 4 * 1536
    assert blob == value.astype("<f4").tobytes()
    assert list(struct.unpack("<1536f", blob)) == value.astype(np.float64).tolist()


def test_vector_blob_is_little_endian_float32_without_header(db, chunk):
    values = [1.0, -2.0, 0.5, 3.25, F32_MAX]
    _store_vector(chunk, values)
    blob = _raw_blob(db)
    assert len(blob) == 4 * len(values)
    assert blob == struct.pack("<5f", *values)
    assert blob[:4] == b"\x00\x00\x80\x3f"  # 1.0 little-endian, no header before it
    assert np.frombuffer(blob, dtype="<f4").tolist() == values


def test_vector_big_endian_input_is_stored_little_endian(db, chunk):
    value = np.array([1.0, 2.5, -7.0], dtype=">f4")
    back = _store_vector(chunk, value)
    assert back.tolist() == [1.0, 2.5, -7.0]
    assert _raw_blob(db) == struct.pack("<3f", 1.0, 2.5, -7.0)


def test_vector_single_value_round_trips(db, chunk):
    back = _store_vector(chunk, [42.0])
    assert back.tolist() == [42.0]
    assert len(_raw_blob(db)) == 4


def test_vector_read_back_is_writable_copy(db, chunk):
    back = _store_vector(chunk, [1.0, 2.0])
    back[0] = 5.0  # must not raise (np.frombuffer alone gives a read-only view)
    assert ChunkVector.get(ChunkVector.chunk == "c1").embedding.tolist() == [1.0, 2.0]


def test_vector_blob_written_by_ctx_tool_decodes(db, chunk):
    chunk_id, doc_id = chunk
    values = [0.25, -1.5, 3.0, 1e-3]
    db.execute_sql(
        "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?, ?, ?)",
        (chunk_id, doc_id, struct.pack("<4f", *values)),
    )
    back = ChunkVector.get(ChunkVector.chunk == chunk_id).embedding
    assert _bits(back) == _bits(np.array(values, dtype=np.float32))


# --------------------------------------------------------------------------- VectorField: rejections


BAD_VECTORS = [
    pytest.param([1.0, float("nan")], id="nan"),
    pytest.param(np.array([np.nan, 1.0], dtype=np.float32), id="nan-numpy"),
    pytest.param([1.0, float("inf")], id="+inf"),
    pytest.param([float("-inf"), 1.0], id="-inf"),
    pytest.param([1.0, 1e39], id="overflow-1e39"),
    pytest.param(np.array([1.0, -1e39]), id="overflow-negative-numpy"),
    pytest.param([np.finfo(np.float64).max], id="overflow-float64-max"),
    pytest.param([[1.0, 2.0], [3.0, 4.0]], id="2d-list"),
    pytest.param(np.zeros((1, 4), dtype=np.float32), id="2d-numpy-row"),
    pytest.param(np.zeros((4, 1), dtype=np.float32), id="2d-numpy-column"),
    pytest.param(np.float32(1.0), id="0d-numpy-scalar"),
    pytest.param(np.array(1.0), id="0d-array"),
    pytest.param(1.0, id="python-float"),
    pytest.param(3, id="python-int"),
    pytest.param([], id="empty-list"),
    pytest.param(np.array([], dtype=np.float32), id="empty-numpy"),
    pytest.param((), id="empty-tuple"),
    pytest.param("1.0, 2.0", id="string"),
    pytest.param("", id="empty-string"),
    pytest.param(["1.0", "2.0"], id="list-of-strings"),
    pytest.param(np.array(["1", "2"]), id="numpy-strings"),
    pytest.param([True, False], id="list-of-bools"),
    pytest.param(np.array([True, False]), id="numpy-bools"),
    pytest.param(True, id="bool"),
    pytest.param([1 + 2j, 3.0], id="complex-list"),
    pytest.param(np.array([1j, 2j]), id="complex-numpy"),
    pytest.param([[1.0, 2.0], [3.0]], id="ragged"),
    pytest.param([1.0, [2.0, 3.0]], id="ragged-mixed"),
    pytest.param([1.0, None, 3.0], id="none-inside"),
    pytest.param({"a": 1.0}, id="dict"),
    pytest.param({}, id="empty-dict"),
    pytest.param([{"a": 1}], id="list-of-dicts"),
    pytest.param([2**80], id="int-too-big-for-numpy"),
    pytest.param(object(), id="object"),
]


@pytest.mark.parametrize("value", BAD_VECTORS)
def test_vector_bad_values_raise_vector_error_before_writing(db, chunk, value):
    chunk_id, doc_id = chunk
    before = _count("chunk_vectors", db)
    with pytest.raises(VectorError) as info:
        ChunkVector.create(chunk=chunk_id, document=doc_id, embedding=value)
    assert isinstance(info.value, CtxModelsError)
    assert isinstance(info.value, ValidationError)
    assert str(info.value)
    assert _count("chunk_vectors", db) == before == 0


@pytest.mark.parametrize("value", BAD_VECTORS[:6])
def test_vector_bad_values_refused_by_insert_query_and_update(db, chunk, value):
    chunk_id, doc_id = chunk
    with pytest.raises(VectorError):
        ChunkVector.insert(chunk=chunk_id, document=doc_id, embedding=value).execute()
    assert _count("chunk_vectors", db) == 0
    # An update of an existing good row is refused too and leaves the row as it was.
    ChunkVector.create(chunk=chunk_id, document=doc_id, embedding=[1.0, 2.0])
    with pytest.raises(VectorError):
        ChunkVector.update(embedding=value).where(ChunkVector.chunk == chunk_id).execute()
    assert _raw_blob(db) == struct.pack("<2f", 1.0, 2.0)


def test_vector_error_class_hierarchy():
    assert issubclass(ctx_models.VectorError, ctx_models.CtxModelsError)
    assert issubclass(ctx_models.VectorError, ctx_models.ValidationError)
    assert issubclass(ctx_models.CorruptValueError, ctx_models.CtxModelsError)


def test_vector_error_message_points_at_the_bad_value(db, chunk):
    chunk_id, doc_id = chunk
    with pytest.raises(VectorError, match=r"index 2"):
        ChunkVector.create(chunk=chunk_id, document=doc_id, embedding=[0.0, 1.0, float("nan")])


# --------------------------------------------------------------------------- VectorField: read side


@pytest.mark.parametrize("blob", [b"\x00\x00\x80\x3f\x00", b"\x01", b"\x01\x02\x03", bytes(4 * 384 + 2)])
def test_vector_blob_not_multiple_of_four_raises_corrupt_value(db, chunk, blob):
    chunk_id, doc_id = chunk
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        db.execute_sql(
            "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?, ?, ?)",
            (chunk_id, doc_id, blob),
        )
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")
    with pytest.raises(CorruptValueError) as info:
        _ = ChunkVector.get(ChunkVector.chunk == chunk_id).embedding
    message = str(info.value)
    assert str(len(blob)) in message
    assert "4" in message and "embedding" in message
    assert not isinstance(info.value, ValidationError)


def test_vector_empty_blob_raises_corrupt_value(db, chunk):
    chunk_id, doc_id = chunk
    db.execute_sql(
        "INSERT INTO chunk_vectors (chunk_id, document_id, embedding) VALUES (?, ?, X'')", (chunk_id, doc_id)
    )
    with pytest.raises(CorruptValueError, match=r"0 bytes"):
        list(ChunkVector.select().where(ChunkVector.chunk == chunk_id))


# --------------------------------------------------------------------------- EpochField


def _make_document(**fields) -> Document:
    values = {"source": "test", "source_id": "epoch", "created_at": 0, "updated_at": 0, "body": "b", "dedup_hash": "h"}
    values.update(fields)
    return Document.create(**values)


@pytest.mark.parametrize(
    "value, epoch",
    [
        (0, 0),
        (1_767_225_600, 1_767_225_600),
        (MAX_EPOCH, MAX_EPOCH),
        (np.int64(1_700_000_000), 1_700_000_000),
        (dt.datetime(2026, 1, 1, tzinfo=UTC), 1_767_225_600),
        (dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))), 1_767_225_600),
        (dt.datetime(2025, 12, 31, 19, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), 1_767_225_600),
        (dt.datetime(1970, 1, 1, tzinfo=UTC), 0),
        (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), MAX_EPOCH),
    ],
)
def test_epoch_values_in_and_aware_utc_out(db, value, epoch):
    doc = _make_document(created_at=value, updated_at=value)
    raw = db.execute_sql(
        "SELECT created_at, typeof(created_at), updated_at FROM documents WHERE id = ?", (doc.id,)
    ).fetchone()
    assert raw == (epoch, "integer", epoch)
    back = Document.get_by_id(doc.id)
    for stamp in (back.created_at, back.updated_at):
        assert isinstance(stamp, dt.datetime)
        assert stamp.tzinfo is not None
        assert stamp.utcoffset() == dt.timedelta(0)
        assert stamp == dt.datetime.fromtimestamp(epoch, tz=UTC)
        assert int(stamp.timestamp()) == epoch


BAD_EPOCHS = [
    pytest.param(dt.datetime(2026, 1, 1), id="naive-datetime"),
    pytest.param(dt.datetime(2026, 1, 1, 12, 30, 5), id="naive-datetime-time"),
    pytest.param(-1, id="negative"),
    pytest.param(-1_767_225_600, id="very-negative"),
    pytest.param(dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), id="aware-before-1970"),
    pytest.param(MAX_EPOCH + 1, id="past-9999"),
    pytest.param(2**63, id="huge"),
    pytest.param(dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), id="aware-past-9999-utc"),
    pytest.param("1767225600", id="string-digits"),
    pytest.param("2026-01-01T00:00:00Z", id="string-iso"),
    pytest.param(True, id="bool-true"),
    pytest.param(False, id="bool-false"),
    pytest.param(np.bool_(True), id="numpy-bool"),
    pytest.param(1.5, id="float-fraction"),
    pytest.param(1_767_225_600.25, id="float-fraction-large"),
    pytest.param(float("nan"), id="float-nan"),
    pytest.param(float("inf"), id="float-inf"),
    pytest.param(dt.date(2026, 1, 1), id="date"),
    pytest.param([1], id="list"),
]


@pytest.mark.parametrize("value", BAD_EPOCHS)
@pytest.mark.parametrize("column", ["created_at", "updated_at"])
def test_epoch_bad_values_refused_with_validation_error(db, value, column):
    before = _count("documents", db)
    with pytest.raises(ValidationError) as info:
        _make_document(**{column: value})
    assert not isinstance(info.value, VectorError)
    assert str(info.value)
    assert _count("documents", db) == before


def test_epoch_naive_datetime_message_mentions_time_zone(db):
    with pytest.raises(ValidationError, match=r"(?i)naive|zone"):
        _make_document(updated_at=dt.datetime(2026, 1, 1))


def test_epoch_checkpoint_updated_at_uses_epoch_field(db):
    Checkpoint.create(source="s", cursor=5, updated_at=dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert db.execute_sql("SELECT updated_at FROM checkpoints").fetchone()[0] == 1_767_225_600
    assert Checkpoint.get_by_id("s").updated_at == dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError):
        Checkpoint.create(source="t", cursor=5, updated_at=dt.datetime(2026, 1, 1))
    assert _count("checkpoints", db) == 1


# --------------------------------------------------------------------------- JSONObjectField


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": 1},
        {"path": "docs/ünïcode ✓.md", "tags": ["x", "y"], "n": 1.5, "ok": True, "none": None},
        {"nested": {"deeper": {"list": [1, {"k": "v"}, []]}}, "neg": -3},
        {"emoji": "🚀", "quote": 'he said "hi"', "newline": "a\nb"},
    ],
)
def test_json_object_round_trips(db, value):
    doc = _make_document(metadata=value)
    raw = db.execute_sql("SELECT metadata_json, typeof(metadata_json) FROM documents WHERE id = ?", (doc.id,)).fetchone()
    assert raw[1] == "text"
    assert json.loads(raw[0]) == value
    back = Document.get_by_id(doc.id).metadata
    assert isinstance(back, dict)
    assert back == value


def test_json_object_default_is_empty_object(db):
    doc = _make_document()
    assert db.execute_sql("SELECT metadata_json FROM documents WHERE id = ?", (doc.id,)).fetchone()[0] == "{}"
    assert Document.get_by_id(doc.id).metadata == {}


def test_json_object_text_of_an_object_is_accepted(db):
    doc = _make_document(metadata='{"k": "v", "n": [1, 2]}')
    assert Document.get_by_id(doc.id).metadata == {"k": "v", "n": [1, 2]}
    stored = db.execute_sql("SELECT metadata_json FROM documents WHERE id = ?", (doc.id,)).fetchone()[0]
    assert json.loads(stored) == {"k": "v", "n": [1, 2]}


def test_json_object_sql_default_applies_to_ctx_style_insert(db):
    _new_document(db, "raw")
    assert Document.get(Document.source_id == "raw").metadata == {}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([1, 2], id="list"),
        pytest.param([], id="empty-list"),
        pytest.param(5, id="int"),
        pytest.param(1.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param("[1, 2]", id="json-text-array"),
        pytest.param("not json", id="not-json-text"),
        pytest.param('"a string"', id="json-text-string"),
        pytest.param('{"a": NaN}', id="json-text-nan"),
        pytest.param('{"a": Infinity}', id="json-text-infinity"),
        pytest.param('{"a": 1', id="json-text-unterminated"),
        pytest.param({"a": object()}, id="object-value"),
        pytest.param({"a": {1, 2}}, id="set-value"),
        pytest.param({"a": b"bytes"}, id="bytes-value"),
        pytest.param({"a": float("nan")}, id="nan-value"),
        pytest.param({"a": float("inf")}, id="inf-value"),
        pytest.param({("a", "b"): 1}, id="tuple-key"),
        pytest.param({"when": dt.datetime(2026, 1, 1, tzinfo=UTC)}, id="datetime-value"),
    ],
)
def test_json_object_bad_values_refused(db, value):
    before = _count("documents", db)
    with pytest.raises(ValidationError):
        _make_document(metadata=value)
    assert _count("documents", db) == before


@pytest.mark.parametrize("stored", ["[1, 2]", "not json", "42", '"text"', "null", "{'a': 1}", ""])
def test_json_object_text_another_program_stored_reads_as_empty_and_survives_a_save(db, stored):
    """ctx's script connectors store any text in metadata_json; ctx reads it as {}, and so do we."""
    db.execute_sql(
        "INSERT INTO documents (id, source, source_id, created_at, updated_at, body, metadata_json, dedup_hash) "
        "VALUES ('j', 's', 'j', 0, 0, 'b', ?, 'h')",
        (stored,),
    )
    doc = Document.get_by_id("j")
    assert doc.metadata == {} and isinstance(doc.metadata, UnreadableJSON)
    assert doc.metadata.text == stored
    doc.title = "renamed"
    doc.save()
    row = db.execute_sql("SELECT metadata_json, title FROM documents WHERE id = 'j'").fetchone()
    assert row == (stored, "renamed")  # nothing is rewritten but what the caller changed
    assert [d.id for d in Document.select().where(Document.metadata["team"] == "x")] == []


def test_json_paths_filter_in_sql_as_with_playhouse_json_field(db):
    a = _make_document(metadata={"team": "platform", "n": 3, "tags": ["db", "oncall"]})
    _make_document(source_id="b", metadata={"team": "search", "n": 1})
    db.execute_sql(
        "INSERT INTO documents (id, source, source_id, created_at, updated_at, body, metadata_json, dedup_hash) "
        "VALUES ('odd', 's', 'odd', 0, 0, 'b', 'not json at all', 'h')"
    )
    assert [d.id for d in Document.select().where(Document.metadata["team"] == "platform")] == [a.id]
    assert [d.id for d in Document.select().where(Document.metadata["n"] > 2)] == [a.id]
    assert [d.id for d in Document.select().where(Document.metadata["tags"][1] == "oncall")] == [a.id]
    teams = Document.select(Document.metadata["team"].alias("team")).order_by(Document.id).tuples()
    assert sorted(t for (t,) in teams if t) == ["platform", "search"]


# --------------------------------------------------------------------------- IntegerTextField


@pytest.mark.parametrize("cursor", [0, 1, -1, 1_767_225_600, 2**63 - 1, -(2**63), np.int64(12)])
def test_integer_text_stored_as_decimal_text(db, cursor):
    Checkpoint.create(source="s", cursor=cursor, updated_at=0)
    raw = db.execute_sql("SELECT cursor, typeof(cursor) FROM checkpoints").fetchone()
    assert raw == (str(int(cursor)), "text")
    back = Checkpoint.get_by_id("s").cursor
    assert type(back) is int
    assert back == int(cursor)


@pytest.mark.parametrize("stored, expected", [("0", 0), ("-42", -42), ("+7", 7), ("0012", 12),
                                              ("9223372036854775807", 2**63 - 1),
                                              ("-9223372036854775808", -(2**63))])
def test_integer_text_reads_valid_decimal_text(db, stored, expected):
    db.execute_sql("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('s', ?, 0)", (stored,))
    assert Checkpoint.get_by_id("s").cursor == expected


@pytest.mark.parametrize(
    "stored",
    ["abc", "1_000", " 12", "12 ", "1.5", "99999999999999999999", "9223372036854775808",
     "-9223372036854775809", "", "+", "-", "0x10", "1e3", "１２", "12\n"],
)
def test_integer_text_bad_stored_text_raises_corrupt_value(db, stored):
    db.execute_sql("INSERT INTO checkpoints (source, cursor, updated_at) VALUES ('s', ?, 0)", (stored,))
    with pytest.raises(CorruptValueError) as info:
        _ = Checkpoint.get_by_id("s").cursor
    assert "cursor" in str(info.value)


@pytest.mark.parametrize("cursor", ["12", 1.5, 12.0, True, np.bool_(True), [1]])
def test_integer_text_refuses_non_integers_on_write(db, cursor):
    with pytest.raises(ValidationError):
        Checkpoint.create(source="s", cursor=cursor, updated_at=0)
    assert _count("checkpoints", db) == 0


def test_contract_columns_use_the_custom_fields():
    assert isinstance(ChunkVector.embedding, ctx_models.VectorField)
    assert isinstance(Document.created_at, ctx_models.EpochField)
    assert isinstance(Document.updated_at, ctx_models.EpochField)
    assert isinstance(Document.metadata, ctx_models.JSONObjectField)
    assert Document.metadata.column_name == "metadata_json"
    assert isinstance(Checkpoint.cursor, ctx_models.IntegerTextField)
    assert Chunk._meta.table_name == "chunks"
