"""The tools as an MCP server, on the official SDK's ``MCPServer`` (schemas from type hints).

``search``, ``get`` and ``sources`` take ctx's parameters; our own search
options (``fusion``, ``alpha``, ``explain``) are optional extras an agent set
up for ctx never sends. Each document is also a resource,
``ctx://documents/{id}``, so an agent can attach one. A tool that fails
returns an error result with the tool's own message.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..errors import CtxModelsError
from . import tools
from .service import CALL_NOTE, ToolService, loggable

__all__ = ["build_mcp_server", "DOCUMENT_URI"]

DOCUMENT_URI = "ctx://documents/{id}"

INSTRUCTIONS = (
    "A read-only Context Harness (ctx) store. Call `search` with the question to find "
    "documents, then `get` with a result's id for the whole document; `sources` lists what "
    "the store holds."
)


class SearchFilters(BaseModel):
    """ctx's search filters."""

    model_config = ConfigDict(extra="forbid")

    source: Annotated[
        str | None, Field(description="only documents of this source (see the sources tool)")
    ] = None
    since: Annotated[
        str | int | None,
        Field(
            description="only documents updated since this date: YYYY-MM-DD, an ISO time with "
            "a zone, or epoch seconds"
        ),
    ] = None


log = logging.getLogger("ctx_models.server")


async def log_request(ctx: Any, call_next: Any) -> Any:
    """SDK middleware: one log line per MCP request (stdio has no HTTP request line)."""
    if ctx.request_id is None:  # a notification
        return await call_next(ctx)
    note: dict[str, str] = {}
    token = CALL_NOTE.set(note)
    started = time.perf_counter()
    outcome = "ok"
    try:
        result = await call_next(ctx)
        if getattr(result, "is_error", False) or (isinstance(result, dict) and result.get("isError")):
            outcome = note.get("outcome", "error")
        return result
    except Exception as exc:
        outcome = f"error {getattr(getattr(exc, 'error', None), 'code', type(exc).__name__)}"
        raise
    finally:
        CALL_NOTE.reset(token)
        name = ctx.params.get("name") if isinstance(ctx.params, dict) else None
        target = f" {loggable(name, 60)}" if isinstance(name, str) else ""
        elapsed = (time.perf_counter() - started) * 1000
        log.info("%s%s %s %.1f ms", loggable(str(ctx.method), 60), target, outcome, elapsed)


def build_mcp_server(service: ToolService, *, stdio: bool = False) -> MCPServer:
    """An ``MCPServer`` whose tools and resource run through ``service``.

    With ``stdio``: a log line per MCP request (over HTTP the request line says
    it), and the warm-up starts once the transport has taken stdout over, so
    nothing a model's loader prints can reach the protocol's stream.
    """

    @asynccontextmanager
    async def warm_when_serving(_: Any) -> AsyncIterator[None]:
        service.warm()
        yield

    server: MCPServer = MCPServer(
        "ctx-models",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=warm_when_serving if stdio else None,
    )
    if stdio:
        server.middleware.append(log_request)
    read_only = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    async def run(name: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await service.call(name, params)
        except CtxModelsError as exc:
            raise ToolError(str(exc)) from None

    @server.tool(name="search", description=tools.DESCRIPTIONS["search"], annotations=read_only)
    async def search(
        query: Annotated[str, Field(description="the question or words to search for")],
        mode: Annotated[
            Literal["keyword", "semantic", "hybrid"],
            Field(description="keyword (BM25), semantic (vectors) or hybrid (both, fused)"),
        ] = "keyword",
        limit: Annotated[
            int, Field(description=f"how many documents to return, 1 to {tools.MAX_LIMIT}")
        ] = tools.DEFAULT_LIMIT,
        filters: Annotated[
            SearchFilters | None, Field(description="restrict to a source, or to recent documents")
        ] = None,
        fusion: Annotated[
            Literal["rrf", "minmax"] | None,
            Field(description="hybrid only: reciprocal-rank fusion (default) or min-max scores"),
        ] = None,
        alpha: Annotated[
            float | None,
            Field(description="hybrid only: the semantic signal's weight, 0 to 1"),
        ] = None,
        explain: Annotated[
            bool, Field(description="add each score's parts and what each signal did")
        ] = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"query": query, "mode": mode, "limit": limit, "explain": explain}
        if filters is not None:
            params["filters"] = filters.model_dump(exclude_none=True)
        if fusion is not None:
            params["fusion"] = fusion
        if alpha is not None:
            params["alpha"] = alpha
        return await run("search", params)

    @server.tool(name="get", description=tools.DESCRIPTIONS["get"], annotations=read_only)
    async def get(
        id: Annotated[str, Field(description="the document's id (a UUID from search results)")],  # noqa: A002
    ) -> dict[str, Any]:
        return await run("get", {"id": id})

    @server.tool(name="sources", description=tools.DESCRIPTIONS["sources"], annotations=read_only)
    async def sources() -> dict[str, Any]:
        return await run("sources", {})

    @server.resource(
        DOCUMENT_URI,
        name="document",
        description="A document of the store as JSON, as the get tool returns it.",
        mime_type="application/json",
    )
    async def document(id: str) -> str:  # noqa: A002
        try:
            found = await service.call("get", {"id": id})
        except CtxModelsError as exc:
            raise ResourceError(str(exc)) from None
        return json.dumps(found, ensure_ascii=False)

    return server
