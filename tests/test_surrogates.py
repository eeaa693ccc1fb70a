"""Text that has no UTF-8 form is refused with our error: lone surrogates through the API, and
command-line arguments that are not UTF-8 (Python hands their bytes over as lone surrogates).

Before, several of these ended in "unexpected UnicodeEncodeError" from the driver.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctx_models import search, store
from ctx_models.embedders import HashingEmbedder
from ctx_models.errors import ValidationError

pytestmark = pytest.mark.backends("sqlite", "postgres")

S = "\udcff"  # what Python makes of the byte 0xff in argv; also "\ud800" from JSON
ROOT = Path(__file__).resolve().parent.parent


class _Embedder:
    dims = 4

    def __init__(self, model: str) -> None:
        self.model = model

    def embed(self, texts):
        return [[1.0, 0.0, 0.0, 0.0] for _ in texts]


def _api_calls(document_id: str):
    return {
        "ingest source": lambda: store.ingest(S, "a", "b"),
        "ingest source_id": lambda: store.ingest("s", S, "b"),
        "ingest body": lambda: store.ingest("s", "x", S),
        "ingest title": lambda: store.ingest("s", "x", "b", title=S),
        "ingest author": lambda: store.ingest("s", "x", "b", author=S),
        "ingest source_url": lambda: store.ingest("s", "x", "b", source_url=S),
        "ingest content_type": lambda: store.ingest("s", "x", "b", content_type=S),
        "ingest metadata key": lambda: store.ingest("s", "x", "b", metadata={S: 1}),
        "ingest metadata value": lambda: store.ingest("s", "x", "b", metadata={"k": S}),
        "ingest metadata nested": lambda: store.ingest("s", "x", "b", metadata={"k": [{"z": S}]}),
        "ingest metadata JSON escape": lambda: store.ingest("s", "x", "b", metadata='{"k": "\\udcff"}'),
        "ingest raw_json": lambda: store.ingest("s", "x", "b", raw_json={"k": S}),
        "ingest raw_json text": lambda: store.ingest("s", "x", "b", raw_json='{"k": "\\ud800"}'),
        "ingest_many": lambda: store.ingest_many([{"source": "s", "source_id": S, "body": "b"}]),
        "upsert_document": lambda: store.upsert_document("s", "x", "b", metadata={S: S}),
        "replace_chunks document": lambda: store.replace_chunks(S, ["x"]),
        "replace_chunks text": lambda: store.replace_chunks(document_id, [S]),
        "replace_chunks model": lambda: store.replace_chunks(document_id, ["x"], [[1.0]], S),
        "upsert_embeddings chunk": lambda: store.upsert_embeddings([(S, "m", [1.0])]),
        "upsert_embeddings model": lambda: store.upsert_embeddings([(document_id, S, [1.0])]),
        "pending_chunks": lambda: store.pending_chunks(S),
        "embeddings_replaced_by": lambda: store.embeddings_replaced_by(S),
        "embed_pending": lambda: store.embed_pending(_Embedder("m" + S)),
        "clear_embeddings": lambda: store.clear_embeddings(S),
        "get_checkpoint": lambda: store.get_checkpoint(S),
        "set_checkpoint": lambda: store.set_checkpoint(S, 1),
        "delete_document": lambda: store.delete_document(S),
        "delete_source": lambda: store.delete_source(S),
        "get_document": lambda: store.get_document(S),
        "get_document_by_source source": lambda: store.get_document_by_source(S, "a"),
        "get_document_by_source source_id": lambda: store.get_document_by_source("s", S),
        "export source": lambda: store.export(io.StringIO(), source=S),
        "keyword_search": lambda: search.keyword_search("a" + S),
        "keyword_search raw": lambda: search.keyword_search(S, raw=True),
        "keyword_search source": lambda: search.keyword_search("hello", source=S),
        "vector_search text": lambda: search.vector_search(S),
        "vector_search source": lambda: search.vector_search([1.0, 0.0, 0.0, 0.0], source=S),
        "vector_search model": lambda: search.vector_search("hello", model=S),
        "hybrid question": lambda: search.hybrid_search("hello " + S),
        "hybrid source": lambda: search.hybrid_search("hello", source=S),
        "hybrid model": lambda: search.hybrid_search("hello", model=S),
        "hybrid since": lambda: search.hybrid_search("hello", since=S),
    }


API_CALLS = list(_api_calls(""))


def _snapshot(raw) -> list:
    tables = ("documents", "chunks", "checkpoints", "embeddings", "chunk_vectors")
    return [sorted(map(repr, raw.execute(f"SELECT * FROM {t}").fetchall())) for t in tables]


@pytest.mark.parametrize("call", API_CALLS)
def test_every_api_text_input_refuses_a_lone_surrogate(db, raw, call: str) -> None:
    document_id = store.ingest("s", "a", "hello world", embedder=HashingEmbedder(4)).document_id
    store.set_checkpoint("s", 5)
    before = _snapshot(raw)
    with pytest.raises(ValidationError, match="surrogate|not a date"):
        _api_calls(document_id)[call]()
    assert _snapshot(raw) == before  # a refused call changes nothing


# --------------------------------------------------------------------------- the command line

CLI_TEXT = [
    ("search", "{X}"),
    ("search", "hello", "--source", "{X}"),
    ("search", "hello", "--since", "{X}"),
    ("search", "hello", "--model", "{X}"),
    ("search", "hello", "--mode", "semantic", "--model", "{X}"),
    ("export", "--source", "{X}"),
    ("delete", "--source", "{X}", "--yes"),
    ("delete", "--id", "{X}", "--yes"),
    ("embed", "--model", "{X}", "--yes"),
    ("seed", "--model", "{X}", "-q"),
    ("checkpoint", "{X}"),
    ("checkpoint", "{X}", "--clear"),
]


@pytest.mark.parametrize("argv", CLI_TEXT, ids=[" ".join(a) for a in CLI_TEXT])
@pytest.mark.parametrize("bad", ["\udcff", "caf\udcc3", "ok\udc80ok"])
def test_each_cli_text_argument_with_invalid_bytes_is_one_line(
    db, location, run_cli, argv, bad: str
) -> None:
    store.ingest("s", "a", "hello world", embedder=HashingEmbedder(4))
    args = [a.replace("{X}", bad) for a in argv]
    code, out, err = run_cli(*args, "--db", str(location))
    assert code == 1 and out == "", (out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "not valid UTF-8" in err, err
    assert "unexpected" not in err
    assert store.get_document_by_source("s", "a") is not None


def test_invalid_bytes_in_a_real_argv(tmp_path: Path) -> None:
    """The bytes themselves, through a real process: Python decodes them as surrogates."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"}
    db = os.fsencode(tmp_path / "ctx.sqlite")
    for argv in ([b"init"], [b"search", b"caf\xc3"], [b"export", b"--source", b"\xff"]):
        done = subprocess.run(
            [os.fsencode(sys.executable), b"-m", b"ctx_models", *argv, b"--db", db],
            capture_output=True, env=env, timeout=120, check=False,
        )
        if argv == [b"init"]:
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 1 and done.stdout == b"", done
        assert done.stderr.count(b"\n") == 1 and b"not valid UTF-8" in done.stderr, done.stderr


def test_file_names_may_hold_any_bytes(tmp_path: Path) -> None:
    """Paths are not text for the database: a file name that is not UTF-8 works, and is printed
    as the bytes it is, even where stdout is strict UTF-8 (a desktop's en_US.UTF-8)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8:strict"}
    name = os.fsencode(tmp_path) + b"/caf\xc3.sqlite"
    for command in (b"init", b"stats"):
        done = subprocess.run(
            [os.fsencode(sys.executable), b"-m", b"ctx_models", command, b"--db", name],
            capture_output=True, env=env, timeout=120, check=False,
        )
        assert done.returncode == 0 and done.stderr == b"", done.stderr
        assert b"caf\xc3.sqlite" in done.stdout
