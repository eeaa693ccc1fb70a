"""The corpora the benchmarks run on, read or built: BEIR collections and the demo's labelled
questions (``quality``, ``embed``, English text for ``search`` and ``backends``), and the
synthetic search corpora (``search``, ``serve``), kept under --workdir and reused.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ctx_models
from ctx_models import store
from ctx_models.demo import synthetic
from ctx_models.demo.corpus import DOCUMENTS
from ctx_models.demo.questions import QUESTIONS
from ctx_models.demo.seed import demo_items
from ctx_models.demo.synthetic import BASE_TIME
from ctx_models.embedders import HashingEmbedder

from .core import DIMS, fresh

Qrels = dict[str, dict[str, int]]  # query id -> document id -> grade (> 0)


class CollectionError(Exception):
    """A collection that cannot be read: a missing file or a malformed line."""


@dataclass
class Collection:
    """Documents (id, title, body to ingest), judged queries in file order, and their qrels."""

    name: str
    documents: list[tuple[str, str | None, str]]
    queries: list[tuple[str, str]]
    qrels: Qrels


def _open_text(path: Path) -> IO[str]:
    """A text stream over a plain or gzipped file."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped, with the line of a bad one."""
    with _open_text(path) as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise CollectionError(f"{path}:{number}: not JSON ({exc})") from None


def read_qrels(path: Path) -> Qrels:
    """Judgments with a grade above 0 from a BEIR qrels TSV (header line first)."""
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            parts = line.rstrip("\r\n").split("\t")
            if (number == 1 and parts[0] == "query-id") or not line.strip():
                continue
            try:
                query_id, doc_id, grade = parts[0], parts[1], int(parts[2])
            except (IndexError, ValueError):
                raise CollectionError(f"{path}:{number}: expected query-id, corpus-id, score")
            if grade > 0:
                qrels.setdefault(query_id, {})[doc_id] = grade
    return qrels


def load_beir(directory: Path) -> Collection:
    """A BEIR collection from ``directory``; only queries with judgments are kept."""
    if not directory.is_dir():
        raise CollectionError(f"no collection directory {directory} (give a BEIR folder or demo)")
    corpus = next(
        (p for p in (directory / "corpus.jsonl", directory / "corpus.jsonl.gz") if p.is_file()),
        None,
    )
    queries_path, qrels_path = directory / "queries_test.jsonl", directory / "qrels_test.tsv"
    missing = [
        name
        for name, present in (
            ("corpus.jsonl[.gz]", corpus is not None),
            ("queries_test.jsonl", queries_path.is_file()),
            ("qrels_test.tsv", qrels_path.is_file()),
        )
        if not present
    ]
    if missing:
        raise CollectionError(f"{directory} is not a BEIR collection: no {', '.join(missing)}")
    assert corpus is not None
    documents = []
    for row in _jsonl(corpus):
        title, text = row.get("title") or "", row.get("text") or ""
        documents.append((str(row["_id"]), title or None, f"{title}\n\n{text}" if title else text))
    qrels = read_qrels(qrels_path)
    queries = [
        (str(row["_id"]), row["text"]) for row in _jsonl(queries_path) if str(row["_id"]) in qrels
    ]
    return Collection(directory.name, documents, queries, qrels)


def load_demo() -> Collection:
    """The demo corpus (bodies as ``demo_items`` stores them) and its labelled questions."""
    documents = [
        (f"{doc.source}/{doc.source_id}", doc.title or None, item["body"])
        for doc, item in zip(DOCUMENTS, demo_items(), strict=True)
    ]
    queries, qrels = [], {}
    for number, question in enumerate(QUESTIONS, 1):
        query_id = f"demo-{number}"
        queries.append((query_id, question.text))
        qrels[query_id] = {f"{question.source}/{question.source_id}": 1}
    return Collection("demo", documents, queries, qrels)


def load_collection(data: str) -> Collection:
    """``demo``, or the BEIR collection in the directory ``data``."""
    return load_demo() if data == "demo" else load_beir(Path(data))


CORPORA = {5_000: 500, 100_000: 10_000, 1_000_000: 100_000}  # chunks -> documents


def build_corpus(workdir: Path, chunks: int) -> Path:
    """A database of ``chunks`` synthetic chunks with hashing-embedder vectors (reused when present)."""
    path = workdir / f"search-{chunks}.sqlite"
    marker = path.with_suffix(".done")
    if path.exists() and marker.exists():
        return path
    docs = CORPORA[chunks]
    print(f"building the {chunks:,}-chunk corpus ({docs:,} documents) ...", flush=True)
    # The 1M corpus uses short chunks (about 300 bytes) to keep the file to a few GB.
    large = chunks >= 1_000_000
    db = ctx_models.connect(fresh(path))
    ctx_models.run_migrations(db)
    store.ingest_many(
        synthetic.synthetic_documents(
            docs, seed=11, paragraph_bytes=300 if large else synthetic.PARAGRAPH_BYTES
        ),
        embedder=HashingEmbedder(DIMS),
        max_tokens=100 if large else 700,
        progress=sys.stderr.isatty(),
    )
    db.close()
    marker.write_text("ok")
    return path


def english_sentences(text_dir: str | None) -> tuple[str, list[str]]:
    """Sentences of real English: a BEIR collection's texts, or the demo corpus's."""
    if text_dir is None:
        from ctx_models.demo.corpus import DOCUMENTS

        texts = [doc.body for doc in DOCUMENTS]
        name = "the demo corpus (small vocabulary: give --text DIR for a BEIR collection)"
    else:
        texts = [body for _, _, body in load_beir(Path(text_dir)).documents]
        name = Path(text_dir).name
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s) > 20]
    return name, sentences


def english_chunks(sentences: list[str], count: int, seed: int) -> Iterator[dict]:
    """Documents of one chunk each: sentences drawn at random until about 1,400 bytes."""
    rng = random.Random(seed)
    for number in range(count):
        parts, size = [], 0
        while size < 1_400:
            sentence = rng.choice(sentences)
            parts.append(sentence)
            size += len(sentence) + 1
        yield {
            "source": "english",
            "source_id": f"doc-{number:07d}",
            "body": " ".join(parts)[:2_700],
            "updated_at": BASE_TIME + number,
        }


def english_questions(sentences: list[str], count: int, seed: int) -> list[str]:
    """Questions of 8 to 20 words, cut from sentences: English's word frequencies, stopwords and all."""
    rng = random.Random(seed)
    questions: list[str] = []
    while len(questions) < count:
        found = re.findall(r"\w+", rng.choice(sentences))
        if len(found) >= 8:
            questions.append(" ".join(found[: rng.randint(8, 20)]))
    return questions
