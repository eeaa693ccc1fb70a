"""``ctx-models serve``: the store for AI agents and other programs, over MCP and ctx's HTTP routes.

``tools`` holds the three tools of ``ctx serve mcp`` (``search``, ``get``,
``sources``) as plain functions; ``service`` runs them on long-lived worker
threads within a time limit; ``mcp`` makes them an MCP server on the official
SDK; ``http`` adds ctx's HTTP routes and the token and size checks; ``run``
opens the store read-only and serves stdio or HTTP. Everything but ``tools``
needs the ``serve`` extra (``pip install 'ctx-models[serve]'``).
"""

from __future__ import annotations

__all__ = ["serve"]


def serve(*args: object, **kwargs: object) -> None:
    """Serve a store; see :func:`ctx_models.server.run.serve`."""
    from .run import serve as run

    run(*args, **kwargs)  # type: ignore[arg-type]
