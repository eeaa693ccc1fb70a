"""Reader process for test_concurrency: searches while a writer rewrites documents.

    reader.py --db PATH-OR-URL --source S --docs N --ops K --seed R

Prints ``ready`` once connected and waits for ``go``. Runs K operations, in
turn vector_search, keyword_search and hybrid_search, each inside one read
transaction in which it also checks, with plain SQL on the same snapshot,
every document the search returned: chunk indexes 0..n-1, every chunk of the
same version as the body and equal to chunk_text(body), one FTS row per chunk
with the chunk's text, one vector of the right length per chunk. Vector
results are compared with cosines computed from the snapshot's stored vectors,
so a stale in-memory vector index (SQLite's) shows up as a wrong score or a
vanished row. The read transaction is the backend's read snapshot: on
PostgreSQL one REPEATABLE READ transaction.
Prints ``first`` after the first operation. After the K operations it waits
for ``final V`` and checks that every document is at version V through all
three searches. Ends with one JSON line; exit status 0 only when no check
failed and nothing raised.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import traceback

import numpy as np
import workload

import ctx_models
from ctx_models import search
from ctx_models.backends import backend_for
from ctx_models.backends.sqlite.state import index_for
from ctx_models.chunking import chunk_text
from ctx_models.embedders import HashingEmbedder
from ctx_models.models import ChunkVector

VECTOR_K = 8
SNIPPET_CHARS = 240


class Violation(AssertionError):
    """A consistency check failed."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Violation(message)


