"""``bench.py ingest``: 10,000 synthetic documents x 10 chunks through ``store.ingest_many``,
first without vectors, then with 384-dim vectors; the floor loads the same
rows with the standard library's ``sqlite3.executemany`` into a fresh database
with the same schema and settings; sqlite-vec (through apsw, the ``bench``
extra) loads the same rows into a chunks table, an FTS5 index and a vec0 table.
"""

from __future__ import annotations

import argparse
import gc
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ctx_models.chunking import chunk_text
from ctx_models.demo import synthetic
from ctx_models.embedders import default_embedder

from . import peers
from .core import (
    DIMS,
    LookupEmbedder,
    floor_rows,
    load_floor,
    load_ours,
    verdict,
    write_results,
)


def bench_ingest(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    print(f"generating {args.docs} documents x 10 chunks ...", flush=True)
    items = list(synthetic.synthetic_documents(args.docs, seed=7))
    texts = {text for item in items for text in chunk_text(item["body"])}
    chunks = sum(len(chunk_text(item["body"])) for item in items)
    rng = np.random.default_rng(7)
    vectors = {text: rng.standard_normal(DIMS).astype(np.float32) for text in sorted(texts)}
    results: dict[str, Any] = {"documents": len(items), "chunks": chunks}
    peer = peers.sqlite_vec_available()
    print(f"peer: {peer or 'sqlite-vec not installed (pip install .[bench])'}")
    print(
        f"{'load':<24}{'ours (chunks/s)':>16}{'floor':>10}{'ratio':>7}  {'goal <= 1.50':<14}"
        f"{'sqlite-vec':>11}{'ratio':>7}  goal <= 2.00"
    )
    for label, with_vectors in (("chunks + FTS", None), ("chunks + FTS + vectors", vectors)):
        batches = floor_rows(items, with_vectors)
        floor_s, ours_s, peer_s = [], [], []
        for _ in range(args.repeat):  # alternate, so drift in the machine hits all three
            floor_s.append(load_floor(workdir / "ingest-floor.sqlite", batches))
            gc.collect()
            ours_s.append(
                load_ours(
                    workdir / "ingest-ours.sqlite",
                    items,
                    LookupEmbedder(vectors) if with_vectors else None,
                )
            )
            gc.collect()
            if peer and with_vectors is not None:
                peer_s.append(peers.load_sqlite_vec(workdir / "ingest-peer.sqlite", batches, DIMS))
                gc.collect()
        floor_t, ours_t = statistics.median(floor_s), statistics.median(ours_s)
        ratio = ours_t / floor_t
        peer_part = ""
        if peer_s:
            peer_t = statistics.median(peer_s)
            peer_part = (
                f"{chunks / peer_t:>11,.0f}{ours_t / peer_t:>7.2f}  {verdict(ours_t / peer_t, 2.0)}"
            )
        print(
            f"{label:<24}{chunks / ours_t:>16,.0f}{chunks / floor_t:>10,.0f}{ratio:>7.2f}  "
            f"{verdict(ratio, 1.5):<14}{peer_part}",
            flush=True,
        )
        results[label] = {
            "ours_seconds": ours_s,
            "floor_seconds": floor_s,
            "ours_chunks_per_s": chunks / ours_t,
            "floor_chunks_per_s": chunks / floor_t,
            "ratio": ratio,
            "goal": 1.5,
        }
        if peer_s:
            results[label].update(
                peer=peer,
                peer_seconds=peer_s,
                peer_chunks_per_s=chunks / statistics.median(peer_s),
                peer_ratio=ours_t / statistics.median(peer_s),
                peer_goal=2.0,
            )
        del batches
    # The same documents embedded by the default embedder (WordLlama when installed): the
    # speed a user sees with a real model. No floor: the model's own time dominates.
    embedder = default_embedder()
    seconds = load_ours(workdir / "ingest-ours.sqlite", items, embedder)
    print(f"{'... embedded by model':<22}{chunks / seconds:>18,.0f}{'':>26}   {embedder.model}")
    results["default_embedder"] = {"model": embedder.model, "seconds": seconds,
                                   "chunks_per_s": chunks / seconds}
    print(f"results: {write_results('ingest', results)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--docs", type=int, default=10_000, help="documents of 10 chunks (default 10,000)"
    )
    p.add_argument("--repeat", type=int, default=1, help="runs of each loader (default 1)")
