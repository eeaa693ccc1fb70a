"""The server's tools as plain functions, the worker threads' time limit, and read-only connections.

In-process, no MCP: what ``ctx-models serve`` returns, compared with the
library's own search, ``get_document`` and ``stats``, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import ctx_models
from ctx_models import search, store
from ctx_models.errors import DatabaseError, NotFoundError, TimeLimitError, ValidationError
from ctx_models.server import tools
from ctx_models.server.service import Workers, error_code

pytestmark = pytest.mark.backends("sqlite", "postgres")

SEARCH_KEYS = ["id", "score", "title", "source", "source_id", "updated_at", "snippet", "source_url"]
GET_KEYS = [
    "id", "source", "source_id", "source_url", "title", "author", "created_at", "updated_at",
    "content_type", "body", "metadata", "chunks",
]


def fill(embedder: Any) -> None:
    """Four documents in two sources, a month apart, embedded, with a checkpoint."""
    docs = [
        ("docs", "failover.md", "Postgres failover runbook: promote the standby replica.", 1_767_225_600),
        ("docs", "backup.md", "Postgres backups run nightly; restore from the newest dump.", 1_769_904_000),
        ("tickets", "OPS-1", "Kafka consumer lag on the indexer after the May deploy.", 1_772_323_200),
        ("tickets", "OPS-2", "Postgres replica lag alarms during the backup window.", 1_775_001_600),
    ]
    for source, source_id, body, updated in docs:
        store.ingest(
            source, source_id, body, title=source_id.upper(), author="ops",
            source_url=f"https://example.com/{source_id}", updated_at=updated,
            metadata={"team": "platform"}, embedder=embedder,
        )
    store.set_checkpoint("docs", 1_769_904_000)


@pytest.fixture
def filled(db: Any, embedder: Any) -> Any:
    fill(embedder)
    return db


def test_search_is_the_library_search_in_ctx_shape(filled: Any) -> None:
    answer = tools.search("postgres replica lag")
    assert list(answer) == ["results"]
    own = search.hybrid_search("postgres replica lag", mode="keyword", limit=12)
    assert [r["id"] for r in answer["results"]] == [hit.id for hit in own]
    assert len(answer["results"]) >= 3
    for item, hit in zip(answer["results"], own):
        assert list(item) == SEARCH_KEYS
        assert 0.0 <= item["score"] <= 1.0 and item["score"] == pytest.approx(hit.score)
        assert item["updated_at"].endswith("Z") and item["updated_at"] == hit.updated_at
    assert answer["results"][0]["score"] == 1.0


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_search_modes_and_our_options(filled: Any, mode: str) -> None:
    answer = tools.search("postgres standby", mode=mode, fusion="minmax", alpha=0.5, explain=True)
    own = search.hybrid_search("postgres standby", mode=mode, fusion="minmax", alpha=0.5)
    assert [r["id"] for r in answer["results"]] == [hit.id for hit in own]
    assert answer["explain"]["fusion"] == "minmax"
    assert all(0.0 <= r["score"] <= 1.0 and "chunk_id" in r["explain"] for r in answer["results"])


def test_search_filters(filled: Any) -> None:
    by_source = tools.search("postgres", filters={"source": "tickets"})["results"]
    assert {r["source"] for r in by_source} == {"tickets"} and len(by_source) == 1
    recent = tools.search("postgres", filters={"since": "2026-02-15"})["results"]
    assert [r["source_id"] for r in recent] == ["OPS-2"]
    # ctx's other filter keys pass when empty, as an agent following ctx's schema may send them
    assert tools.search("postgres", filters={"since": None, "tags": [], "until": None})["results"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"query": ""}, "query must not be empty"),
        ({"query": "   "}, "query must not be empty"),
        ({"query": 3}, "query must be a string"),
        ({"query": "x" * (tools.MAX_QUERY_CHARS + 1)}, "at most 2,000"),
        ({"query": "x", "limit": tools.MAX_LIMIT + 1}, "limit must be an integer from 1 to 100"),
        ({"query": "x", "limit": True}, "limit must be an integer"),
        ({"query": "x", "mode": "fuzzy"}, "mode must be one of keyword, semantic, hybrid"),
        ({"query": "x", "filters": {"since": "yesterday"}}, "since: 'yesterday' is not a date"),
        ({"query": "x", "filters": {"since": "2026-01-31T09:00"}}, "has no time zone"),
        ({"query": "x", "filters": {"until": "2026-01-01"}}, "filters.until is not supported"),
        ({"query": "x", "filters": "docs"}, "filters must be an object"),
        ({"query": "x", "alpha": 2}, "alpha must be from 0"),
        ({"query": "x", "explain": "yes"}, "explain must be true or false"),
        ({"query": "x", "colour": "red"}, "unknown parameter 'colour'"),
        ({"mode": "keyword"}, "query is required"),
    ],
)
def test_search_refuses_bad_parameters_with_its_own_words(filled: Any, params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        tools.call("search", params)
    assert error_code(caught.value) == "bad_request"


def test_get_is_get_document_in_ctx_shape(filled: Any) -> None:
    hit = tools.search("kafka consumer lag")["results"][0]
    document = tools.get(hit["id"])
    assert list(document) == GET_KEYS
    own = store.get_document(hit["id"])
    assert own is not None
    assert (document["source"], document["source_id"], document["body"]) == (own.source, own.source_id, own.body)
    assert document["metadata"] == {"team": "platform"} and document["author"] == "ops"
    assert document["updated_at"] == "2026-03-01T00:00:00Z"
    assert document["chunks"] == [{"index": c.chunk_index, "text": c.text} for c in own.chunks]


def test_get_unknown_and_bad_ids(filled: Any) -> None:
    with pytest.raises(NotFoundError, match="document not found") as caught:
        tools.call("get", {"id": "3f1c2b9e-0000-4000-8000-000000000000"})
    assert error_code(caught.value) == "not_found"
    with pytest.raises(ValidationError, match="id must not be empty"):
        tools.call("get", {"id": " "})
    with pytest.raises(ValidationError, match="id must be a string"):
        tools.call("get", {"id": 7})
    with pytest.raises(NotFoundError, match="no tool registered with name: 'delete'"):
        tools.call("delete", {})


def test_sources_counts_checkpoint_and_last_change(filled: Any) -> None:
    answer = tools.call("sources", {})
    listed = {s["name"]: s for s in answer["sources"]}
    stats = {s.source: s for s in store.stats().sources}
    assert set(listed) == set(stats) == {"docs", "tickets"}
    for name, entry in listed.items():
        assert entry["source"] == name
        assert (entry["document_count"], entry["chunk_count"], entry["embedded_count"]) == (
            stats[name].documents, stats[name].chunks, stats[name].embedded,
        )
    assert listed["docs"]["checkpoint"] == 1_769_904_000 and listed["tickets"]["checkpoint"] is None
    assert listed["docs"]["last_updated_at"] == "2026-02-01T00:00:00Z"
    assert listed["tickets"]["last_updated_at"] == "2026-04-01T00:00:00Z"


# --------------------------------------------------------------------------- workers


@pytest.mark.backends("sqlite")
def test_a_call_past_its_time_limit_is_dropped_and_the_worker_goes_on(backend: str) -> None:
    workers = Workers(1)
    release = threading.Event()
    started, finished = threading.Event(), threading.Event()
    cut_short: list[bool] = []

    def stuck() -> str:
        started.set()
        release.wait(60)
        finished.set()
        return "late"

    async def scenario() -> None:
        with pytest.raises(TimeLimitError, match="time limit of 0.05 s") as caught:
            await workers.run(0.05, stuck, on_timeout=lambda: cut_short.append(True))
        assert error_code(caught.value) == "timeout"
        release.set()  # what on_timeout would do for a real search
        assert await workers.run(60, lambda: "next") == "next"  # the same thread, free again

    asyncio.run(scenario())
    # Either it had started, finished in the background and was told to stop, or it never ran.
    assert started.is_set() == finished.is_set() == bool(cut_short)
    workers.close()


@pytest.mark.backends("sqlite")
def test_a_timed_out_sqlite_statement_is_interrupted(
    backend: str, filled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctx_models.models import bound_database
    from ctx_models.server.service import _Running

    started = threading.Event()

    def spin() -> dict:
        db = bound_database()
        # started() runs inside the statement, so the interrupt comes while it runs
        db.connection().create_function("started", 0, lambda: started.set() or 1)
        db.execute_sql(  # a query that never ends unless interrupted
            "WITH RECURSIVE c(x) AS (SELECT started() UNION ALL SELECT x + 1 FROM c) "
            "SELECT count(*) FROM c"
        ).fetchone()
        return {}

    monkeypatch.setitem(tools.TOOLS, "spin", (spin, {}))
    workers = Workers(1)
    running = _Running()
    future = workers.submit(running.call, "spin", {})
    assert started.wait(60)
    running.interrupt()
    assert "interrupted" in str(future.exception(timeout=60))  # SQLite stopped the statement
    assert workers.submit(lambda: "free").result(timeout=60) == "free"
    running.interrupt()  # nothing running: nothing happens
    assert workers.submit(running.call, "sources", {}).result(timeout=60)["sources"]
    workers.close()


@pytest.mark.backends("sqlite")
def test_a_queued_call_whose_caller_gave_up_never_runs(backend: str) -> None:
    workers = Workers(1)
    release = threading.Event()
    ran: list[str] = []

    async def scenario() -> None:
        blocker = workers.submit(release.wait, 60)
        with pytest.raises(TimeLimitError):
            await workers.run(0.05, ran.append, "queued")
        release.set()
        blocker.result(60)
        assert await workers.run(60, lambda: "after") == "after"

    asyncio.run(scenario())
    assert ran == []
    workers.close()


# --------------------------------------------------------------------------- read-only


@pytest.mark.backends("sqlite")
def test_a_read_only_connection_reads_and_cannot_write(backend: str, db_path: Path, embedder: Any) -> None:
    writer = ctx_models.connect(db_path)
    ctx_models.run_migrations(writer)
    fill(embedder)
    writer.close()
    reader = ctx_models.connect(db_path, readonly=True)
    try:
        assert tools.search("kafka")["results"]
        with pytest.raises(DatabaseError, match="cannot write"):
            store.ingest("docs", "new.md", "a new document", embedder=embedder)
        assert store.stats().documents == 4
    finally:
        reader.close()


@pytest.mark.backends("sqlite")
def test_a_read_only_connection_needs_an_existing_database(backend: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no database at"):
        ctx_models.connect(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.backends("postgres")
def test_a_read_only_postgres_connection_cannot_write(backend: str, location: str, embedder: Any) -> None:
    writer = ctx_models.connect(location)
    ctx_models.run_migrations(writer)
    fill(embedder)
    writer.close()
    reader = ctx_models.connect(location, readonly=True)
    try:
        assert tools.search("kafka")["results"]
        with pytest.raises(DatabaseError):
            store.ingest("docs", "new.md", "a new document", embedder=embedder)
        assert store.stats().documents == 4
    finally:
        reader.close()


@pytest.mark.backends("sqlite")
def test_the_listening_socket_is_tcp_so_replies_are_not_held_by_nagle(backend: str) -> None:
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket's
    # proto is IPPROTO_TCP; with proto 0 each HTTP reply waited 40 ms for a delayed ACK.
    import socket

    from ctx_models.server.run import _listen

    listener = _listen("127.0.0.1", 0)
    try:
        assert listener.proto == socket.IPPROTO_TCP
    finally:
        listener.close()
