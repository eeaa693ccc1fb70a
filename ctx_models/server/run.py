"""Starting and stopping the server: open the store read-only, then serve stdio or HTTP.

A missing, damaged or uninitialised database is one error before anything is
served. SIGINT and SIGTERM stop the server cleanly: over HTTP uvicorn finishes
the requests in flight (for a few seconds at most) and closes; on stdio the
protocol loop ends.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..backends import backend_for, connect
from ..config import display
from ..errors import ConfigError, DatabaseError
from ..models import CONTRACT_TABLES
from .http import LOCAL_HOSTS, build_app
from .mcp import build_mcp_server
from .service import DEFAULT_TIMEOUT, ToolService

__all__ = ["serve", "open_store", "TOKEN_ENV_VAR", "DEFAULT_PORT"]

log = logging.getLogger("ctx_models.server")

#: Environment variable holding the bearer token (safer than --token, which `ps` shows).
TOKEN_ENV_VAR = "CTX_MODELS_SERVE_TOKEN"
#: ctx's port.
DEFAULT_PORT = 7331


def open_store(where: Path | str) -> Any:
    """Open the database read-only, check it holds the ctx schema and is sound; the peewee database.

    The structure check (SQLite's ``quick_check``) reads the whole file once: a
    damaged page would otherwise surface later as odd errors from the tools an
    agent calls, not as one error at start.
    """
    db = connect(where, readonly=True, create=False)
    backend = backend_for(db)
    shown = display(where)
    try:
        with backend.errors("read"):
            missing = [t for t in CONTRACT_TABLES if t not in backend.table_names()]
            if missing:
                raise DatabaseError(
                    f"{shown} lacks the ctx schema (missing {', '.join(missing)}); "
                    f"run `ctx-models init --db {shown}`"
                )
            db.execute_sql("SELECT count(*) FROM documents").fetchone()
            report = backend.integrity().quick_check()
        if report != ["ok"]:
            raise DatabaseError(
                f"{shown} is damaged ({report[0][:200]}); run `ctx-models check --db {shown}` "
                "for SQLite's whole report, and restore it from a backup"
            )
    except BaseException:
        db.close()
        raise
    return db


def serve(
    where: Path | str,
    *,
    http: bool = False,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int = 1,
) -> None:
    """Serve the store at ``where`` until stdin closes (stdio) or a signal comes (both)."""
    if token is not None and not token.strip():
        raise ConfigError("the bearer token is empty; give a long random one, or none")
    if http and token is None and host not in LOCAL_HOSTS:
        raise ConfigError(
            f"serving on {host} needs a bearer token: set {TOKEN_ENV_VAR} (or pass --token); "
            "clients then send Authorization: Bearer <token>"
        )
    service = ToolService(timeout=timeout, workers=workers)  # checks both
    listener = None
    try:
        listener = _listen(host, port) if http else None  # a taken port fails before the slow part
        db = open_store(where)
    except BaseException:
        service.close()
        if listener is not None:
            listener.close()
        raise
    server = build_mcp_server(service, stdio=not http)
    try:
        if not http:
            log.info("serving %s over stdio (MCP)", display(where))
            import anyio

            anyio.run(server.run_stdio_async)
            return
        import uvicorn

        assert listener is not None
        service.warm()
        app = build_app(server, service, host=host, token=token)
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        log.info(
            "serving %s at http://%s:%d/mcp (MCP) and /tools/list, /tools/{name}, /health%s",
            display(where), shown, bound_port, " with a bearer token" if token else "",
        )
        config = uvicorn.Config(
            app, log_config=None, access_log=False, timeout_graceful_shutdown=3, lifespan="on"
        )
        _QuietServer(config).run(sockets=[listener])
    except KeyboardInterrupt:  # SIGINT, or SIGTERM as the CLI raises it, outside uvicorn's handlers
        pass
    finally:
        service.close()
        db.close()
        log.info("stopped")


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # The protocol number matters: asyncio sets TCP_NODELAY only on sockets whose proto
        # is IPPROTO_TCP, and without it a response's headers and body, written apart,
        # wait out the client's delayed ACK (40 ms a call, measured).
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(0 picks a free one) or --host"
        ) from None
    return listener


class _QuietServer:
    """uvicorn's server, stopping on SIGINT or SIGTERM without raising the signal again after.

    uvicorn re-raises a signal it caught once it has shut down, which would end
    the program as killed; a server told to stop has stopped cleanly.
    """

    def __init__(self, config: Any) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                stops = (signal.SIGINT, signal.SIGTERM)
                previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
                try:
                    yield
                finally:
                    for sig, handler in previous.items():
                        signal.signal(sig, handler)

        self.server = Server(config)

    def run(self, sockets: list[socket.socket]) -> None:
        self.server.run(sockets=sockets)