class Reader:
    def __init__(self, db, source: str, docs: int, seed: int) -> None:
        self.db = db
        self.source = source
        self.docs = docs
        self.rng = random.Random(seed)
        self.embedder = HashingEmbedder(workload.DIMS)
        self.versions: set[int] = set()
        self.vector_versions: set[int] = set()
        self.documents_checked = 0

    def sql(self, query: str, params=()) -> list[tuple]:
        return self.db.execute_sql(query.replace("?", self.db.param), params).fetchall()

    @staticmethod
    def vector(stored) -> np.ndarray:
        """A stored vector (SQLite's BLOB, pgvector's value) as float32, as the store reads it."""
        return ChunkVector.embedding.python_value(stored)

    # ------------------------------------------------------------ per-document check

    def check_document(self, doc_id: str) -> int:
        """Check one document's rows in the current snapshot; returns its version."""
        row = self.sql(
            "SELECT source_id, body, metadata_json FROM documents WHERE id = ?", (doc_id,)
        )
        expect(len(row) == 1, f"search returned document {doc_id} that the snapshot lacks")
        source_id, body, metadata_json = row[0]
        version = workload.version_of(body)
        expect(version is not None, f"{source_id}: body has no version marker")
        expect(
            json.loads(metadata_json)["version"] == version,
            f"{source_id}: metadata version differs from body",
        )
        chunks = self.sql(
            "SELECT id, chunk_index, text, hash FROM chunks WHERE document_id = ? ORDER BY chunk_index",
            (doc_id,),
        )
        indexes = [c[1] for c in chunks]
        expect(
            indexes == list(range(len(chunks))),
            f"{source_id}: chunk indexes {indexes} are not 0..n-1",
        )
        texts = [c[2] for c in chunks]
        expect(
            texts == chunk_text(body, workload.MAX_TOKENS),
            f"{source_id}: chunks are not chunk_text(body) of v{version}: {[workload.version_of(t) for t in texts]}",
        )
        chunk_versions = {workload.version_of(t) for t in texts}
        expect(
            chunk_versions == {version},
            f"{source_id}: chunk versions {chunk_versions} != body version {version}",
        )
        fts = self.sql("SELECT chunk_id, text FROM chunks_fts WHERE document_id = ?", (doc_id,))
        expect(
            len(fts) == len(chunks), f"{source_id}: {len(fts)} FTS rows for {len(chunks)} chunks"
        )
        expect(
            dict(fts) == {c[0]: c[2] for c in chunks}, f"{source_id}: FTS rows differ from chunks"
        )
        vectors = [
            (cid, self.vector(embedding).size, digest, dims)
            for cid, embedding, digest, dims in self.sql(
                "SELECT v.chunk_id, v.embedding, e.hash, e.dims FROM chunk_vectors AS v "
                "JOIN embeddings AS e ON e.chunk_id = v.chunk_id WHERE v.document_id = ?",
                (doc_id,),
            )
        ]
        expect(
            sorted((cid, workload.DIMS, digest, workload.DIMS) for cid, _, _, digest in chunks)
            == sorted(vectors),
            f"{source_id}: vectors/embeddings do not match its chunks",
        )
        self.documents_checked += 1
        self.versions.add(version)
        return version

    # ------------------------------------------------------------ operations

    def query_vector(self, doc: int) -> np.ndarray:
        return self.embedder.embed([f"doc{doc:03d} part0 lorem ipsum"])[0]

    def vector_op(self, doc: int) -> None:
        query = self.query_vector(doc)
        results = search.vector_search(query, limit=VECTOR_K)
        # Every vector in this snapshot, scored here from the stored values.
        stored = self.sql("SELECT chunk_id, embedding FROM chunk_vectors")
        matrix = np.stack([self.vector(embedding) for _, embedding in stored])
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        cosines = {
            cid: float(s)
            for (cid, _), s in zip(stored, (matrix @ query) / np.where(norms > 0, norms, 1))
        }
        expect(
            len(results) == min(VECTOR_K, len(stored)),
            f"vector_search returned {len(results)} results; the snapshot has {len(stored)} vectors",
        )
        best = sorted(cosines.values(), reverse=True)[: len(results)]
        got = [r.score for r in results]
        expect(
            np.allclose(got, best, atol=1e-5),
            f"vector scores {got} != snapshot's best cosines {best}",
        )
        for r in results:
            expect(
                r.chunk_id in cosines,
                f"vector_search returned chunk {r.chunk_id} not in the snapshot",
            )
            expect(
                abs(cosines[r.chunk_id] - r.score) < 1e-5,
                f"score of {r.chunk_id} differs from its stored vector's",
            )
            text, document_id = self.sql(
                "SELECT text, document_id FROM chunks WHERE id = ?", (r.chunk_id,)
            )[0]
            expect(
                r.snippet == text[:SNIPPET_CHARS] and r.document_id == document_id,
                f"vector result {r.chunk_id} has a snippet or document of another snapshot",
            )
            version = self.check_document(r.document_id)
            expect(
                workload.version_of(r.snippet) == version,
                "vector snippet version differs from its document's",
            )
            self.vector_versions.add(version)

    def keyword_op(self, doc: int) -> None:
        results = search.keyword_search(f"doc{doc:03d}", limit=50)
        ids = self.sql(
            "SELECT c.id FROM chunks AS c JOIN documents AS d ON d.id = c.document_id "
            "WHERE d.source = ? AND d.source_id = ?",
            (self.source, f"doc{doc:03d}"),
        )
        expect(
            {r.chunk_id for r in results} == {i for (i,) in ids},
            f"keyword_search doc{doc:03d} found {len(results)} chunks, the snapshot has {len(ids)}",
        )
        for document_id in {r.document_id for r in results}:
            version = self.check_document(document_id)
            for r in results:
                expect(
                    workload.version_of(r.snippet) == version,
                    "keyword snippet from another version",
                )

    def hybrid_op(self, doc: int) -> None:
        query = f"doc{doc:03d} part1"
        results = search.hybrid_search(query, self.embedder.embed([query])[0], limit=5)
        expect(bool(results), f"hybrid_search {query!r} found nothing")
        for r in results:
            version = self.check_document(r.id)
            owner = self.sql("SELECT document_id FROM chunks WHERE id = ?", (r.chunk_id,))
            expect(
                owner == [(r.id,)],
                f"hybrid result chunk {r.chunk_id} is not a chunk of {r.id} in this snapshot",
            )
            snippet_version = workload.version_of(r.snippet)
            expect(snippet_version in (None, version), "hybrid snippet from another version")

    def run(self, number: int) -> str:
        kind = ("vector", "keyword", "hybrid")[number % 3]
        doc = self.rng.randrange(self.docs)
        with backend_for(self.db).read_snapshot():  # one snapshot for the search and its checks
            getattr(self, f"{kind}_op")(doc)
        return kind

    def final(self, version: int) -> None:
        """After the writer is done: every document, through every search, is at ``version``."""
        with backend_for(self.db).read_snapshot():
            for doc in range(self.docs):
                target = workload.paragraph(doc, version, 0)
                results = search.vector_search(self.embedder.embed([target])[0], limit=1)
                expect(
                    len(results) == 1 and results[0].snippet == target,
                    f"final vector_search for doc{doc:03d} v{version} found {results[:1]}",
                )
                expect(
                    self.check_document(results[0].document_id) == version, "final version not seen"
                )
                self.vector_versions.add(version)
                hits = search.keyword_search(f"doc{doc:03d}", limit=50)
                expect(
                    len(hits) == workload.paragraph_count(doc, version)
                    and {workload.version_of(h.snippet) for h in hits} == {version},
                    f"final keyword_search for doc{doc:03d} does not see v{version}",
                )
                found = search.hybrid_search(target, self.embedder.embed([target])[0], limit=3)
                expect(
                    found
                    and found[0].source_id == f"doc{doc:03d}"
                    and workload.version_of(found[0].snippet) == version,
                    f"final hybrid_search for doc{doc:03d} does not see v{version}",
                )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--docs", type=int, required=True)
    parser.add_argument("--ops", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    result = {
        "role": "reader",
        "ops": 0,
        "by_kind": {},
        "locked": 0,
        "violations": [],
        "errors": [],
    }

    def failed(where: str, exc: BaseException) -> None:
        if isinstance(exc, Violation):
            result["violations"].append(f"{where}: {exc}")
            return
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            result["locked"] += 1
        result["errors"].append(f"{where}: {exc!r}\n{traceback.format_exc()}")

    db = ctx_models.connect(args.db, create=False)
    reader = Reader(db, args.source, args.docs, args.seed)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        result["errors"].append("no go signal")
    else:
        for number in range(args.ops):
            try:
                kind = reader.run(number)
                result["ops"] += 1
                result["by_kind"][kind] = result["by_kind"].get(kind, 0) + 1
            except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
                failed(f"op {number}", exc)
            if number == 0:
                print("first", flush=True)
        line = sys.stdin.readline().split()
        try:
            if line[:1] != ["final"]:
                raise Violation(f"expected 'final VERSION', got {line}")
            reader.final(int(line[1]))
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the parent
            failed("final", exc)
    result.update(
        versions_seen=sorted(reader.versions),
        vector_versions_seen=sorted(reader.vector_versions),
        documents_checked=reader.documents_checked,
        # SQLite's in-memory vector index, rebuilt when other processes commit (PostgreSQL
        # searches in SQL and keeps no index of its own).
        index_builds=(
            index_for(db, db.connection()).builds if backend_for(db).name == "sqlite" else None
        ),
    )
    result["violations"] = result["violations"][:10]
    result["errors"] = result["errors"][:5]
    db.close()
    print(json.dumps(result), flush=True)
    return 0 if not (result["violations"] or result["errors"] or result["locked"]) else 1


if __name__ == "__main__":
    sys.exit(main())
