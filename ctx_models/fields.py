"""Peewee fields for the contract's encodings.

Each field validates on the way in, so a bad value raises before any SQL is
sent, and decodes on the way out, so a bad stored value (written by another
program) raises a clear error instead of turning into garbage.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import peewee
from peewee import SQL, BigIntegerField, BlobField, Case, fn
from playhouse.sqlite_ext import JSONField, JSONPath

from .errors import CorruptValueError, ValidationError, VectorError

__all__ = [
    "EpochField",
    "VectorField",
    "PackedVector",
    "JSONObjectField",
    "UnreadableJSON",
    "IntegerTextField",
    "to_epoch",
    "from_epoch",
    "is_epoch",
    "iso_or_stored",
    "encode_vector",
    "decode_vector",
    "encodable",
    "read_text",
    "as_text",
    "TextField",
    "IntegerField",
]

UTC = dt.UTC
# 9999-12-31T23:59:59Z: the last second an ISO 8601 datetime can spell.
MAX_EPOCH = 253_402_300_799
VECTOR_DTYPE = np.dtype("<f4")
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


def to_epoch(value: Any, what: str = "timestamp") -> int:
    """Convert an aware datetime or integer epoch seconds to epoch seconds.

    Naive datetimes are refused: guessing their zone silently shifts data.
    """
    if isinstance(value, bool):
        raise ValidationError(f"{what}: expected epoch seconds or a datetime, got a bool")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                f"{what}: naive datetime {value.isoformat()} has no time zone; "
                "pass an aware datetime such as datetime.now(timezone.utc), or epoch seconds"
            )
        seconds = math.floor(value.timestamp())
    elif isinstance(value, numbers.Integral):
        seconds = int(value)
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    else:
        raise ValidationError(
            f"{what}: expected epoch seconds (int) or an aware datetime, "
            f"got {type(value).__name__} {value!r:.60}"
        )
    if not 0 <= seconds <= MAX_EPOCH:
        raise ValidationError(
            f"{what}: {seconds} is outside 1970-01-01 .. 9999-12-31 (epoch seconds 0 .. {MAX_EPOCH})"
        )
    return seconds


def is_epoch(value: Any) -> bool:
    """Whether a stored value is epoch seconds as :func:`to_epoch` writes them (0 .. MAX_EPOCH)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= int(value) <= MAX_EPOCH


def from_epoch(value: Any, what: str = "timestamp") -> dt.datetime:
    """Turn stored epoch seconds into an aware UTC datetime.

    Only what :func:`to_epoch` writes reads back: an integer from 0 to :data:`MAX_EPOCH`,
    the rule ``ctx-models check`` reports by. Anything else another program stored (text,
    a REAL such as 2.5, a time before 1970) raises rather than read as some other time.
    """
    if is_epoch(value):
        return dt.datetime.fromtimestamp(int(value), tz=UTC)
    raise CorruptValueError(
        f"{what}: stored value {value!r:.60} is not epoch seconds from 1970 to 9999; "
        "run `ctx-models check` to find such rows"
    )


def iso_or_stored(value: Any) -> str | None:
    """A timestamp for display: ``YYYY-MM-DDTHH:MM:SSZ`` for epoch seconds or a datetime, None for None.

    Any other value (text, a REAL, an integer past 9999 or before 1970, a BLOB: what another
    program stored) is shown as stored, as text, so that one odd row never fails a listing;
    ``ctx-models check`` reports it. A naive datetime is taken as UTC.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        try:
            return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except OverflowError:  # within a day of year 1 or 9999, in a zone that passes it
            return value.isoformat()
    if is_epoch(value):
        return dt.datetime.fromtimestamp(int(value), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return as_text(value) if isinstance(value, (str, bytes)) else str(value)


class EpochField(BigIntegerField):
    """Epoch seconds in SQL, timezone-aware UTC ``datetime`` in Python.

    Declared INTEGER on SQLite (its integers are 64-bit) and BIGINT on
    PostgreSQL, whose 32-bit INTEGER ends in 2038.
    """

    def db_value(self, value: Any) -> int | None:
        if value is None:
            return None
        return to_epoch(value, self.column_name or "timestamp")

    def python_value(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        return from_epoch(value, self.column_name or "timestamp")


def encode_vector(value: Any, what: str = "vector") -> bytes:
    """Validate a 1-D numeric vector and pack it as little-endian float32 bytes."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        # Already packed: check it is whole float32 values, then validate those.
        packed = bytes(value)
        if not packed or len(packed) % 4:
            raise VectorError(
                f"{what}: {len(packed)} bytes is not a packed float32 vector "
                "(a positive multiple of 4 bytes)"
            )
        array = np.frombuffer(packed, dtype=VECTOR_DTYPE)
        return validate_vector(array, what).astype(VECTOR_DTYPE).tobytes()
    if isinstance(value, str):
        raise VectorError(f"{what}: expected a sequence of numbers or a numpy array, got a string")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise VectorError(f"{what}: cannot be read as a 1-D array of numbers ({exc})") from exc
    return validate_vector(array, what).astype(VECTOR_DTYPE).tobytes()


