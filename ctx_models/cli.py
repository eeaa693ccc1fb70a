"""The ``ctx-models`` command line (also ``python -m ctx_models``).

Every command takes ``--db PATH`` or ``--config FILE`` (a ``ctx`` TOML file with
``[db] path``); without them ``$CTX_MODELS_DB``, then ``.ctx/data/ctx.sqlite``.
Errors print one line on stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from . import __version__, integrity, model_files, outputs, search, snippets, store
from .backends import backend_for, connect
from .backends.sqlite.readonly import read_only_access
from .backends.urls import location
from .config import DEFAULT_DB_PATH, ENV_VAR, display, resolve_database
from .embedders import MAX_DIMS, Embedder, default_embedder, embedder_for_model, register_embedder
from .errors import CtxModelsError, NotADatabaseError
from .fields import MAX_EPOCH
from .models import bound_database
from .onnx_embedder import OnnxEmbedder
from .schema import CONTRACT_TABLES, run_migrations, schema_version

__all__ = ["main", "build_parser"]

log = logging.getLogger("ctx_models.cli")

EXIT_OK, EXIT_ERROR, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 1, 2


class UsageError(CtxModelsError):
    """A command-line argument that argparse could not catch by itself."""


# --------------------------------------------------------------------------- helpers


def _where(args: argparse.Namespace) -> Path | str:
    """The database the command works on: a path, or a PostgreSQL URL."""
    if args.db is not None and args.config is not None:
        raise UsageError("give --db or --config, not both: each names the database")
    where = resolve_database(args.db, args.config)
    _refuse_read_only(args, where)
    return where


# Commands that write the database; on a file this process may not write they stop at once.
_WRITING = ("init", "seed", "embed", "delete")


def _refuse_read_only(args: argparse.Namespace, where: Path | str) -> None:
    writing = args.command in _WRITING or (args.command == "check" and args.repair)
    if not writing or not isinstance(where, Path):
        return
    access = read_only_access(where.expanduser())
    if access is not None:
        what = "repair" if args.command == "check" else args.command
        raise UsageError(
            f"cannot {what} {display(where)}: this process may not write it ({access.why}); "
            "run it where the file and its directory are writable"
        )


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """connect()'s options from the command line: the wait for a lock (--lock-timeout)."""
    timeout = getattr(args, "lock_timeout", None)
    if timeout is None:
        return {}
    if not timeout >= 0:  # also NaN
        raise UsageError(f"--lock-timeout must be 0 or more seconds, got {timeout}")
    return {"timeout": timeout}


