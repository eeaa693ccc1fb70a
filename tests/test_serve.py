"""``ctx-models serve`` as a real process, driven by the MCP SDK's own client and by plain HTTP.

stdio: ``python -m ctx_models serve --db ...`` launched by the SDK's client.
HTTP: a server on a free port of a loopback address (``--port 0``; the port is
read from its first log line). Results are compared with the library's own
search and ``get_document``; ctx's HTTP routes with ctx's documented shapes
(``docs/SCHEMAS.md`` and ``src/server.rs`` of parallax-labs/context-harness):
``{"result": ...}`` from ``POST /tools/{name}``, ``{"tools": [{name,
description, builtin, parameters}]}`` from ``GET /tools/list``, errors as
``{"error": {"code", "message"}}``. Timeouts here only keep a broken server from
hanging the suite; nothing asserts a duration.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from test_serve_tools import fill

import ctx_models
from ctx_models import search, store
from ctx_models.embedders import HashingEmbedder
from ctx_models.server import http as server_http

pytestmark = pytest.mark.slow

WAIT = 90  # seconds: generous, only against a hung server
TOKEN = "s3cret-token-for-tests"
SEARCH_KEYS = ["id", "score", "title", "source", "source_id", "updated_at", "snippet", "source_url"]


def make_store(path: Path) -> Path:
    db = ctx_models.connect(path)
    ctx_models.run_migrations(db)
    fill(HashingEmbedder(384))
    db.close()
    return path


def add_document(where: Any, source_id: str, body: str) -> None:
    """Another writer: its own connection, committed, then closed."""
    db = ctx_models.connect(where, bind_models=False)
    with db.bind_ctx(ctx_models.MODELS):
        store.ingest("notes", source_id, body, embedder=HashingEmbedder(384))
    db.close()


def library_ids(where: Any, query: str, **options: Any) -> list[str]:
    db = ctx_models.connect(where, bind_models=False)
    try:
        with db.bind_ctx(ctx_models.MODELS):
            return [hit.id for hit in search.hybrid_search(query, **options)]
    finally:
        db.close()


def library_document(where: Any, document_id: str) -> Any:
    db = ctx_models.connect(where, bind_models=False)
    try:
        with db.bind_ctx(ctx_models.MODELS):
            return store.get_document(document_id)
    finally:
        db.close()


def serve_argv(where: Any, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ctx_models", "serve", "--db", str(where), *extra]


# --------------------------------------------------------------------------- an HTTP server process


class HTTPServer:
    """``serve --http`` in a subprocess; its stderr lines collected by a thread."""

    def __init__(self, where: Any, *extra: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            serve_argv(where, "--http", "--port", "0", *extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_url()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_for_url(self) -> str:
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                raise AssertionError(f"server exited: {''.join(self.log)}")
            self.log.append(line)
            found = re.search(r"at (http://\S+):(\d+)/mcp", line)
            if found:
                return f"{found.group(1)}:{found.group(2)}"

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        out = self.process.stdout.read() if self.process.stdout else ""
        while (line := self.lines.get(timeout=WAIT)) is not None:
            self.log.append(line)
        return code, out, "".join(self.log)


def http(method: str, url: str, body: Any = None, *, token: str | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("serve") / "ctx.sqlite")


@pytest.fixture(scope="module")
def server(corpus: Path) -> Iterator[HTTPServer]:
    running = HTTPServer(corpus)
    yield running
    running.stop()


# --------------------------------------------------------------------------- MCP, over stdio and HTTP


async def check_mcp_session(client: Client, where: Any) -> None:
    """What an agent does: list the tools, call each, read a document; checked against the library."""
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == {"search", "get", "sources"}
    schema = listed["search"].input_schema
    assert schema["required"] == ["query"]
    assert schema["properties"]["mode"]["enum"] == ["keyword", "semantic", "hybrid"]
    assert schema["properties"]["mode"]["default"] == "keyword"
    assert schema["properties"]["limit"]["default"] == 12
    assert {"fusion", "alpha", "explain", "filters"} <= set(schema["properties"])
    assert set(schema["$defs"]["SearchFilters"]["properties"]) == {"source", "since"}
    assert listed["get"].input_schema["required"] == ["id"]
    assert listed["sources"].input_schema.get("required", []) == []

    found = await client.call_tool("search", {"query": "postgres replica lag", "limit": 3})
    assert not found.is_error
    results = found.structured_content["results"]
    assert [r["id"] for r in results] == library_ids(where, "postgres replica lag", mode="keyword", limit=3)
    assert all(list(r) == SEARCH_KEYS and 0 <= r["score"] <= 1 for r in results)

    hybrid = await client.call_tool("search", {"query": "postgres standby", "mode": "hybrid", "alpha": 0.5})
    assert [r["id"] for r in hybrid.structured_content["results"]] == library_ids(
        where, "postgres standby", mode="hybrid", alpha=0.5
    )
    filtered = await client.call_tool(
        "search", {"query": "postgres", "filters": {"source": "tickets", "since": "2026-02-15"}}
    )
    assert [r["source_id"] for r in filtered.structured_content["results"]] == ["OPS-2"]

    document = (await client.call_tool("get", {"id": results[0]["id"]})).structured_content
    own = library_document(where, results[0]["id"])
    assert (document["body"], document["source_id"]) == (own.body, own.source_id)
    assert document["chunks"] == [{"index": c.chunk_index, "text": c.text} for c in own.chunks]

    sources = (await client.call_tool("sources", {})).structured_content["sources"]
    assert {s["name"]: s["document_count"] for s in sources} == {"docs": 2, "tickets": 2}

    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["ctx://documents/{id}"]
    read = await client.read_resource(f"ctx://documents/{results[0]['id']}")
    assert json.loads(read.contents[0].text)["body"] == own.body

    for name, params, message in [
        ("search", {"query": "  "}, "query must not be empty"),
        ("search", {"query": "x", "filters": {"since": "last week"}}, "is not a date"),
        ("search", {"query": "x", "limit": 1000}, "limit must be an integer from 1 to 100"),
        ("get", {"id": "3f1c2b9e-0000-4000-8000-000000000000"}, "document not found"),
        ("delete", {"id": "x"}, "Unknown tool"),
    ]:
        failed = await client.call_tool(name, params)
        assert failed.is_error, (name, params)
        assert message in failed.content[0].text, failed.content[0].text

    # Another process writes; the server's next search sees it.
    add_document(where, "zebra.md", "Zebra crossings of the quokka migration.")
    fresh = await client.call_tool("search", {"query": "quokka zebra", "mode": "hybrid"})
    assert [r["source_id"] for r in fresh.structured_content["results"]] == ["zebra.md"]


def test_mcp_over_stdio(tmp_path: Path) -> None:
    where = make_store(tmp_path / "ctx.sqlite")
    params = StdioServerParameters(command=sys.executable, args=serve_argv(where)[1:])

    async def scenario() -> None:
        with anyio.fail_after(WAIT * 2):
            async with Client(params, read_timeout_seconds=WAIT) as client:
                await check_mcp_session(client, where)

    anyio.run(scenario)


def test_mcp_over_http(tmp_path: Path) -> None:
    where = make_store(tmp_path / "ctx.sqlite")
    running = HTTPServer(where)
    try:

        async def scenario() -> None:
            with anyio.fail_after(WAIT * 2):
                async with Client(running.url + "/mcp", read_timeout_seconds=WAIT) as client:
                    await check_mcp_session(client, where)

        anyio.run(scenario)
    finally:
        code, out, log = running.stop()
    assert code == 0 and out == "", log
    # Each MCP request's line says what it asked and how it went, as over stdio.
    calls = [m.group(1) for m in re.finditer(r'"POST /mcp" 200 [\d.]+ ms (.*)$', log, re.M)]
    assert calls[0].endswith(" ok") and "tools/list ok" in calls, log  # the client's hello first
    assert "resources/templates/list ok" in calls and "resources/read ok" in calls, log
    assert calls.count("tools/call search ok") == 4, log
    assert "tools/call get ok" in calls and "tools/call sources ok" in calls, log
    assert calls.count("tools/call search bad_request") == 3, log
    assert "tools/call get not_found" in calls, log
    assert "tools/call delete error" in calls, log  # an unknown tool: the SDK answers isError


# --------------------------------------------------------------------------- stdio: the protocol alone on stdout


def test_stdio_stdout_carries_only_the_protocol_and_logs_go_to_stderr(corpus: Path) -> None:
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": "kafka lag"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "search", "arguments": {"query": ""}}},
    ]
    # A library that prints while it searches (warm-up included) must not reach the protocol.
    noisy = (
        "import sys\n"
        "from ctx_models import search\n"
        "real = search.hybrid_search\n"
        "def noisy(*args, **kwargs):\n"
        "    print('noise from a library', flush=True)\n"
        "    return real(*args, **kwargs)\n"
        "search.hybrid_search = noisy\n"
        "from ctx_models.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", noisy, *serve_argv(corpus)[3:]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    assert process.stdin is not None
    replies = []
    try:
        for message in messages:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            if "id" in message:  # a request: wait for its answer before the next
                line = lines.get(timeout=WAIT)
                assert line is not None, process.stderr.read() if process.stderr else ""
                replies.append(json.loads(line))  # every line on stdout is JSON-RPC
        process.stdin.close()  # the client goes away: the server ends
        process.wait(WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    assert lines.get(timeout=WAIT) is None  # nothing else was written to stdout
    stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, stderr
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    by_id = {reply["id"]: reply for reply in replies if "id" in reply}
    assert set(by_id) == {1, 2, 3}
    assert by_id[2]["result"]["structuredContent"]["results"][0]["source_id"] == "OPS-1"
    assert by_id[3]["result"]["isError"] is True
    assert stderr.count("noise from a library") >= 3  # the warm-up's two searches and the call's
    logged = [line.split(": ", 1)[1].rsplit(" ", 2)[0] for line in stderr.splitlines() if " ms" in line]
    assert logged == ["initialize ok", "tools/call search ok", "tools/call search bad_request"], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stdio_server_stops_cleanly_on_a_signal(corpus: Path, sig: int) -> None:
    process = subprocess.Popen(
        serve_argv(corpus), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        assert "over stdio" in process.stderr.readline()  # serving: the store is open
        process.send_signal(sig)
        out, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out == "" and "stopped" in err and "Traceback" not in err


# --------------------------------------------------------------------------- ctx's HTTP routes


def test_tools_list_has_ctx_shape(server: HTTPServer) -> None:
    status, body = http("GET", server.url + "/tools/list")
    assert status == 200 and list(body) == ["tools"]
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert set(tools) == {"search", "get", "sources"}
    for tool in body["tools"]:
        assert set(tool) == {"name", "description", "builtin", "parameters"}
        assert tool["builtin"] is True and tool["description"]
        assert tool["parameters"]["type"] == "object" and "properties" in tool["parameters"]
    assert tools["search"]["parameters"]["required"] == ["query"]
    assert tools["get"]["parameters"]["required"] == ["id"]


def test_search_get_sources_routes(server: HTTPServer, corpus: Path) -> None:
    status, body = http("POST", server.url + "/tools/search", {"query": "postgres replica lag", "limit": 2})
    assert status == 200 and list(body) == ["result"] and list(body["result"]) == ["results"]
    results = body["result"]["results"]
    assert [r["id"] for r in results] == library_ids(corpus, "postgres replica lag", mode="keyword", limit=2)
    assert all(list(r) == SEARCH_KEYS and 0 <= r["score"] <= 1 for r in results)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["updated_at"]) for r in results)

    status, body = http("POST", server.url + "/tools/search", {"query": "postgres", "filters": {"source": "docs"}})
    assert status == 200 and {r["source"] for r in body["result"]["results"]} == {"docs"}

    status, body = http("POST", server.url + "/tools/get", {"id": results[0]["id"]})
    own = library_document(corpus, results[0]["id"])
    assert status == 200 and body["result"]["body"] == own.body
    assert list(body["result"]) == [
        "id", "source", "source_id", "source_url", "title", "author", "created_at", "updated_at",
        "content_type", "body", "metadata", "chunks",
    ]
    status, body = http("POST", server.url + "/tools/sources", raw=b"")  # no parameters, no body
    assert status == 200 and {s["source"] for s in body["result"]["sources"]} >= {"docs", "tickets"}

    status, listed = http("GET", server.url + "/tools/sources")  # ctx's REST reference's form
    assert status == 200 and listed == body

    status, body = http("GET", server.url + "/health")
    assert status == 200 and body == {"status": "ok", "version": ctx_models.__version__}


@pytest.mark.parametrize(
    ("path", "params", "raw", "status", "code", "message"),
    [
        ("/tools/nope", {}, None, 404, "not_found", "no tool registered with name: nope"),
        ("/tools/search", {"query": ""}, None, 400, "bad_request", "query must not be empty"),
        ("/tools/search", {"query": "x", "filters": {"since": "soon"}}, None, 400, "bad_request", "is not a date"),
        ("/tools/search", {"query": "x", "limit": 101}, None, 400, "bad_request", "from 1 to 100"),
        ("/tools/search", {"query": "x" * 2001}, None, 400, "bad_request", "at most 2,000"),
        ("/tools/search", {"text": "x"}, None, 400, "bad_request", "unknown parameter 'text'"),
        ("/tools/search", None, b"{not json", 400, "bad_request", "not valid JSON"),
        ("/tools/search", None, b"[1, 2]", 400, "bad_request", "must be a JSON object"),
        ("/tools/get", {"id": "3f1c2b9e-0000-4000-8000-000000000000"}, None, 404, "not_found", "document not found"),
        ("/tools/get", {}, None, 400, "bad_request", "id is required"),
        ("/tools/search", None, b'{"query": "' + b"x" * 70_000 + b'"}', 413, "too_large", "larger than"),
    ],
)
def test_route_errors_have_ctx_shape(
    server: HTTPServer, path: str, params: Any, raw: bytes | None, status: int, code: str, message: str
) -> None:
    got, body = http("POST", server.url + path, params, raw=raw)
    assert got == status, body
    assert list(body) == ["error"] and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and message in body["error"]["message"], body


def test_a_search_past_the_time_limit_gets_408(corpus: Path) -> None:
    running = HTTPServer(corpus, "--timeout", "0.000001")  # a limit no search can meet
    try:
        status, body = http("POST", running.url + "/tools/search", {"query": "postgres"})
        assert status == 408 and body["error"]["code"] == "timeout", body
        status, body = http("GET", running.url + "/health")  # the server is still there
        assert status == 200
    finally:
        code, _, log = running.stop()
    assert code == 0, log


def test_each_request_is_one_line_on_stderr(server: HTTPServer) -> None:
    http("POST", server.url + "/tools/search", {"query": "kafka"})
    http("GET", server.url + "/health")
    while len([line for line in server.log if '"GET /health"' in line]) < 1:
        server.log.append(server.lines.get(timeout=WAIT) or "")
    assert any(re.search(r'"POST /tools/search" 200 [\d.]+ ms search ok$', line) for line in server.log)


# --------------------------------------------------------------------------- the token


def test_another_address_needs_a_token(corpus: Path) -> None:
    process = subprocess.run(
        serve_argv(corpus, "--http", "--host", "127.0.0.2", "--port", "0"),
        capture_output=True, text=True, timeout=WAIT,
        env={k: v for k, v in os.environ.items() if k != "CTX_MODELS_SERVE_TOKEN"},
    )
    assert process.returncode == 1 and process.stdout == ""
    assert process.stderr.strip().splitlines() == [
        "error: serving on 127.0.0.2 needs a bearer token: set CTX_MODELS_SERVE_TOKEN (or pass "
        "--token); clients then send Authorization: Bearer <token>"
    ]


def test_an_empty_token_is_refused(corpus: Path) -> None:
    process = subprocess.run(
        serve_argv(corpus, "--http", "--host", "127.0.0.2", "--port", "0", "--token", ""),
        capture_output=True, text=True, timeout=WAIT,
    )
    assert process.returncode == 1
    assert process.stderr.strip().splitlines() == [
        "error: the bearer token is empty; give a long random one, or none"
    ]


def test_with_a_token_requests_without_it_get_401(corpus: Path) -> None:
    running = HTTPServer(corpus, "--host", "127.0.0.2", env={"CTX_MODELS_SERVE_TOKEN": TOKEN})
    try:
        assert running.url.startswith("http://127.0.0.2:")
        for token in (None, "wrong", TOKEN + "x"):
            status, body = http("POST", running.url + "/tools/search", {"query": "postgres"}, token=token)
            assert status == 401 and body["error"]["code"] == "unauthorized"
            status, _ = http("GET", running.url + "/tools/list", token=token)
            assert status == 401
        status, body = http("POST", running.url + "/tools/search", {"query": "postgres"}, token=TOKEN)
        assert status == 200 and body["result"]["results"]

        async def mcp_with_and_without_token() -> None:
            with anyio.fail_after(WAIT):
                headers = {"Authorization": f"Bearer {TOKEN}"}
                async with httpx2.AsyncClient(headers=headers, timeout=WAIT) as http_client:
                    transport = streamable_http_client(running.url + "/mcp", http_client=http_client)
                    async with Client(transport, read_timeout_seconds=WAIT) as client:
                        found = await client.call_tool("search", {"query": "kafka"})
                        assert found.structured_content["results"][0]["source_id"] == "OPS-1"
                async with httpx2.AsyncClient(timeout=WAIT) as bare:
                    response = await bare.post(running.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
                    assert response.status_code == 401

        anyio.run(mcp_with_and_without_token)
    finally:
        code, _, log = running.stop(signal.SIGINT)
    assert code == 0, log
    assert TOKEN not in log and "stopped" in log


# --------------------------------------------------------------------------- start and stop


def test_http_server_stops_cleanly_on_sigterm(corpus: Path) -> None:
    running = HTTPServer(corpus)
    assert http("GET", running.url + "/health")[0] == 200
    code, out, log = running.stop(signal.SIGTERM)
    assert code == 0 and out == "" and "stopped" in log and "Traceback" not in log


def _damaged_store(path: Path) -> None:
    """A store with garbage over the chunks table's root page (past its header)."""
    make_store(path)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'chunks'").fetchone()
    finally:
        conn.close()
    with path.open("r+b") as fh:
        fh.seek((root - 1) * page_size + 8)
        fh.write(b"\xa5" * (page_size // 2))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no database at"),
        (lambda p: p.write_bytes(b"this is not a database" * 10), "is not a SQLite database"),
        (lambda p: ctx_models.connect(p).close(), "lacks the ctx schema"),
        (lambda p: _damaged_store(p), "is damaged"),  # the schema reads; a table's page does not
    ],
)
def test_a_missing_or_damaged_database_is_one_error_at_start(
    tmp_path: Path, make: Any, message: str
) -> None:
    where = tmp_path / "ctx.sqlite"
    make(where)
    for extra in ([], ["--http", "--port", "0"]):
        process = subprocess.run(
            serve_argv(where, *extra), capture_output=True, text=True, timeout=WAIT, stdin=subprocess.DEVNULL
        )
        assert process.returncode == 1 and process.stdout == ""
        lines = process.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_a_postgres_password_stays_out_of_the_error(tmp_path: Path) -> None:
    url = "postgresql://reader:hunter2-secret@127.0.0.1:1/ctx"  # nothing listens on port 1
    process = subprocess.run(
        serve_argv(url, "--http", "--port", "0"), capture_output=True, text=True, timeout=WAIT
    )
    assert process.returncode == 1
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "reader:***@" in lines[0], lines
    assert "hunter2" not in process.stderr + process.stdout


