#!/usr/bin/env python3
"""Fill a ctx database with demo data, creating it if needed.

Loads the hand-written documents of ``demo_corpus.py`` (runbooks, design
notes, tickets, meeting notes across four sources), chunks them by the
contract's rule, embeds every chunk with the hashing embedder (feature hashing
of words into 384 dims; deterministic, not a semantic model) and records a
checkpoint per source. Running it again changes nothing. ``--docs N`` adds a
synthetic corpus of N documents of 10 chunks each for benchmarks.

    python scripts/seed.py                      # .ctx/data/ctx.sqlite
    python scripts/seed.py --db /tmp/demo.sqlite --docs 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Iterable, Iterator

import demo_corpus
import synthetic

import ctx_models
from ctx_models import store
from ctx_models.config import DEFAULT_DB_PATH, ENV_VAR, resolve_db_path
from ctx_models.embedders import HashingEmbedder


def demo_items() -> Iterator[dict]:
    for doc in demo_corpus.DOCUMENTS:
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


def noting_newest(items: Iterable[dict], newest: dict[str, int]) -> Iterator[dict]:
    """Pass items through, keeping the newest ``updated_at`` per source in ``newest``."""
    for item in items:
        newest[item["source"]] = max(newest.get(item["source"], 0), item["updated_at"])
        yield item


def record_checkpoints(newest: dict[str, int]) -> None:
    """Set each source's checkpoint, leaving ones already at that cursor untouched."""
    for source, cursor in newest.items():
        if store.get_checkpoint(source) != cursor:
            store.set_checkpoint(source, cursor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", metavar="PATH", help=f"database file (default: ${ENV_VAR}, else {DEFAULT_DB_PATH})"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="a ctx TOML config; its [db] path names the database"
    )
    parser.add_argument(
        "--docs",
        type=int,
        default=0,
        metavar="N",
        help="also add N synthetic documents (10 chunks each)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed of the synthetic corpus (default 0)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="documents per transaction (default 500)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.docs < 0:
        parser.error("--docs must be 0 or more")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    try:
        path = resolve_db_path(args.db, args.config)
        db = ctx_models.connect(path)
        migration = ctx_models.run_migrations(db)
        if migration.created:
            print(f"created {path} (schema version {migration.version})")
        embedder = HashingEmbedder(384)

        newest: dict[str, int] = {}
        summary = store.ingest_many(noting_newest(demo_items(), newest), embedder=embedder)
        record_checkpoints(newest)
        print(
            f"demo corpus: {summary.documents} documents ({summary.created} new, {summary.updated} updated, "
            f"{summary.unchanged} unchanged), {summary.chunks} chunks written, {summary.embedded} embedded"
        )

        if args.docs:
            started = time.perf_counter()
            newest = {}
            summary = store.ingest_many(
                noting_newest(synthetic.synthetic_documents(args.docs, seed=args.seed), newest),
                embedder=embedder,
                batch_size=args.batch_size,
                progress=not args.quiet,
            )
            record_checkpoints(newest)
            elapsed = time.perf_counter() - started
            print(
                f"synthetic corpus: {summary.documents} documents ({summary.created} new, {summary.unchanged} "
                f"unchanged), {summary.chunks} chunks written in {elapsed:.1f} s"
            )
        totals = store.stats()
        print(
            f"{path}: {totals.documents} documents, {totals.chunks} chunks, {totals.embedded} embedded"
        )
    except ctx_models.CtxModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