def validate_vector(array: np.ndarray, what: str = "vector") -> np.ndarray:
    """Return ``array`` as float32 if it is a non-empty, finite, 1-D numeric vector."""
    if array.dtype.kind not in "iuf":
        raise VectorError(
            f"{what}: expected numbers, got values of type {array.dtype} "
            "(strings, booleans, objects and complex numbers are refused)"
        )
    if array.ndim != 1:
        raise VectorError(f"{what}: expected a 1-D vector, got shape {array.shape}")
    if array.size == 0:
        raise VectorError(f"{what}: the vector is empty; an embedding needs at least one value")
    with np.errstate(over="ignore", invalid="ignore"):
        as_f32 = array.astype(np.float32)
    if not np.isfinite(as_f32).all():
        bad = int(np.flatnonzero(~np.isfinite(as_f32))[0])
        raise VectorError(
            f"{what}: value at index {bad} is {array[bad]!r}, which is NaN, infinite "
            "or too large for float32; embeddings must be finite"
        )
    return as_f32


def decode_vector(blob: bytes, what: str = "vector") -> np.ndarray:
    """Unpack a little-endian float32 BLOB into a writable float32 array."""
    if len(blob) == 0 or len(blob) % 4:
        raise CorruptValueError(
            f"{what}: stored BLOB is {len(blob)} bytes, not a positive multiple of 4, "
            "so it is not a float32 vector; run `ctx-models check --repair` to remove it"
        )
    return np.frombuffer(blob, dtype=VECTOR_DTYPE).astype(np.float32)


class PackedVector(bytes):
    """A vector as little-endian float32 bytes, the contract's BLOB.

    SQLite stores it as the BLOB it is; the PostgreSQL backend registers a
    psycopg dumper that sends it as pgvector's ``vector``. One value, and each
    driver says how it goes over the wire.
    """


