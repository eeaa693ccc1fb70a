"""Embedding speed: chunks per second and the latency of one short question, per model.

    python scripts/bench.py embed [--model all-minilm-l6-v2] [--model-path DIR]
                                  [--torch-model-path DIR] [--data DIR] [--texts 512]

The texts are the first ``--texts`` chunks of a BEIR collection (default
``../shared/data/nfcorpus``; the demo corpus when it is absent), chunked as the
store chunks them. Rows: our ONNX Runtime embedder; sentence-transformers on
torch for the same model and texts when both are installed (from
``--torch-model-path``, a sentence-transformers folder with the PyTorch
weights; default the model's folder), else why not; WordLlama for scale. One
question is embedded 200 times after a warm-up: p50 and p95 (goal: p50 <= 15
ms). Each row of the same model also says how far its vectors are from ours:
the lowest cosine over the first 64 texts.
Memory is the process's resident size after loading and embedding, less
before loading.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctx_models import embedders, model_files
from ctx_models.chunking import chunk_text
from ctx_models.errors import EmbedderUnavailableError

from . import core, corpora

QUESTION = "how do I promote a standby database"


LATENCY_GOAL_MS = 15.0
#: Texts whose vectors are compared across rows of the same model (the first of the collection).
SAMPLE = 64


def _rss_mb() -> float:
    """This process's resident set size in MB (Linux), 0 where /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def load_texts(data: str | None, count: int) -> tuple[str, list[str]]:
    """The first ``count`` chunks of the collection (or of the demo corpus)."""
    directory = Path(data) if data else core.ROOT.parent / "shared" / "data" / "nfcorpus"
    if directory.is_dir():
        collection = corpora.load_beir(directory)
    else:
        collection = corpora.load_demo()
    texts: list[str] = []
    for _, _, body in collection.documents:
        texts += chunk_text(body)
        if len(texts) >= count:
            break
    return collection.name, texts[:count]


def measure(
    label: str, load: Callable[[], Any], texts: Sequence[str], batch: int = 256
) -> dict[str, Any]:
    """Load, embed ``texts`` in store-sized batches, then time one question; never raises."""
    before = _rss_mb()
    try:
        started = time.perf_counter()
        model = load()
        load_s = time.perf_counter() - started
    except (ImportError, EmbedderUnavailableError, OSError) as exc:
        return {"label": label, "error": str(exc).splitlines()[0][:160]}
    sample = np.asarray(model.embed(list(texts[:SAMPLE])), dtype=np.float32)  # also the warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        model.embed(list(texts[start : start + batch]))
    seconds = time.perf_counter() - started
    for _ in range(10):
        model.embed([QUESTION])
    latencies = []
    for _ in range(200):
        started = time.perf_counter()
        model.embed([QUESTION])
        latencies.append((time.perf_counter() - started) * 1000)
    latencies.sort()
    return {
        "label": label,
        "load_s": load_s,
        "chunks_per_s": len(texts) / seconds,
        "question_p50_ms": statistics.median(latencies),
        "question_p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "memory_mb": _rss_mb() - before,
        "sample": sample,
    }


def sentence_transformers_loader(directory: Path) -> Callable[[], Any]:
    """sentence-transformers on torch with the same folder, wrapped to ``embed``."""

    def load() -> Any:
        if not any((directory / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
            raise OSError(f"no PyTorch weights in {directory} (name their folder with --torch-model-path)")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ImportError("not installed (pip install sentence-transformers torch)") from None
        model = SentenceTransformer(str(directory), device="cpu")

        class Wrapped:
            def embed(self, texts: list[str]) -> Any:
                return model.encode(texts, batch_size=32, normalize_embeddings=True)

        return Wrapped()

    return load


def bench_embed(args: argparse.Namespace) -> None:
    """``bench.py embed``: the table, and embed.json."""
    collection, texts = load_texts(args.data, args.texts)
    spec = model_files.MODELS[args.model]
    try:
        directory = model_files.locate(spec, args.model_path, download=False)
    except EmbedderUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from None
    size_mb = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20
    print(
        f"{len(texts)} chunks of {collection} (mean {statistics.fmean(map(len, texts)):.0f} "
        f"characters); {os.cpu_count()} CPUs; model {args.model} from {directory} "
        f"({size_mb:.0f} MB on disk)",
        flush=True,
    )
    torch_directory = Path(args.torch_model_path) if args.torch_model_path else directory
    rows = [
        measure(f"{args.model} (onnxruntime)", lambda: model_files.load(args.model, directory), texts),
        measure(
            f"{args.model} (sentence-transformers, torch)",
            sentence_transformers_loader(torch_directory),
            texts,
        ),
        measure("wordllama-l2-supercat-256", lambda: embedders.WordLlamaEmbedder(), texts),
    ]
    ours = rows[0]
    reference = ours.get("sample")
    print(
        f"{'embedder':<48}{'chunks/s':>10}{'q p50 ms':>10}{'q p95 ms':>10}{'memory MB':>11}"
        f"{'load s':>8}{'min cos':>9}"
    )
    for row in rows:
        if "error" in row:
            print(f"{row['label']:<48}  {row['error']}")
            continue
        sample = row.pop("sample")
        if reference is not None and sample.shape == reference.shape:
            row["min_cosine_to_ours"] = float(np.min(np.sum(sample * reference, axis=1)))
        agreement = f"{row['min_cosine_to_ours']:>9.6f}" if "min_cosine_to_ours" in row else f"{'-':>9}"
        print(
            f"{row['label']:<48}{row['chunks_per_s']:>10.1f}{row['question_p50_ms']:>10.1f}"
            f"{row['question_p95_ms']:>10.1f}{row['memory_mb']:>11.0f}{row['load_s']:>8.1f}{agreement}"
        )
    torch_row = rows[1]
    if "error" not in ours and "error" not in torch_row:
        ratio = ours["chunks_per_s"] / torch_row["chunks_per_s"]
        verdict = "met" if ratio >= 1.0 else "NOT met"
        print(f"goal: at least as fast as sentence-transformers on torch: {ratio:.2f}x, {verdict}")
    if "error" not in ours:
        verdict = "met" if ours["question_p50_ms"] <= LATENCY_GOAL_MS else "NOT met"
        print(f"goal: one question p50 <= {LATENCY_GOAL_MS:.0f} ms: {verdict}")
    results = {
        "collection": collection,
        "texts": len(texts),
        "model": args.model,
        "model_dir": str(directory),
        "torch_model_dir": str(torch_directory),
        "model_size_mb": size_mb,
        "rows": rows,
    }
    print(f"results: {core.write_results('embed', results)}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``embed`` subcommand's options."""
    parser.add_argument("--model", default="all-minilm-l6-v2", choices=sorted(model_files.MODELS))
    parser.add_argument("--model-path", metavar="DIR", help="the model's folder (default: found as the library finds it)")
    parser.add_argument(
        "--torch-model-path",
        metavar="DIR",
        help="sentence-transformers folder with the PyTorch weights, for the torch row (default: --model-path's)",
    )
    parser.add_argument("--data", metavar="DIR", help="a BEIR collection (default ../shared/data/nfcorpus)")
    parser.add_argument("--texts", type=int, default=512, help="chunks to embed (default 512)")
