"""Seeding a store with the demo corpus (and, for load tests, a synthetic one).

The demo documents are chunked by the contract's rule and embedded with the
default embedder (all-MiniLM-L6-v2 when its files are on this machine, else
WordLlama when ``ctx-models[semantic]`` is installed, else the hashing
embedder; it never downloads), and each source gets a checkpoint. Seeding again changes
nothing: every document is found unchanged.

>>> import ctx_models
>>> from ctx_models.demo.seed import seed
>>> from ctx_models.embedders import HashingEmbedder
>>> db = ctx_models.connect(":memory:"); _ = ctx_models.run_migrations(db)
>>> seed(embedder=HashingEmbedder(64)).demo.created
20
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .. import store
from ..embedders import Embedder, default_embedder
from ..errors import ValidationError
from ..store import IngestSummary
from .corpus import DOCUMENTS
from .synthetic import synthetic_documents

__all__ = ["SeedReport", "seed", "demo_items"]


@dataclass
class SeedReport:
    """What :func:`seed` did: the demo corpus, and the synthetic one when asked for."""

    model: str
    demo: IngestSummary
    synthetic: IngestSummary | None = None


def demo_items() -> Iterator[dict]:
    """The demo documents as ingest items (mappings for ``store.ingest_many``)."""
    for doc in DOCUMENTS:
        updated = int(dt.datetime.fromisoformat(doc.updated_at).timestamp())
        yield {
            "source": doc.source,
            "source_id": doc.source_id,
            "body": doc.body,
            "title": doc.title,
            "author": doc.author,
            "source_url": doc.source_url,
            "created_at": updated,
            "updated_at": updated,
            "metadata": doc.metadata,
        }


def _noting_newest(items: Iterable[dict], newest: dict[str, int]) -> Iterator[dict]:
    """Pass items through, keeping the newest ``updated_at`` per source in ``newest``."""
    for item in items:
        newest[item["source"]] = max(newest.get(item["source"], 0), item["updated_at"])
        yield item


def _record_checkpoints(newest: dict[str, int]) -> None:
    """Set each source's checkpoint, leaving ones already at that cursor untouched."""
    for source, cursor in newest.items():
        if store.get_checkpoint(source) != cursor:
            store.set_checkpoint(source, cursor)


def seed(
    *,
    docs: int = 0,
    embedder: Embedder | None = None,
    random_seed: int = 0,
    batch_size: int = 500,
    progress: bool = False,
    on_commit: Callable[[list[store.IngestResult]], None] | None = None,
) -> SeedReport:
    """Load the demo corpus, and ``docs`` synthetic documents of ten chunks each, into the bound database.

    Each batch of documents is one transaction; an interrupted seed keeps the
    batches it committed, and seeding again finishes the rest.
    """
    if isinstance(docs, bool) or not isinstance(docs, int) or docs < 0:
        raise ValidationError(f"docs must be 0 or a positive integer, got {docs!r}")
    embedder = embedder if embedder is not None else default_embedder()
    newest: dict[str, int] = {}
    demo = store.ingest_many(
        _noting_newest(demo_items(), newest), embedder=embedder, on_commit=on_commit
    )
    _record_checkpoints(newest)
    report = SeedReport(embedder.model, demo)
    if docs:
        newest = {}
        report.synthetic = store.ingest_many(
            _noting_newest(synthetic_documents(docs, seed=random_seed), newest),
            embedder=embedder,
            batch_size=batch_size,
            progress=progress,
            on_commit=on_commit,
        )
        _record_checkpoints(newest)
    return report