def _database(args: argparse.Namespace, *, create: bool = False) -> Any:
    where = _where(args)
    db = connect(where, create=create, **_options(args))
    if not create:
        backend = backend_for(db)
        with backend.errors("read"):
            present = backend.table_names()
        missing = [t for t in CONTRACT_TABLES if t not in present]
        if missing and args.command != "check":
            shown = display(where)
            raise CtxModelsError(
                f"{shown} lacks the ctx schema (missing {', '.join(missing)}); "
                f"run `ctx-models init --db {shown}`"
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
    if not colour:
        return snippets.plain(snippet)
    text = " ".join(snippet.split())
    return text.replace(snippets.START, "\x1b[1;33m").replace(snippets.END, "\x1b[0m")


# --------------------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    where = _where(args)
    path = display(where)
    existed = not isinstance(where, Path) or (where.exists() and where.stat().st_size > 0)
    db = connect(where, **_options(args))
    result = run_migrations(db)
    stored = schema_version(db)
    if not existed or "documents" in result.created:
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
    print(f"database   {display(_where(args))} ({_human_size(report.size_bytes)})")
    print(f"documents  {report.documents}")
    print(f"chunks     {report.chunks}")
    print(f"embedded   {report.embedded} (stale: {report.stale})")
    for model, count in report.models.items():
        print(f"model      {model}: {count}")
    if report.sources:
        # The checkpoint's cursor is the newest updated_at the connector synced.
        rows = [("source", "documents", "chunks", "embedded", "synced up to (cursor)")] + [
            (s.source, str(s.documents), str(s.chunks), str(s.embedded), _cursor_text(s))
            for s in report.sources
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        print()
        for row in rows:
            cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
            cells[-1] = row[-1]  # the last column is not padded: no trailing spaces
            print("  ".join(cells))
    return EXIT_OK


def _cursor_text(source: store.SourceStats) -> str:
    if source.checkpoint is None:
        return "unreadable" if source.checkpoint_at else "-"
    if 0 <= source.checkpoint <= MAX_EPOCH:
        return dt.datetime.fromtimestamp(source.checkpoint, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(source.checkpoint)


def cmd_export(args: argparse.Namespace) -> int:
    _database(args)
    if args.out in (None, "-"):
        count = store.export(sys.stdout, source=args.source)
    else:
        out = Path(args.out).expanduser()
        where = _where(args)
        if isinstance(where, Path):
            outputs.refuse_database_files(out, where, "export")
        outputs.refuse_existing(out, args.force)
        mode = outputs.file_mode(where) if isinstance(where, Path) else outputs.new_file_mode()
        try:
            outputs.remove_abandoned(out, "export")
            with outputs.replaced_atomically(out, mode=mode, tag="export") as partial:
                with partial.open("w", encoding="utf-8") as fh:
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
        if not _confirm(f"Delete {what} with their chunks, FTS rows and vectors?"):
            print("nothing deleted")
            return EXIT_OK
    if args.source is not None:
        deleted = store.delete_source(args.source)
        print(f"deleted {deleted} document(s) of source {args.source!r}")
    else:
        store.delete_document(args.id)
        print(f"deleted document {args.id}")
    return EXIT_OK


def _chosen_embedder(args: argparse.Namespace) -> Embedder:
    """``--model NAME`` (from ``--model-path DIR`` if given), ``--dims N`` (hashing), or the default."""
    if getattr(args, "dims", None) is not None:
        if not 1 <= args.dims <= MAX_DIMS:
            raise UsageError(f"--dims must be from 1 to {MAX_DIMS}, got {args.dims}")
        return embedder_for_model(f"hashing-v1-{args.dims}")
    path = _model_path(args)
    if path is not None:
        name = args.model or path.name
        if args.model is None and name not in model_files.MODELS:
            raise UsageError(
                f"--model-path {path}: which model is it? Add --model NAME (one of ctx's: "
                f"{', '.join(model_files.MODELS)}, or a name of your own)"
            )
        return _embedder_from_path(name, path)
    if args.model is not None:
        return embedder_for_model(args.model)
    return default_embedder()


def _model_path(args: argparse.Namespace) -> Path | None:
    """``--model-path``, else ``[embedding] model_path`` of --config (else the library's own lookup)."""
    if getattr(args, "model_path", None) is not None:
        return Path(args.model_path).expanduser()
    if getattr(args, "config", None) is not None:
        return model_files.model_path_from_config(args.config)
    return None


def _embedder_from_path(name: str, path: Path) -> Embedder:
    """ctx's model ``name`` (checked against its registered size) or a model of your own, from ``path``."""
    if name in model_files.MODELS:
        return model_files.load(name, path)
    return OnnxEmbedder(path, name)


def _use_model_path(args: argparse.Namespace) -> None:
    """Make the model search picks from the stored vectors load from ``--model-path``."""
    path = _model_path(args)
    if path is None:
        return
    for name in {*model_files.MODELS, *([args.model] if args.model else [])}:
        register_embedder(name, functools.partial(_embedder_from_path, name, path))


def _confirm(question: str) -> bool:
    """Ask on the terminal; only y or yes goes ahead. End of input (Ctrl-D) is a no."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        print()  # the answer line the user never ended
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_embed(args: argparse.Namespace) -> int:
    _database(args)
    embedder = _chosen_embedder(args)
    others = store.embeddings_replaced_by(embedder.model)
    what = ", ".join(f"{count} of {model}" for model, count in others.items())
    if others and args.replace and not args.yes:
        question = f"Re-embedding with {embedder.model} replaces existing embeddings ({what})."
        if not sys.stdin.isatty():
            raise UsageError(f"{question} Pass --yes to go ahead (stdin is not a terminal)")
        if not _confirm(f"{question} Go ahead?"):
            print("nothing embedded")
            return EXIT_OK
    count = store.embed_pending(
        embedder,
        batch_size=args.batch_size,
        progress=_progress(args),
        keep_others=not args.replace,
    )
    print(f"embedded {count} chunk(s) with {embedder.model}")
    if others and not args.replace:
        print(
            f"note: kept the embeddings of other models ({what}): a chunk holds one embedding; "
            f"--replace re-embeds those chunks with {embedder.model}",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_seed(args: argparse.Namespace) -> int:
    from .demo.seed import seed

    # Every option is checked, and the embedder loaded, before a database is created.
    if args.docs < 0:
        raise UsageError(f"--docs must be 0 or a positive integer, got {args.docs}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}")
    embedder = _chosen_embedder(args)
    where = _where(args)
    path = display(where)
    db = connect(where, **_options(args))
    migration = run_migrations(db)
    if migration.created:
        print(f"created {path} (schema version {migration.version})")
    report = seed(
        docs=args.docs,
        embedder=embedder,
        random_seed=args.seed,
        batch_size=args.batch_size,
        progress=_progress(args),
    )
    demo = report.demo
    print(
        f"demo corpus: {demo.documents} documents ({demo.created} new, {demo.updated} updated, "
        f"{demo.unchanged} unchanged), {demo.chunks} chunks written, {demo.embedded} embedded "
        f"with {report.model}"
    )
    if report.synthetic is not None:
        synthetic = report.synthetic
        print(
            f"synthetic corpus: {synthetic.documents} documents ({synthetic.created} new, "
            f"{synthetic.unchanged} unchanged), {synthetic.chunks} chunks written"
        )
    totals = store.stats()
    print(f"{path}: {totals.documents} documents, {totals.chunks} chunks, {totals.embedded} embedded")
    return EXIT_OK


def cmd_sync(args: argparse.Namespace) -> int:
    from .sync import DEFAULT_INCLUDE, store_embedder, sync_folder

    if args.name is not None and len(args.paths) > 1:
        raise UsageError("--name names one folder's source; sync the folders one at a time")
    if not 0 < args.max_size < 1e12:  # NaN and infinity fail too
        raise UsageError(f"--max-size must be a positive number of MB, got {args.max_size}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.no_embed and args.model_path is not None:
        raise UsageError("--model-path names a model to embed with; --no-embed writes no vectors")
    # The folder's name as given (a link keeps its own name), as sync_folder takes it.
    names = [
        args.name or os.path.basename(os.path.abspath(os.path.expanduser(path)))
        for path in args.paths
    ]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(
            f"two folders are named {twice[0]!r} and would share the source filesystem:{twice[0]}; "
            "sync them one at a time with --name"
        )
    where = _where(args)
    if args.dry_run:
        # Nothing is written, not even a new database: a missing one is an empty store.
        if isinstance(where, Path) and not where.exists():
            run_migrations(connect(":memory:"))
        else:
            _database(args)
    else:
        migration = run_migrations(connect(where))
        if migration.created and "documents" in migration.created:
            print(f"created {display(where)} (schema version {migration.version})")
    embedder = None
    if not args.no_embed and not args.dry_run:
        explicit = args.model is not None or args.dims is not None or args.model_path is not None
        embedder = _chosen_embedder(args) if explicit else store_embedder()
    for path, name in zip(args.paths, names, strict=True):
        report = sync_folder(
            path,
            name=name,
            include=args.include or DEFAULT_INCLUDE,
            exclude=args.exclude or (),
            follow_symlinks=args.follow_symlinks,
            max_bytes=int(args.max_size * 1_000_000),
            embedder=embedder,
            embed=not args.no_embed,
            prune=args.prune,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            progress=_progress(args),
            wait=args.wait,
        )
        if args.dry_run:
            for what, source_id in report.changes:
                print(f"  would {_WOULD[what]} {source_id}")
            if not args.prune:
                for source_id in report.vanished:
                    print(f"  vanished {source_id} (kept: --prune would remove it)")
        shown = report.skipped if args.verbose else report.skipped[:_SKIPS_SHOWN]
        for source_id, reason in shown:
            print(f"  skipped {source_id}: {reason}")
        if len(shown) < len(report.skipped):
            print(f"  ... and {len(report.skipped) - len(shown)} more skipped (-v lists them all)")
        print(report.summary())
    return EXIT_OK


_SKIPS_SHOWN = 10
_WOULD = {"created": "create", "updated": "update", "pruned": "prune"}


def cmd_search(args: argparse.Namespace) -> int:
    if args.highlight and not args.json:
        raise UsageError("--highlight keeps the match markers in --json output; add --json")
    db = _database(args)
    _use_model_path(args)
    if args.alpha is not None and not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha must be from 0 (keyword only) to 1 (semantic only), got {args.alpha}")
    if args.approximate and backend_for(db).name == "sqlite":
        print("note: --approximate applies to PostgreSQL's HNSW indexes; SQLite searches exactly",
              file=sys.stderr)
    results = search.hybrid_search(
        args.query,
        mode=args.mode,
        alpha=args.alpha,
        limit=args.limit,
        source=args.source,
        since=args.since,
        explain=args.explain,
        model=args.model,
        fusion=args.fusion,
        match="all" if args.all_words else "any",
        exact=not args.approximate,
    )
    skipped = [s for s in results.signals.values() if not s.used]
    if args.json:
        # The output stays a list of results (as before); why it is empty, or what was left
        # out, goes to stderr, where a script reading stdout does not trip on it.
        found = [r.to_dict() for r in results]
        if not args.highlight:
            for item in found:
                item["snippet"] = _highlight(item["snippet"], colour=False)
        print(json.dumps(found, indent=2, ensure_ascii=False))
        if not results:
            print(f"no results: {results.why_empty}{_unknown_source(args.source)}", file=sys.stderr)
        else:
            _skipped_notes(skipped)
        return EXIT_OK
    if args.explain:
        print(f"signals: {' · '.join(map(str, results.signals.values()))}")
        print(f"fusion:  {results.fusion}, alpha {results.alpha:.2f}\n")
    if not results:
        print(f"no results: {results.why_empty}{_unknown_source(args.source)}")
        return EXIT_OK
    if not args.explain:
        _skipped_notes(skipped)
    colour = _colour(sys.stdout)
    for rank, hit in enumerate(results, 1):
        print(f"{rank:>2}. [{hit.score:.3f}] {hit.title or '(untitled)'}")
        print(f"    {hit.source} · {hit.source_id} · updated {hit.updated_at}")
        if hit.source_url:
            print(f"    {hit.source_url}")
        print(f"    {_highlight(hit.snippet, colour)}")
        if hit.explain:
            e = hit.explain
            ranks = ", ".join(
                f"{name} #{e[name + '_rank']}" for name in ("keyword", "semantic") if e[name + "_rank"]
            )
            print(
                f"    explain: keyword {e['keyword']:.3f} · semantic {e['semantic']:.3f}"
                + (f" · ranks {ranks}" if ranks else "")
            )
        print()
    return EXIT_OK


# Why a semantic signal was left out that the user can act on (the rest is in --explain).
_WORTH_SAYING = ("the stored vectors' model is not available", "no stored vector has", "no chunk has an embedding")


def _skipped_notes(skipped: list[search.Signal]) -> None:
    for skipped_signal in skipped:
        if skipped_signal.note.startswith(_WORTH_SAYING):
            print(f"note: semantic search skipped: {skipped_signal.note}", file=sys.stderr)


def _unknown_source(source: str | None) -> str:
    """When --source names no source at all, say so, with the ones there are."""
    from .models import Document

    if source is None or Document.select().where(Document.source == source).exists():
        return ""
    rows: Any = Document.select(Document.source).distinct().order_by(Document.source).tuples()
    known = [source for (source,) in rows]
    return f"; there is no source {source!r} (sources: {', '.join(known) or 'none'})"


def cmd_checkpoint(args: argparse.Namespace) -> int:
    _database(args)
    if args.clear:
        cleared = store.clear_checkpoint(args.source)
        print(f"cleared the checkpoint of {args.source!r}" if cleared
              else f"nothing to clear: {args.source!r} has no checkpoint")
        return EXIT_OK
    if args.set is not None:
        try:
            cursor = int(args.set, 10)
        except ValueError:
            raise UsageError(f"--set takes an integer cursor (epoch seconds), got {args.set!r}") from None
        store.set_checkpoint(args.source, cursor)
        print(f"set the checkpoint of {args.source!r} to {_cursor_shown(cursor)}")
        return EXIT_OK
    current = store.get_checkpoint(args.source)
    print(f"{args.source}: no checkpoint" if current is None else f"{args.source}: {_cursor_shown(current)}")
    return EXIT_OK


def _cursor_shown(cursor: int) -> str:
    if 0 <= cursor <= MAX_EPOCH:
        when = dt.datetime.fromtimestamp(cursor, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{cursor} ({when})"
    return str(cursor)


def cmd_copy(args: argparse.Namespace) -> int:
    from .transfer import copy_store

    if args.db is not None or args.config is not None:
        raise UsageError("copy takes its databases as SOURCE and DEST; --db and --config do not apply")
    source_where = location(args.source)
    dest_where = location(args.dest)
    source = connect(source_where, bind_models=False, create=False, **_options(args))
    try:
        new_file = isinstance(dest_where, Path) and not os.path.lexists(dest_where)
        dest = connect(dest_where, bind_models=False, **_options(args))
        try:
            if new_file and isinstance(source_where, Path):
                # Before a row is copied: the copy is as private as the store it copies.
                outputs.give_mode(Path(dest_where), outputs.file_mode(source_where))
            report = copy_store(
                source, dest, merge=args.merge, batch_size=args.batch_size, progress=_progress(args)
            )
        finally:
            dest.close()  # the CLI also runs in-process (tests, embedding programs): no leak
    finally:
        source.close()
    replaced = f", {report.replaced} replaced" if report.replaced else ""
    print(
        f"copied {report.documents} documents, {report.chunks} chunks, {report.vectors} vectors "
        f"and {report.checkpoints} checkpoints from {display(source_where)} to "
        f"{display(dest_where)}{replaced}"
    )
    return EXIT_OK


def cmd_index(args: argparse.Namespace) -> int:
    db = _database(args)
    backend = backend_for(db)
    built = backend.build_hnsw_indexes()
    if not built:
        print("no vectors to index")
        return EXIT_OK
    for name, dims in built:
        recall, queries = search.hnsw_recall(dims, k=args.recall_k)
        print(f"built {name} ({dims} dims): recall@{args.recall_k} against exact search "
              f"{recall:.3f} over {queries} sample queries")
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    _database(args)
    report = store.backup(args.dest, overwrite=args.force)
    print(f"backed up to {args.dest} ({_human_size(Path(args.dest).stat().st_size)}); "
          f"check of the copy: {'clean' if report.clean else 'NOT clean, see ctx-models check'}")
    return EXIT_OK if report.clean else EXIT_PROBLEMS


def cmd_check(args: argparse.Namespace) -> int:
    try:
        db = _database(args)
        report = integrity.check(db, repair=args.repair)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except NotADatabaseError as exc:
        # Too damaged to open: SQLite's own report still says what is damaged.
        # (A file refused on its header alone, not SQLite or truncated, has no cause: its
        # message says it all, and it cannot be read.)
        damaged = integrity.check_damaged_file(_where(args)) if exc.__cause__ else None
        if damaged is None:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        report = damaged
    except CtxModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return EXIT_OK if report.clean else EXIT_PROBLEMS
    print(f"database      {report.path}")
    damage = [line for message in report.quick_check for line in message.splitlines() if line]
    if damage != ["ok"]:
        lines = [line for line in damage if not line.startswith("*** in database")]
        for line in lines[:_DAMAGE_LINES]:
            print(f"damage        {line}")
        more = len(lines) - _DAMAGE_LINES
        if more > 0:
            print(f"              (and {more} more lines: `ctx-models check --json` lists them all)")
        print("problem       the file itself is damaged: SQLite's own check reports it, not the store")
        print("hint          restore a backup (`ctx-models backup` makes them); repair cannot fix this")
        return EXIT_PROBLEMS
    print("quick_check   ok")
    for code, count in report.repaired.items():
        print(f"repaired      {code}: {count}")
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


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .server.run import TOKEN_ENV_VAR, serve
    except ImportError as exc:
        raise UsageError(
            f"serve needs the MCP SDK ({exc.name} is missing): pip install 'ctx-models[serve]'"
        ) from None
    server_log = logging.getLogger("ctx_models.server")
    server_log.setLevel(min(logging.INFO, logging.getLogger().level))  # one line per request
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV_VAR) or None
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {args.port}")
    serve(
        _where(args),
        http=args.http,
        host=args.host,
        port=7331 if args.port is None else args.port,
        token=token,
        timeout=args.timeout,
        workers=args.workers,
    )
    return EXIT_OK


# SQLite's report lines of a damaged file that `check` prints (--json has them all).
_DAMAGE_LINES = 10


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, like argparse but without usage spam
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _progress(args: argparse.Namespace) -> bool:
    """Progress bars only on a terminal, and never with --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _location_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--db, --config and -v, accepted before the command and after it.

    After the command they default to SUPPRESS, so that a value given before it
    is not overwritten by the subcommand's default.
    """
    default: Any = argparse.SUPPRESS if suppress else None
    where = parser.add_argument_group("database location")
    where.add_argument(
        "--db",
        metavar="PATH|URL",
        default=default,
        help=f"database file or postgresql:// URL (default: ${ENV_VAR}, else {DEFAULT_DB_PATH})",
    )
    where.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="a ctx TOML config; its [db] path (or url) names the database",
    )
    where.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        default=default,
        help="how long to wait for another process's lock before giving up (default 30)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="log more (-vv for debug)",
    )


def _model_options(parser: argparse.ArgumentParser, what: str) -> None:
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--model",
        metavar="NAME",
        help=f"embedding model {what} (default: all-minilm-l6-v2 when its files are on this "
        "machine, else wordllama-l2-supercat-256 when ctx-models[semantic] is installed, "
        "else hashing-v1-384)",
    )
    choice.add_argument(
        "--dims",
        type=int,
        metavar="N",
        help="use the hashing embedder with N dimensions (the model hashing-v1-N)",
    )
    _model_path_option(parser)


def _model_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-path",
        metavar="DIR",
        help="the model's folder (model.onnx, tokenizer.json); default: $"
        f"{model_files.PATH_ENV}, then ctx's, fastembed's and Hugging Face's caches, "
        "then a download",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    _location_options(common, suppress=True)

    parser = _Parser(
        prog="ctx-models",
        description="Create, inspect, search and check a Context Harness (ctx) store.",
        epilog="Run `ctx-models COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _location_options(parser, suppress=False)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=summary, description=description)

    p = command(
        "init",
        "create or upgrade the database (safe to repeat)",
        "Create the database and its schema, or upgrade it; running it again changes nothing.",
    )
    p.set_defaults(handler=cmd_init)

    p = command(
        "stats",
        "counts per source, embeddings, size on disk",
        "Print documents, chunks, embedded and stale chunks, models, and per source the counts "
        "and the checkpoint cursor, with the size on disk.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=cmd_stats)

    p = command(
        "export",
        "documents with their chunks as JSON Lines",
        "Write every document (or one source's) with its chunks as JSON Lines, streamed from "
        "one snapshot.",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write to FILE instead of stdout (through a temporary file and a rename; never "
        "the database, never an existing file unless --force)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace FILE if it exists (a symbolic link is replaced, not written through)",
    )
    p.add_argument("--source", help="only this source")
    p.set_defaults(handler=cmd_export)

    p = command(
        "delete",
        "delete a source or a document, with everything of it",
        "Delete a source (and its checkpoint) or one document, with their chunks, FTS rows, "
        "embeddings and vectors, in one transaction.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--source", help="delete every document of this source (and its checkpoint)"
    )
    target.add_argument("--id", help="delete the document with this id")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=cmd_delete)

    p = command(
        "embed",
        "embed pending chunks",
        "Embed the chunks that have no current embedding of the model (none yet, or stale), "
        "one transaction per batch.",
    )
    _model_options(p, "to embed with")
    p.add_argument(
        "--batch-size", type=int, default=256, help="chunks per transaction (default 256)"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="also re-embed chunks that hold another model's embedding (a chunk holds one); "
        "without it they are kept",
    )
    p.add_argument("-y", "--yes", action="store_true", help="with --replace, do not ask")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_embed)

    p = command(
        "seed",
        "load the demo corpus (and synthetic documents)",
        "Load the demo corpus shipped with ctx_models (twenty runbooks, design notes, tickets "
        "and meeting notes), embedded, with a checkpoint per source; --docs N adds N synthetic "
        "documents of ten chunks each. Running it again changes nothing.",
    )
    p.add_argument(
        "--docs", type=int, default=0, metavar="N", help="also add N synthetic documents"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="random seed of the synthetic corpus (default 0)"
    )
    p.add_argument(
        "--batch-size", type=int, default=500, help="documents per transaction (default 500)"
    )
    _model_options(p, "to embed with")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_seed)

    p = command(
        "sync",
        "fill the store from folders of files, incrementally",
        "Sync the files of each folder into the store as source filesystem:NAME, as ctx's "
        "filesystem connector makes them: new and changed files are read, chunked and embedded "
        "in batches (one transaction each); unchanged files are not read. Markdown and text by "
        "default; PDF, DOCX, PPTX and XLSX when their globs are included.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="a folder to sync")
    p.add_argument("--name", help="the source's name, filesystem:NAME (default: the folder's name)")
    p.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="take files matching GLOB, repeatable (default: **/*.md and **/*.txt)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="GLOB",
        help="leave out files matching GLOB, repeatable (.git, target, node_modules always are)",
    )
    p.add_argument(
        "--follow-symlinks", action="store_true", help="follow symbolic links, even out of the folder"
    )
    p.add_argument(
        "--max-size",
        type=float,
        default=50.0,
        metavar="MB",
        help="skip files larger than MB megabytes (default 50, as ctx)",
    )
    choice = p.add_mutually_exclusive_group()
    choice.add_argument(
        "--model",
        metavar="NAME",
        help="embedding model (default: the model of the store's vectors; in a store without "
        "vectors, all-minilm-l6-v2 when its files are on this machine, else "
        "wordllama-l2-supercat-256 when ctx-models[semantic] is installed, else hashing-v1-384)",
    )
    choice.add_argument(
        "--dims", type=int, metavar="N", help="embed with the hashing embedder of N dimensions"
    )
    choice.add_argument("--no-embed", action="store_true", help="write chunks without vectors")
    _model_path_option(p)
    p.add_argument(
        "--prune", action="store_true", help="delete the documents of files that are gone"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would change; write nothing"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=500,
        metavar="N",
        help="documents per transaction (default 500)",
    )
    p.add_argument(
        "--wait", action="store_true", help="wait for another sync of the store to finish"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_sync)

    p = command(
        "search",
        "keyword, semantic or hybrid search",
        "Search documents. Every word of the question is optional and BM25 ranks; semantic "
        "search embeds the question with the model that made the stored vectors; hybrid "
        "(the default) fuses both.",
    )
    p.add_argument("query", help="the question or words to search for")
    p.add_argument("--mode", choices=search.MODES, default="hybrid", help="default: hybrid")
    p.add_argument("--source", help="only documents of this source")
    p.add_argument(
        "--since",
        help="only documents updated on or after this date (YYYY-MM-DD, or an ISO time with a zone)",
    )
    p.add_argument("--limit", type=int, default=12, help="results to show (default 12)")
    p.add_argument(
        "--fusion",
        choices=search.FUSIONS,
        default=search.DEFAULT_FUSION,
        help=f"how hybrid mode fuses the lists (default {search.DEFAULT_FUSION}; minmax is ctx's)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        help="weight of the semantic signal in hybrid mode, 0 to 1 (default: "
        + ", ".join(f"{f} {a:.2f}" for f, a in search.DEFAULT_ALPHA.items())
        + "; per model: "
        + "; ".join(
            f"{m} " + ", ".join(f"{f} {a:.2f}" for f, a in w.items())
            for m, w in search.MODEL_ALPHA.items()
        )
        + ")",
    )
    p.add_argument(
        "--all-words", action="store_true", help="require every word, as written (as ctx does)"
    )
    p.add_argument("--model", metavar="NAME", help="compare only with vectors of this model")
    _model_path_option(p)
    p.add_argument(
        "--approximate",
        action="store_true",
        help="let PostgreSQL use its HNSW indexes (ctx-models index --hnsw); exact otherwise",
    )
    p.add_argument(
        "--explain", action="store_true", help="show which signals counted and each score's parts"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--highlight", action="store_true", help="keep the >>> <<< match markers in --json"
    )
    p.set_defaults(handler=cmd_search)

    p = command(
        "copy",
        "copy a whole store to another database",
        "Copy every document with its chunks, embeddings and vectors, and every checkpoint, from "
        "SOURCE to DEST (each a SQLite path or a postgresql:// URL), in batches; values are "
        "copied as stored. Refuses a DEST that holds documents unless --merge.",
    )
    p.add_argument("source", metavar="SOURCE", help="the store to copy (path or URL)")
    p.add_argument("dest", metavar="DEST", help="where to copy it (path or URL)")
    p.add_argument(
        "--merge", action="store_true", help="copy into a DEST that holds documents, replacing the same ones"
    )
    p.add_argument(
        "--batch-size", type=int, default=500, help="documents per transaction (default 500)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_copy)

    p = command(
        "checkpoint",
        "show, set or clear a source's sync checkpoint",
        "Show the sync cursor of SOURCE (the newest updated_at its connector synced), set it "
        "(--set CURSOR, epoch seconds), or clear it (--clear) so the next sync starts over.",
    )
    p.add_argument("source", metavar="SOURCE", help="the connector's source name")
    change = p.add_mutually_exclusive_group()
    change.add_argument("--set", metavar="CURSOR", help="store this cursor (an integer)")
    change.add_argument("--clear", action="store_true", help="delete the checkpoint")
    p.set_defaults(handler=cmd_checkpoint)

    p = command(
        "index",
        "build approximate vector indexes (PostgreSQL)",
        "Build an HNSW index per stored vector size on PostgreSQL, and report its recall against "
        "exact search on sample queries. Searches stay exact unless asked (--approximate).",
    )
    p.add_argument("--hnsw", action="store_true", required=True, help="build HNSW indexes")
    p.add_argument(
        "--recall-k", type=int, default=80, help="the k of the recall reported (default 80)"
    )
    p.set_defaults(handler=cmd_index)

    p = command(
        "backup",
        "a consistent copy of the database, checked",
        "Copy the database to DEST with SQLite's online backup (a consistent copy while other "
        "processes write), then check the copy.",
    )
    p.add_argument("dest", metavar="DEST", help="the file to write (must not exist, unless --force)")
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")
    p.set_defaults(handler=cmd_backup)

    p = command(
        "check",
        "integrity check; --repair fixes what is certain",
        "Check the database against the storage contract. Exit 0 when clean, "
        "1 when problems are found, 2 when the database cannot be read.",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="fix repairable problems in one transaction, then check again",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_check)

    p = command(
        "serve",
        "serve the store to AI agents: MCP over stdio or HTTP, and ctx's HTTP routes",
        "Serve the store read-only with the tools of `ctx serve mcp` (search, get, sources): "
        "MCP over stdio (the default, what desktop agents launch), or with --http, MCP's "
        "Streamable HTTP at /mcp beside ctx's /tools/list, /tools/{name} and /health. Logs one "
        "line per request on stderr. Needs the serve extra: pip install 'ctx-models[serve]'.",
    )
    p.add_argument("--http", action="store_true", help="serve HTTP instead of stdio")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind with --http (default 127.0.0.1; any other needs a token)",
    )
    p.add_argument("--port", type=int, help="port to bind with --http (default 7331; 0: any free one)")
    p.add_argument(
        "--token",
        help="bearer token clients must send (default: $CTX_MODELS_SERVE_TOKEN, which `ps` "
        "does not show)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="time limit of one call (default 30)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="searches run at once (default 1; on SQLite each keeps its own vector index in memory)",
    )
    p.set_defaults(handler=cmd_serve)
    return parser


# Arguments that are text for the database (not file names, which may be any bytes), with
# how the user wrote them. Python hands over bytes that are not UTF-8 as lone surrogates.
_TEXT_ARGUMENTS = {
    "query": "the question",
    "source": "--source",
    "id": "--id",
    "model": "--model",
    "since": "--since",
}


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Refuse, in one line, a text argument that is not valid UTF-8 (e.g. ``$'\\xff'``)."""
    if args.command == "copy":  # its SOURCE and DEST are paths or URLs
        return
    for name, shown in _TEXT_ARGUMENTS.items():
        if args.command == "checkpoint" and name == "source":
            shown = "SOURCE"
        value = getattr(args, name, None)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            what = f"the byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
            raise UsageError(
                f"{shown} is not valid UTF-8 text ({what} at position {exc.start}); "
                "pass it in UTF-8"
            ) from None


@contextmanager
def _database_errors(action: str) -> Iterator[None]:
    """What a command's own queries raise, in the words of the bound database's backend."""
    try:
        yield
    except Exception as exc:
        try:
            backend = backend_for(bound_database())
        except CtxModelsError:
            raise exc from None
        if not isinstance(exc, backend.driver_errors):
            raise
        with backend.errors(action):
            raise


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops the way Ctrl-C does."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit cannot fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process ends


def _bytes_as_written() -> None:
    """Print a file name that is not UTF-8 as the bytes it is (as ``ls`` does), not fail on it.

    Python decodes such names with ``surrogateescape``; a UTF-8 locale's stdout is
    strict and would raise on them.
    """
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and getattr(sys.stdout, "errors", None) == "strict":
        try:
            reconfigure(errors="surrogateescape")
        except (ValueError, OSError, AttributeError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    _bytes_as_written()
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
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        _check_text_arguments(args)
        with _database_errors(args.command):
            code = int(args.handler(args))
        if sys.stdout is not None:
            sys.stdout.flush()  # an output error surfaces here, not at exit
        return code
    except CtxModelsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print("terminated: what was committed is kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: what was committed is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing more to say.
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:
        # Everything the database raises is ours by now: this is the output (a full disk
        # behind `> file`, a closed descriptor).
        _silence_stdout()
        print(f"error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, with the traceback in the log at -v
        log.debug("unexpected error", exc_info=True)
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (rerun with -vv for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