def test_a_taken_port_is_one_error(server: HTTPServer, corpus: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    process = subprocess.run(
        serve_argv(corpus, "--http", "--port", port), capture_output=True, text=True, timeout=WAIT
    )
    assert process.returncode == 1
    assert process.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; choose another "
        "--port (0 picks a free one) or --host"
    ]


# --------------------------------------------------------------------------- writes seen (last: it adds a document)


def test_a_write_by_another_process_is_seen_by_the_next_search(server: HTTPServer, corpus: Path) -> None:
    query = {"query": "walrus tusk inventory", "mode": "hybrid"}
    assert http("POST", server.url + "/tools/search", query)[1]["result"]["results"] == []
    add_document(corpus, "walrus.md", "The walrus tusk inventory for the aquarium audit.")
    status, body = http("POST", server.url + "/tools/search", query)
    assert status == 200
    assert [r["source_id"] for r in body["result"]["results"]] == ["walrus.md"]
    assert [r["id"] for r in body["result"]["results"]] == library_ids(corpus, **query)


@pytest.mark.backends("postgres")
def test_serve_on_postgres_over_http(backend: str, location: str) -> None:
    db = ctx_models.connect(location)
    ctx_models.run_migrations(db)
    fill(HashingEmbedder(384))
    db.close()
    running = HTTPServer(location)
    try:
        status, body = http("POST", running.url + "/tools/search", {"query": "postgres replica lag", "mode": "hybrid"})
        assert status == 200
        assert [r["id"] for r in body["result"]["results"]] == library_ids(
            location, "postgres replica lag", mode="hybrid"
        )
        add_document(location, "walrus.md", "The walrus tusk inventory.")
        status, body = http("POST", running.url + "/tools/search", {"query": "walrus tusk"})
        assert [r["source_id"] for r in body["result"]["results"]] == ["walrus.md"]
    finally:
        code, _, log = running.stop()
    assert code == 0, log


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--timeout", "0"], "timeout must be a positive number of seconds, got 0.0"),
        (["--workers", "0"], "workers must be at least 1, got 0"),
        (["--http", "--port", "70000"], "--port must be from 0 to 65535, got 70000"),
    ],
)
def test_bad_options_are_one_line(run_cli: Any, corpus: Path, option: list[str], message: str) -> None:
    code, out, err = run_cli("serve", "--db", str(corpus), *option)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [f"error: {message}"]


@pytest.mark.parametrize(
    ("request_body", "call"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get"}}', "tools/call get"),
        (b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}', "tools/list"),
        (b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', None),  # nothing answered
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', None),
        (b"not json", None),
        (b'{"jsonrpc": "2.0", "id": 3, "method": 7}', None),
        # A name that would forge a second log line is kept on one.
        (b'{"id": 4, "method": "tools/call", "params": {"name": "x\\nINFO forged 200"}}', "tools/call x?INFO forged 200"),
    ],
)
def test_the_log_line_names_an_mcp_request_by_its_method(request_body: bytes, call: str | None) -> None:
    assert server_http._rpc_call(request_body) == call


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "result": {"content": []}}', "ok"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": {"isError": true, "content": []}}', "error"),
        (b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}}', "error -32601"),
        (b'{"jsonrpc": "2.0", "id": 1, "result": {"content": [' + b"1," * 9000, "ok"),  # past what is read
        (b"", "-"),
    ],
)
def test_the_log_line_says_how_an_mcp_request_went(answer: bytes, outcome: str) -> None:
    assert server_http._rpc_outcome(answer) == outcome
