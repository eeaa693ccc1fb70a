"""``bench.py serve``: ``ctx-models serve --http`` on the ``search`` corpus (100,000 chunks
by default): p50/p95 of a keyword and a hybrid ``search`` through ctx's route
``POST /tools/search`` and through MCP (``tools/call`` with the SDK's client),
against the same call in-process; and the first call's latency after start.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import ctx_models
from ctx_models.demo import synthetic

from .core import (
    percentiles,
    timed,
    write_results,
)
from .corpora import CORPORA, build_corpus


def http_search(conn, text: str, mode: str) -> dict:
    body = json.dumps({"query": text, "mode": mode, "limit": 12})
    conn.request("POST", "/tools/search", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"search failed: {answer}")
    return answer


def start_server(path: Path) -> tuple[subprocess.Popen, str, float]:
    """``serve --http`` on a free port; the process, its URL and when it was started."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "ctx_models", "serve", "--db", str(path), "--http", "--port", "0"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert process.stderr is not None  # stderr=PIPE
    for line in process.stderr:
        found = re.search(r"at (http://\S+)/mcp", line)
        if found:
            return process, found.group(1), started
    raise RuntimeError("the server did not start")


def bench_serve(args: argparse.Namespace) -> None:
    import http.client
    from urllib.parse import urlsplit

    import anyio
    from mcp import Client

    from ctx_models.server import tools

    path = build_corpus(Path(args.workdir), args.chunks)
    queries = synthetic.sample_queries(50, seed=3)
    modes = ("keyword", "hybrid")
    result: dict = {"chunks": args.chunks, "queries": len(queries), "rounds": args.rounds}

    # The first call after start: the server warms its index in the background as it starts.
    process, url, started = start_server(path)
    listening = time.perf_counter()
    conn = http.client.HTTPConnection(urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port, timeout=300)
    http_search(conn, queries[0], "hybrid")
    answered = time.perf_counter()
    result["first_call"] = {
        "from_listening_ms": (answered - listening) * 1000,
        "from_process_start_ms": (answered - started) * 1000,
        "listening_after_ms": (listening - started) * 1000,
    }

    over_http: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            for text in queries:
                over_http[mode] += timed(lambda: http_search(conn, text, mode), 1)

    def round_trip(method: str, route: str, body: str | None = None) -> None:
        conn.request(method, route, body, {"Content-Type": "application/json"})
        conn.getresponse().read()

    # What HTTP itself costs: a route that does no work, and a get of an id that is not there.
    result["transport"] = {
        "health_ms": percentiles(timed(lambda: round_trip("GET", "/health"), 100)),
        "get_missing_ms": percentiles(
            timed(lambda: round_trip("POST", "/tools/get", '{"id": "missing"}'), 100)
        ),
    }
    conn.close()

    over_mcp: dict[str, list[float]] = {mode: [] for mode in modes}

    async def mcp_calls() -> None:
        async with Client(url + "/mcp") as client:
            await client.call_tool("search", {"query": queries[0]})
            for _ in range(args.rounds):
                for mode in modes:
                    for text in queries:
                        begun = time.perf_counter()
                        await client.call_tool("search", {"query": text, "mode": mode})
                        over_mcp[mode].append((time.perf_counter() - begun) * 1000)

    anyio.run(mcp_calls)
    process.terminate()
    process.wait(60)

    # The same call in-process: the tool function on a read-only connection, warm.
    db = ctx_models.connect(path, readonly=True)
    in_process: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode in modes:
        tools.search(queries[0], mode=mode)
    for _ in range(args.rounds):
        for mode in modes:
            for text in queries:
                in_process[mode] += timed(lambda: tools.search(text, mode=mode), 1)
    db.close()

    for label, samples in (("in_process", in_process), ("http_route", over_http), ("mcp_http", over_mcp)):
        result[label] = {mode: percentiles(samples[mode]) for mode in modes}
    print()
    print(f"search at {args.chunks:,} chunks, limit 12: {len(queries)} questions x {args.rounds} rounds, ms")
    print(f"{'call':<34}{'keyword p50':>12}{'p95':>8}{'hybrid p50':>12}{'p95':>8}")
    for label, name in (
        ("in_process", "in-process (the tool function)"),
        ("http_route", "HTTP POST /tools/search"),
        ("mcp_http", "MCP tools/call over HTTP"),
    ):
        k, h = result[label]["keyword"], result[label]["hybrid"]
        print(f"{name:<34}{k['p50']:>12.1f}{k['p95']:>8.1f}{h['p50']:>12.1f}{h['p95']:>8.1f}")
    transport = result["transport"]
    print(
        f"HTTP itself: GET /health p50 {transport['health_ms']['p50']:.2f} ms, POST /tools/get "
        f"of a missing id p50 {transport['get_missing_ms']['p50']:.2f} ms"
    )
    first = result["first_call"]
    print(
        f"first call (hybrid) after start: {first['from_listening_ms']:.0f} ms from the server "
        f"listening ({first['listening_after_ms']:.0f} ms after the process started; "
        f"{first['from_process_start_ms']:.0f} ms start to first answer)"
    )
    print(f"results: {write_results('serve', result)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chunks", type=int, choices=sorted(CORPORA), default=100_000,
        help="corpus size (default 100,000)",
    )
    p.add_argument("--rounds", type=int, default=2, help="passes over the 50 queries (default 2)")
