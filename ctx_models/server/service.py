"""Running the tools off the event loop: long-lived worker threads, a time limit, one log line.

Each worker thread keeps its own database connection (peewee's connections are
per thread), and on SQLite its own in-memory vector index and word counts,
which follow other processes' commits. The threads live as long as the server,
so the index is read once and stays warm; a fresh thread per call would read
every vector again. A call that runs past its time limit gets
:class:`~ctx_models.errors.TimeLimitError` at once; on SQLite the statement it
is running is interrupted, and otherwise its thread finishes the search in the
background with its answer dropped. Calls queued behind it wait their turn,
each within its own limit. The threads are daemons: a stopping server never waits for them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .. import search as search_api
from ..errors import CtxModelsError, NotFoundError, TimeLimitError, ValidationError
from . import tools

__all__ = ["Workers", "ToolService", "DEFAULT_TIMEOUT", "CALL_NOTE", "loggable"]

log = logging.getLogger("ctx_models.server")

#: Seconds one tool call may run before the caller gets a time-out error.
DEFAULT_TIMEOUT = 30.0
#: Where a transport's request logger learns which tool ran and how it went: it sets a
#: dict here, :meth:`ToolService.call` fills in ``tool`` and ``outcome``.
CALL_NOTE: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "ctx_models_call_note", default=None
)


def loggable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with what is not printable as ``?``.

    Paths, methods and tool names come from the client: a newline in one would
    forge a second log line.
    """
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


class Workers:
    """A fixed set of daemon threads running submitted calls in order of arrival."""

    def __init__(self, count: int = 1, name: str = "ctx-models-worker") -> None:
        if count < 1:
            raise ValidationError(f"workers must be at least 1, got {count}")
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None]
        self._queue = queue.SimpleQueue()
        self.count = count
        for number in range(count):
            threading.Thread(target=self._loop, name=f"{name}-{number}", daemon=True).start()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            future, function, args = item
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up before it started
            try:
                result = function(*args)
            except BaseException as exc:  # handed to the caller, who reports it
                future.set_exception(exc)
            else:
                future.set_result(result)

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``function(*args)``; its future."""
        future: Future[Any] = Future()
        self._queue.put((future, function, args))
        return future

    async def run(
        self,
        timeout: float,
        function: Callable[..., Any],
        *args: Any,
        on_timeout: Callable[[], None] | None = None,
    ) -> Any:
        """``function(*args)`` on a worker; TimeLimitError after ``timeout`` seconds.

        ``on_timeout`` runs then, on the caller's thread, to cut a running call short.
        """
        future = self.submit(function, *args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            # Never starts if still queued; a running call finishes unseen (or is cut short).
            if not future.cancel() and on_timeout is not None:
                on_timeout()
            raise TimeLimitError(
                f"the call ran past the server's time limit of {timeout:g} s and was dropped; "
                "narrow the question or lower limit, or start the server with a larger --timeout"
            ) from None

    def close(self) -> None:
        """Let each thread end after its current call."""
        for _ in range(self.count):
            self._queue.put(None)


class ToolService:
    """The tools behind both transports: each call on a worker, within the time limit, logged."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, workers: int = 1) -> None:
        if not timeout > 0:
            raise ValidationError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = timeout
        self.workers = Workers(workers)

    def warm(self) -> None:
        """Load the vector index, word counts and embedder on each worker, in the background."""
        for _ in range(self.workers.count):
            self.workers.submit(_warm)

    async def call(self, name: str, params: Any) -> dict[str, Any]:
        """Run tool ``name``; its result, or our exception saying what was wrong."""
        started = time.perf_counter()
        outcome = "ok"
        running = _Running()
        try:
            result: dict[str, Any] = await self.workers.run(
                self.timeout, running.call, name, params, on_timeout=running.interrupt
            )
            return result
        except CtxModelsError as exc:
            outcome = error_code(exc)
            raise
        except Exception:
            outcome = "internal"
            log.exception("tool %s failed unexpectedly", name)
            raise
        finally:
            note = CALL_NOTE.get()
            if note is not None:  # the request's one log line says it
                note.update(tool=name[:60], outcome=outcome)
            elapsed = (time.perf_counter() - started) * 1000
            log.debug("tool %s %s %.1f ms", name[:60], outcome, elapsed)

    def close(self) -> None:
        self.workers.close()


class _Running:
    """One tool call on a worker, which a time-out can interrupt while it runs SQL (SQLite).

    ``sqlite3.Connection.interrupt`` is SQLite's own way to stop a statement from
    another thread: the statement raises, the search ends with an error nobody
    waits for, and the worker is free for the next call. It acts on the
    statement running at that moment only (SQLite clears the flag when the next
    statement starts with none running), and the lock keeps it from reaching a
    later call. Time spent outside SQL (the vector arithmetic, a few ms) runs out
    on its own. PostgreSQL's cancel request travels on its own connection and
    could land on the next call's query, so there the call runs out instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None

    def call(self, name: str, params: Any) -> dict[str, Any]:
        from peewee import SqliteDatabase

        from ..models import bound_database

        db = bound_database()
        with self._lock:
            self._connection = db.connection() if isinstance(db, SqliteDatabase) else None
        try:
            return tools.call(name, params)
        finally:
            with self._lock:
                self._connection = None

    def interrupt(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.interrupt()


def error_code(exc: BaseException) -> str:
    """ctx's error code for an exception: bad_request, not_found, timeout, embeddings_disabled, internal."""
    from ..errors import EmbedderUnavailableError

    if isinstance(exc, NotFoundError):
        return "not_found"
    if isinstance(exc, TimeLimitError):
        return "timeout"
    if isinstance(exc, EmbedderUnavailableError):
        return "embeddings_disabled"
    if isinstance(exc, ValidationError):
        return "bad_request"
    return "internal"


def _warm() -> None:
    # A keyword search reads the word counts; a semantic one loads the embedder and builds
    # the vector index. Either may find nothing to do (no vectors, no model): that is fine.
    for mode in ("keyword", "semantic"):
        try:
            search_api.hybrid_search("the", mode=mode, limit=1)
        except CtxModelsError as exc:
            log.debug("warm-up %s search: %s", mode, exc)
        except Exception:
            log.warning("warm-up %s search failed", mode, exc_info=True)