class VectorField(BlobField):
    """A 1-D float32 vector: a little-endian BLOB of 4 × dims bytes on SQLite (no header),
    pgvector's ``vector`` on PostgreSQL; a float32 numpy array in Python."""

    def db_value(self, value: Any) -> PackedVector | None:
        if value is None:
            return None
        return PackedVector(encode_vector(value, self.column_name or "vector"))

    def python_value(self, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        if hasattr(value, "to_numpy"):  # pgvector's Vector, from PostgreSQL
            return np.asarray(value.to_numpy(), dtype=np.float32)
        if isinstance(value, np.ndarray):
            return value.astype(np.float32)
        if isinstance(value, str):  # pgvector's text form, "[1,2,3]"
            return np.array(value.strip("[]").split(","), dtype=np.float32)
        return decode_vector(bytes(value), self.column_name or "vector")


def read_text(value: bytes) -> str:
    """Stored text as UTF-8, with U+FFFD for bytes that are not (never an error).

    SQLite keeps whatever bytes a program hands it, in a TEXT column as TEXT or as
    a BLOB; ``ctx-models check`` reports such values and ``--repair`` stores BLOBs
    as TEXT. Reads must not fail on them meanwhile.
    """
    return value.decode("utf-8", "replace")


def as_text(value: Any) -> Any:
    """A value read from a TEXT column: a BLOB (bytes) another program stored there becomes
    text as :func:`read_text` makes it; anything else is returned as it is."""
    return read_text(value) if isinstance(value, bytes) else value


class TextField(peewee.TextField):
    """peewee's ``TextField``, reading a BLOB another program stored in the column as text."""

    def python_value(self, value: Any) -> Any:
        return as_text(value)


class IntegerField(peewee.IntegerField):
    """peewee's ``IntegerField``, reading a value another program stored that is not an integer
    (text, a REAL, a BLOB) as its text, as stored, rather than truncating or failing on it.

    peewee's own would read REAL 0.5 as 0 and hand a BLOB over as bytes, which JSON cannot
    hold. ``ctx-models check`` reports such values where they matter (chunk_index_gaps).
    """

    def python_value(self, value: Any) -> Any:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        return as_text(value) if isinstance(value, (str, bytes)) else str(value)


def encodable(value: str, what: str) -> str:
    """``value`` if it can be written as UTF-8, else a ValidationError.

    A lone surrogate (from bytes decoded with ``errors="surrogateescape"``, as
    Python decodes command-line arguments that are not UTF-8, or from JSON's
    ``"\\udcff"``) has no UTF-8 form: no database can store or compare it, so it
    is refused before any SQL is sent.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} contains a lone surrogate at index {exc.start} "
            f"({value[exc.start]!r}), which is not valid UTF-8; decode your input with "
            "errors='replace'"
        ) from None
    return value


def dump_json_object(value: Any, what: str = "metadata") -> str:
    """Serialise a mapping (or JSON object text) to compact JSON text, or refuse it."""
    if isinstance(value, str):
        parsed = load_json(encodable(value, what), what, error=ValidationError)
        if not isinstance(parsed, dict):
            raise ValidationError(
                f"{what}: JSON text must be an object ({{...}}), got {type(parsed).__name__}"
            )
        # A "\udcff" escape is valid JSON text for a lone surrogate: refused as one.
        dump_json(parsed, what)
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"{what}: expected a dict (a JSON object), got {type(value).__name__}"
        )
    return dump_json(dict(value), what)


def dump_json(value: Any, what: str) -> str:
    """JSON text for any JSON-serialisable value, or a ValidationError saying why not."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(
            f"{what}: not JSON-serialisable ({exc}); use only dicts, lists, strings, "
            "finite numbers, booleans and None"
        ) from exc
    return encodable(text, what)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (SQLite's json functions reject it)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON text, but no float holds it
        raise ValueError(f"the number {text:.40} overflows a float")
    return value


def load_json(text: str, what: str, error: type[Exception] = CorruptValueError) -> Any:
    """Parse strict JSON text (no NaN or Infinity, nor a number that overflows to one),
    raising ``error`` when it is not JSON."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise error(f"{what}: not valid JSON ({exc})") from exc


class UnreadableJSON(dict[str, Any]):
    """The value of a JSON-object column whose stored text is not a JSON object.

    The ``ctx`` tool's script connectors may store any text in
    ``metadata_json``, and ``ctx`` reads such text as ``{}``. So does this: it is
    an empty dict, and ``text`` keeps what is stored. Writing it back writes that
    same text, so saving a document never destroys what another program stored.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def __repr__(self) -> str:
        return f"UnreadableJSON({self.text!r:.60})"


class _GuardedJSONPath(JSONPath):
    """A JSON path that reads NULL from rows whose text is not JSON, instead of failing the query."""

    def _converter(self, value: Any) -> Any:
        # json_extract gives SQL values: numbers and strings as themselves, arrays and
        # objects as JSON text (playhouse's JSONField reads them the same way).
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def __sql__(self, ctx: Any) -> Any:
        if not self._path:
            return ctx.sql(self._field)
        # A database may render paths its own way (PostgreSQL does: see its backend).
        render = getattr(ctx.state, "json_path", None)
        if render is not None:
            return ctx.sql(render(self._field, self._path))
        extract = fn.json_extract(self._field, self.path)
        return ctx.sql(Case(None, [(fn.json_valid(self._field), extract)], SQL("NULL")))


class JSONObjectField(JSONField):
    """A JSON object stored as TEXT; a ``dict`` in Python, with playhouse's JSON paths.

    ``Document.metadata["team"] == "platform"`` filters in SQL through
    ``json_extract``, as with playhouse's ``JSONField``; rows whose text is not
    JSON read as NULL there. Writes must be JSON objects; stored text that is
    not one reads as an empty :class:`UnreadableJSON` (never an error).
    """

    Path = _GuardedJSONPath

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, UnreadableJSON):
            return value.text
        return dump_json_object(value, self.column_name or "json")

    def python_value(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        value = as_text(value)
        try:
            parsed = load_json(value, self.column_name or "json")
        except CorruptValueError:
            return UnreadableJSON(value)
        return parsed if isinstance(parsed, dict) else UnreadableJSON(value)


class IntegerTextField(peewee.TextField):
    """An integer kept as its decimal text (the contract's checkpoint cursor)."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValidationError(
                f"{self.column_name}: expected an integer, got {type(value).__name__} {value!r:.60}"
            )
        if not -(2**63) <= int(value) < 2**63:
            raise ValidationError(
                f"{self.column_name}: {value} does not fit in 64 bits, so the ctx tool could not read it"
            )
        return str(int(value))

    def python_value(self, value: Any) -> int | None:
        if value is None:
            return None
        value = as_text(value)
        text = value if isinstance(value, str) else str(value)
        # The same grammar as Rust's i64 parsing, which the ctx tool uses to read it back.
        if _INTEGER_TEXT.fullmatch(text) and -(2**63) <= int(text) < 2**63:
            return int(text)
        raise CorruptValueError(
            f"{self.column_name}: stored value {value!r:.60} is not a 64-bit integer; "
            "it was written by another program, set it again with set_checkpoint()"
        )
