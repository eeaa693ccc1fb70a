"""The ``ctx-models`` command line (also ``python -m ctx_models``).

Every command takes ``--db PATH`` or ``--config FILE`` (a ``ctx`` TOML file with
``[db] path``); without them ``$CTX_MODELS_DB``, then ``.ctx/data/ctx.sqlite``.
Errors print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__, integrity, search, store
from .config import DEFAULT_DB_PATH, ENV_VAR, resolve_db_path
from .embedders import HashingEmbedder
from .errors import CtxModelsError
from .schema import CONTRACT_TABLES, run_migrations, schema_version
from .sqlite import connect

__all__ = ["main", "build_parser"]

log = logging.getLogger("ctx_models.cli")

EXIT_OK, EXIT_ERROR, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 1, 2


class UsageError(CtxModelsError):
    """A command-line argument that argparse could not catch by itself."""


# --------------------------------------------------------------------------- helpers


def _database(args: argparse.Namespace, *, create: bool = False) -> Any:
    path = resolve_db_path(args.db, args.config)
    db = connect(path, create=create)
    if not create:
        present = {
            row[0] for row in db.execute_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        missing = [t for t in CONTRACT_TABLES if t not in present]
        if missing and args.command != "check":
            raise CtxModelsError(
                f"{path} lacks the ctx schema (missing {', '.join(missing)}); run `ctx-models init --db {path}`"
            )
    return db


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _highlight(snippet: str, colour: bool) -> str:
    """Matches bold on a terminal, plain text when piped."""
    text = " ".join(snippet.split())
    if colour:
        return text.replace(">>>", "\x1b[1;33m").replace("<<<", "\x1b[0m")
    return text.replace(">>>", "").replace("<<<", "")


# --------------------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    path = resolve_db_path(args.db, args.config)
    existed = path.exists() and path.stat().st_size > 0
    db = connect(path)
    result = run_migrations(db)
    stored = schema_version(db)
    if not existed:
        print(f"created {path} (schema version {result.version})")
    elif result.changed:
        print(
            f"upgraded {path}: created {', '.join(result.created)} (schema version {result.version})"
        )
    else:
        note = "" if stored else ", unstamped database from the ctx tool left as is"
        print(f"already up to date: {path} (schema version {result.version}{note})")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    _database(args)
    report = store.stats()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return EXIT_OK
    path = resolve_db_path(args.db, args.config)
    print(f"database   {path} ({_human_size(report.size_bytes)})")
    print(f"documents  {report.documents}")
    print(f"chunks     {report.chunks}")
    print(f"embedded   {report.embedded}  (stale: {report.stale})")
    for model, count in report.models.items():
        print(f"model      {model}: {count}")
    if report.sources:
        rows = [("source", "documents", "chunks", "embedded", "checkpoint")] + [
            (s.source, str(s.documents), str(s.chunks), str(s.embedded), s.checkpoint_at or "-")
            for s in report.sources
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        print()
        for row in rows:
            print(
                "  ".join(
                    c.ljust(w) if i in (0, 4) else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths))
                )
            )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    _database(args)
    if args.out in (None, "-"):
        count = store.export(sys.stdout, source=args.source)
    else:
        out = Path(args.out)
        try:
            with out.open("w", encoding="utf-8") as fh:
                count = store.export(fh, source=args.source)
        except OSError as exc:
            raise CtxModelsError(f"cannot write {out}: {exc.strerror}") from None
        print(f"exported {count} documents to {out}", file=sys.stderr)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from .models import Document

    _database(args)
    if args.source is not None:
        count = Document.select().where(Document.source == args.source).count()
        what = f"{count} document(s) of source {args.source!r}"
    else:
        count = Document.select().where(Document.id == args.id).count()
        what = f"document {args.id}"
    if not count:
        print(
            f"nothing to delete: {what} not found"
            if args.id
            else f"nothing to delete: no documents of source {args.source!r}"
        )
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {what} without --yes (stdin is not a terminal)")
        answer = input(f"Delete {what} with their chunks, FTS rows and vectors? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_OK
    if args.source is not None:
        deleted = store.delete_source(args.source)
        print(f"deleted {deleted} document(s) of source {args.source!r}")
    else:
        store.delete_document(args.id)
        print(f"deleted document {args.id}")
    return EXIT_OK


def cmd_embed(args: argparse.Namespace) -> int:
    _database(args)
    embedder = HashingEmbedder(args.dims)
    count = store.embed_pending(embedder, batch_size=args.batch_size, progress=not args.quiet)
    print(f"embedded {count} chunk(s) with {embedder.model}")
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    _database(args)
    embedder = HashingEmbedder(args.dims)
    vector = embedder.embed([args.query])[0] if args.mode != "keyword" else None
    results = search.hybrid_search(
        args.query,
        vector,
        mode=args.mode,
        alpha=args.alpha,
        limit=args.limit,
        source=args.source,
        since=args.since,
        explain=args.explain,
        model=embedder.model,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
        return EXIT_OK
    if not results:
        print("no results")
        return EXIT_OK
    colour = _colour(sys.stdout)
    for rank, hit in enumerate(results, 1):
        print(f"{rank:>2}. [{hit.score:.3f}] {hit.title or '(untitled)'}")
        print(f"    {hit.source} · {hit.source_id} · updated {hit.updated_at}")
        if hit.source_url:
            print(f"    {hit.source_url}")
        print(f"    {_highlight(hit.snippet, colour)}")
        if hit.explain:
            e = hit.explain
            print(
                f"    explain: keyword {e['keyword']:.3f} · semantic {e['semantic']:.3f} · "
                f"alpha {e['alpha']:.2f} · candidates {e['keyword_candidates']} keyword, "
                f"{e['vector_candidates']} vector"
            )
        print()
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    try:
        db = _database(args)
        report = integrity.check(db, repair=args.repair)
    except CtxModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return EXIT_OK if report.clean else EXIT_PROBLEMS
    print(f"database      {report.path}")
    print(
        f"quick_check   {'ok' if report.quick_check == ['ok'] else '; '.join(report.quick_check[:3])}"
    )
    for code, count in report.repaired.items():
        print(f"repaired      {code}: {count} row(s)")
    if report.clean:
        print("result        clean")
        return EXIT_OK
    for finding in report.findings:
        fix = "repairable" if finding.repairable else "needs a person"
        print(f"problem       {finding.description}: {finding.count} ({fix})")
        print(f"              e.g. {', '.join(finding.examples)}")
        if finding.advice:
            print(f"              {finding.advice}")
    if not args.repair and any(f.repairable for f in report.findings):
        print("hint          run again with --repair to fix what is repairable")
    return EXIT_PROBLEMS


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, like argparse but without usage spam
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    where = common.add_argument_group("database location")
    where.add_argument(
        "--db", metavar="PATH", help=f"database file (default: ${ENV_VAR}, else {DEFAULT_DB_PATH})"
    )
    where.add_argument(
        "--config", metavar="FILE", help="a ctx TOML config; its [db] path names the database"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )

    parser = _Parser(
        prog="ctx-models",
        description="Create, inspect, search and check a Context Harness (ctx) SQLite store.",
        epilog="Run `ctx-models COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = commands.add_parser(
        "init",
        parents=[common],
        help="create or upgrade the database (safe to repeat)",
        description="Create the database and its schema, or upgrade it; running it again changes nothing.",
    )
    p.set_defaults(handler=cmd_init)

    p = commands.add_parser(
        "stats", parents=[common], help="counts per source, embeddings, size on disk"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_stats)

    p = commands.add_parser(
        "export", parents=[common], help="documents with their chunks as JSON Lines"
    )
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--source", help="only this source")
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser(
        "delete", parents=[common], help="delete a source or a document, with everything of it"
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--source", help="delete every document of this source (and its checkpoint)"
    )
    target.add_argument("--id", help="delete the document with this id")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_delete)

    p = commands.add_parser(
        "embed",
        parents=[common],
        help="embed pending chunks with the hashing embedder",
        description="Embed chunks that have no current embedding, using the built-in "
        "hashing embedder (feature hashing of words; deterministic, not a semantic model).",
    )
    p.add_argument("--dims", type=int, default=384, help="vector length (default 384)")
    p.add_argument(
        "--batch-size", type=int, default=256, help="chunks per transaction (default 256)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_embed)

    p = commands.add_parser(
        "search",
        parents=[common],
        help="keyword, semantic or hybrid search",
        description="Search documents. Query vectors come from the built-in hashing embedder "
        "(feature hashing of words, not a semantic model), so semantic and hybrid modes "
        "compare against vectors made by `ctx-models embed` or scripts/seed.py.",
    )
    p.add_argument("query", help="the search text")
    p.add_argument("--mode", choices=search.MODES, default="hybrid", help="default: hybrid")
    p.add_argument("--source", help="only documents of this source")
    p.add_argument("--since", help="only documents updated on or after this date (YYYY-MM-DD)")
    p.add_argument("--limit", type=int, default=12, help="results to show (default 12)")
    p.add_argument(
        "--alpha",
        type=float,
        default=0.6,
        help="weight of the semantic score in hybrid mode (default 0.6)",
    )
    p.add_argument(
        "--explain", action="store_true", help="show the keyword and semantic parts of each score"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--dims", type=int, default=384, help="hashing embedder vector length (default 384)"
    )
    p.set_defaults(handler=cmd_search)

    p = commands.add_parser(
        "check",
        parents=[common],
        help="integrity check; --repair fixes what is certain",
        description="Check the database against the storage contract. Exit 0 when clean, "
        "1 when problems are found, 2 when the database cannot be read.",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="fix repairable problems in one transaction, then check again",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.WARNING
        if args.verbose == 0
        else logging.INFO
        if args.verbose == 1
        else logging.DEBUG
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except CtxModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug: still one line, with the traceback in the log at -v
        log.debug("unexpected error", exc_info=True)
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (rerun with -vv for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR
