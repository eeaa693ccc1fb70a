"""The HTTP side: MCP's Streamable HTTP at ``/mcp`` and ctx's tool routes, on one Starlette app.

ctx's routes, with ctx's shapes: ``GET /tools/list`` (``{"tools": [{name,
description, builtin, parameters}]}``), ``POST /tools/{name}`` with the tool's
parameters as a JSON object (``{"result": ...}``; ``GET`` for one without, as
ctx's ``GET /tools/sources``), ``GET /health``
(``{"status": "ok", "version": ...}``). Errors are ``{"error": {"code",
"message"}}`` with 400 (bad parameters), 401 (no or wrong token), 404 (unknown
tool or document), 408 (past the time limit), 413 (body too large) or 500.

:class:`Guard` wraps the whole app: the bearer token (compared in constant
time), the body size cap, and one log line per request on stderr. Starlette
and uvicorn come with the MCP SDK.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..errors import CtxModelsError
from . import tools
from .service import CALL_NOTE, ToolService, error_code, loggable

__all__ = ["build_app", "Guard", "MAX_BODY_BYTES", "LOCAL_HOSTS", "STATUS"]

log = logging.getLogger("ctx_models.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest request body taken, in bytes (a search is a few hundred).
MAX_BODY_BYTES = 64 * 1024
#: How much of an MCP reply is read for the log line's outcome (errors are short).
RPC_ANSWER_READ = 16 * 1024
#: Addresses that need no token: the default, and what it is called.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: HTTP status per error code, as ctx answers.
STATUS = {
    "bad_request": 400,
    "embeddings_disabled": 400,
    "unauthorized": 401,
    "not_found": 404,
    "timeout": 408,
    "too_large": 413,
    "internal": 500,
}


def error_response(code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=STATUS[code], headers=headers
    )


def build_app(server: MCPServer, service: ToolService, *, host: str, token: str | None) -> ASGIApp:
    """The app to serve: ``/mcp``, ctx's routes and ``/health``, behind :class:`Guard`."""
    listed: list[dict[str, Any]] = []

    @server.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    @server.custom_route("/tools/list", methods=["GET"])
    async def list_tools(request: Request) -> Response:
        if not listed:
            listed.extend(
                {
                    "name": tool.name,
                    "description": tool.description,
                    "builtin": True,
                    "parameters": tool.input_schema,
                }
                for tool in await server.list_tools()
            )
        return JSONResponse({"tools": listed})

    # GET too: ctx's REST reference documents GET /tools/sources (a tool without parameters).
    @server.custom_route("/tools/{name}", methods=["GET", "POST"])
    async def call_tool(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in tools.TOOLS:
            return error_response("not_found", f"no tool registered with name: {name[:60]}")
        body = await request.body()
        try:
            params = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return error_response("bad_request", f"the request body is not valid JSON ({exc})")
        try:
            result = await service.call(name, params)
        except CtxModelsError as exc:
            return error_response(error_code(exc), f"{name}: {exc}")
        except Exception:  # logged with its traceback by the service
            return error_response("internal", f"{name}: unexpected error; see the server's log")
        return JSONResponse({"result": result})

    security = None
    if host in LOCAL_HOSTS or host.startswith("127."):
        # DNS-rebinding protection, as the SDK sets up for 127.0.0.1, for whichever
        # loopback address is bound. Elsewhere the token guards the server.
        bound = f"[{host}]" if ":" in host else host
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{bound}:*", "127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=[f"http://{bound}:*", "http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=True,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=security,
        host=host,
    )
    return Guard(app, token=token, max_body=MAX_BODY_BYTES)


class Guard:
    """ASGI middleware: the bearer token, the body size cap, and the request's log line.

    The body of a POST is read here, up to the cap, and handed on whole, so a
    body too large is refused before any handler sees it.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        started = time.perf_counter()
        status = 0
        note: dict[str, str] = {}
        token = CALL_NOTE.set(note)  # ctx's routes say which tool ran, and how
        # An MCP request's line names its JSON-RPC method as stdio's does: most methods run
        # no tool, so the note alone would leave them unnamed. The outcome is the tool's
        # note, else read from the (JSON) reply.
        rpc_call: str | None = None
        answer = bytearray()

        async def logged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif rpc_call is not None and message["type"] == "http.response.body":
                if len(answer) <= RPC_ANSWER_READ:
                    answer.extend(message.get("body", b""))
            await send(message)

        try:
            refused = await self._refusal(scope)
            if refused is None and scope["method"] == "POST":
                body, refused = await self._body(scope, receive)
                if refused is None:
                    receive = _replay(body, receive)
                    if scope["path"].rstrip("/").endswith("/mcp"):
                        rpc_call = _rpc_call(body)
            if refused is not None:
                await refused(scope, receive, logged_send)
            else:
                await self.app(scope, receive, logged_send)
        finally:
            CALL_NOTE.reset(token)
            client = scope.get("client") or ("-", 0)
            elapsed = (time.perf_counter() - started) * 1000
            if rpc_call is not None:
                tool = f" {rpc_call} {note.get('outcome') or _rpc_outcome(bytes(answer))}"
            elif note:
                tool = f" {note['tool']} {note['outcome']}"
            else:
                tool = ""
            # The path only: no query string, no headers (the token is in one).
            log.info(
                '%s "%s %s" %s %.1f ms%s',
                client[0], loggable(scope["method"], 20), loggable(scope["path"], 200), status or "-",
                elapsed, tool,
            )

    async def _refusal(self, scope: Scope) -> Response | None:
        if self.token is None:
            return None
        headers = dict(scope.get("headers") or [])
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token):
            return None
        return error_response(
            "unauthorized",
            "this server needs its bearer token: send the header Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def _body(self, scope: Scope, receive: Receive) -> tuple[bytes, Response | None]:
        too_large = error_response(
            "too_large", f"the request body is larger than this server takes ({self.max_body:,} bytes)"
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            return b"", too_large
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"", Response(status_code=400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", too_large
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts), None


def _rpc_call(body: bytes) -> str | None:
    """``tools/call search``, ``initialize``...: what a JSON-RPC request asks, for the log line.

    None for a notification (nothing is answered) or a body that is not one request.
    """
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict) or "id" not in request or not isinstance(request.get("method"), str):
        return None
    params = request.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    call = loggable(request["method"], 60)
    return f"{call} {loggable(name, 60)}" if isinstance(name, str) else call


def _rpc_outcome(answer: bytes) -> str:
    """``ok``, ``error`` (a tool that failed) or ``error <code>`` (the protocol's), from the reply."""
    try:
        reply = json.loads(answer)
    except ValueError:
        return "ok" if len(answer) > RPC_ANSWER_READ else "-"  # a long answer is a result
    if not isinstance(reply, dict):
        return "-"
    error = reply.get("error")
    if isinstance(error, dict):
        return f"error {error.get('code')}"
    result = reply.get("result")
    return "error" if isinstance(result, dict) and result.get("isError") is True else "ok"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` whole, then what the client sends next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
