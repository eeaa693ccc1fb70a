"""``bench.py sync``: a folder of 10,000 Markdown files of about 2 KB synced with the
hashing embedder (384 dims), against ``store.ingest_many`` of the same
documents already read into memory (the floor); then a second sync that finds
nothing changed.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import time
from pathlib import Path

import ctx_models
from ctx_models.demo import synthetic
from ctx_models.demo.synthetic import BASE_TIME
from ctx_models.embedders import HashingEmbedder

from .core import (
    DIMS,
    fresh,
    load_ours,
    verdict,
    write_results,
)

SYNC_FIRST_GOAL = 1.3  # first sync against ingest_many of the same documents


SYNC_AGAIN_GOAL_S = 2.0  # a sync that finds nothing changed


def build_folder(folder: Path, files: int) -> None:
    """``files`` Markdown files of about 2 KB (three paragraphs), in 100 folders, mtimes in the past."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(7)
    words = synthetic.vocabulary(5_000)
    for i in range(files):
        paragraphs = [" ".join(rng.choices(words, k=95)) for _ in range(3)]
        path = folder / f"area{i % 100:02}" / f"note{i:05}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Note {i}\n\n" + "\n\n".join(paragraphs), encoding="utf-8")
        os.utime(path, (BASE_TIME + i, BASE_TIME + i))


def folder_items(folder: Path) -> list[dict]:
    """The documents a sync writes for ``folder``, read beforehand: the floor's input."""
    from ctx_models.sync import STAT_KEY

    items = []
    for path in sorted(folder.rglob("*.md")):
        st = path.stat()
        rel = path.relative_to(folder).as_posix()
        items.append({
            "source": f"filesystem:{folder.name}", "source_id": rel, "body": path.read_text(),
            "title": path.name, "source_url": f"file://{path}", "created_at": int(st.st_mtime),
            "updated_at": int(st.st_mtime),
            "metadata": {STAT_KEY: {"size": st.st_size, "mtime_ns": st.st_mtime_ns}},
        })
    return items


def bench_sync(args: argparse.Namespace) -> None:
    from ctx_models.sync import sync_folder

    workdir = Path(args.workdir)
    folder = workdir / "sync-folder"
    print(f"writing {args.files:,} Markdown files of about 2 KB ...", flush=True)
    build_folder(folder, args.files)
    embedder = HashingEmbedder(DIMS)
    items = folder_items(folder)
    floor_s, first_s, again_s = [], [], []
    for _ in range(args.repeat):  # alternate, so drift in the machine hits both
        floor_s.append(load_ours(workdir / "sync-floor.sqlite", items, embedder))
        gc.collect()
        db = ctx_models.connect(fresh(workdir / "sync-ours.sqlite"))
        ctx_models.run_migrations(db)
        started = time.perf_counter()
        report = sync_folder(folder, embedder=embedder)
        first_s.append(time.perf_counter() - started)
        assert report.created == args.files, report.summary()
        started = time.perf_counter()
        report = sync_folder(folder, embedder=embedder)
        again_s.append(time.perf_counter() - started)
        assert report.unchanged == args.files and report.chunks == 0, report.summary()
        db.close()
        gc.collect()
    floor_t, first_t, again_t = (statistics.median(s) for s in (floor_s, first_s, again_s))
    ratio = first_t / floor_t
    print(f"{'sync':<28}{'files/s':>10}{'seconds':>10}{'ratio':>7}  goal")
    print(f"{'ingest_many (floor)':<28}{args.files / floor_t:>10,.0f}{floor_t:>10.2f}")
    print(f"{'first sync':<28}{args.files / first_t:>10,.0f}{first_t:>10.2f}{ratio:>7.2f}  "
          f"<= {SYNC_FIRST_GOAL} x floor: {verdict(ratio, SYNC_FIRST_GOAL)}")
    print(f"{'second sync, nothing changed':<28}{args.files / again_t:>10,.0f}{again_t:>10.2f}"
          f"{'':>7}  <= {SYNC_AGAIN_GOAL_S} s: {verdict(again_t, SYNC_AGAIN_GOAL_S)}")
    results = {
        "files": args.files, "model": embedder.model, "floor_seconds": floor_s,
        "first_seconds": first_s, "again_seconds": again_s, "ratio": ratio,
        "goal_ratio": SYNC_FIRST_GOAL, "goal_again_seconds": SYNC_AGAIN_GOAL_S,
    }
    print(f"results: {write_results('sync', results)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=int, default=10_000, help="Markdown files (default 10,000)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each (default 1)")
