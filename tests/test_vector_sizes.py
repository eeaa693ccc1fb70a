"""Each vector length's matrix is sized by its own count, not by the count of every vector.

Before, the first length seen got room for every row: one 4,096-dim vector among 19,999
of 256 reserved 20,000 x 4,096 floats, and under a memory limit the search failed naming
that group. No timing here: the tests record the matrices asked for.
"""

from __future__ import annotations

import sqlite3
import uuid

import numpy as np
import pytest

from ctx_models import search, store
from ctx_models.backends.sqlite import vectors
from ctx_models.errors import OutOfMemoryError

SMALL, BIG = 64, 1024  # dims: many small vectors, one (or a few) big ones
ROWS = 2_000


def _table(lengths: list[int]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE chunk_vectors (chunk_id TEXT PRIMARY KEY, document_id TEXT, embedding BLOB)")
    rng = np.random.default_rng(1)
    conn.executemany(
        "INSERT INTO chunk_vectors VALUES (?, ?, ?)",
        [(str(uuid.uuid4()), "d", rng.standard_normal(d).astype("<f4").tobytes()) for d in lengths],
    )
    return conn


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every (rows, dims) matrix the index asks memory for."""
    shapes: list[tuple[int, int]] = []
    real = vectors._new_matrix

    def recording(rows: int, dims: int) -> np.ndarray:
        shapes.append((rows, dims))
        return real(rows, dims)

    monkeypatch.setattr(vectors, "_new_matrix", recording)
    return shapes


PLACES = {
    "first": 0,
    "in the first slice": 3,
    "middle": ROWS // 2,
    "last": ROWS - 1,
}


@pytest.mark.parametrize("place", PLACES)
def test_one_big_vector_among_small_ones_reserves_one_row(asked, place: str) -> None:
    lengths = [SMALL] * ROWS
    lengths[PLACES[place]] = BIG
    groups = vectors._read_groups(_table(lengths))
    assert {d: g.matrix.shape for d, g in groups.items()} == {SMALL: (ROWS - 1, SMALL), BIG: (1, BIG)}
    # Never room for more big vectors than there are: at most the one row.
    assert [rows for rows, dims in asked if dims == BIG] == [1]
    assert all(rows <= ROWS for rows, dims in asked)


def test_the_first_slice_all_big_then_small_ones(asked) -> None:
    """The worst order: a whole first slice of big vectors makes room for every row at first."""
    big = vectors._SLICE_ROWS
    lengths = [BIG] * big + [SMALL] * (ROWS - big)
    groups = vectors._read_groups(_table(lengths))
    assert {d: g.matrix.shape for d, g in groups.items()} == {BIG: (big, BIG), SMALL: (ROWS - big, SMALL)}
    # Once the small ones show up, the big matrix is cut to its own count before more is added.
    assert asked[-1] != (ROWS, BIG) and (big, BIG) in asked
    assert [shape for shape in asked if shape[1] == SMALL] == [(ROWS - big, SMALL)]


def test_one_length_is_one_matrix_of_every_row(asked) -> None:
    groups = vectors._read_groups(_table([SMALL] * ROWS))
    assert asked == [(ROWS, SMALL)]
    assert groups[SMALL].matrix.shape == (ROWS, SMALL)


def test_under_a_memory_limit_the_odd_vector_does_not_fail_the_search(
    db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A budget that fits every small vector and the one big one, not room for every row of the big."""
    docs = [store.upsert_document("s", f"d{i}", "x", updated_at=1_767_225_600)[0] for i in range(3)]
    rng = np.random.default_rng(2)
    store.replace_chunks(docs[0].id, ["big one"], [rng.standard_normal(BIG)], "big-model")
    store.replace_chunks(docs[1].id, [f"small {i}" for i in range(300)], rng.standard_normal((300, SMALL)), "small")
    store.replace_chunks(docs[2].id, [f"more {i}" for i in range(300)], rng.standard_normal((300, SMALL)), "small")
    budget = 4 * (600 * SMALL + BIG) + 1
    real = vectors._new_matrix

    def limited(rows: int, dims: int) -> np.ndarray:
        if rows * dims * 4 > budget:
            raise OutOfMemoryError(f"refused {rows} x {dims}")
        return real(rows, dims)

    monkeypatch.setattr(vectors, "_new_matrix", limited)
    found = search.vector_search(rng.standard_normal(SMALL), limit=5)
    assert len(found) == 5
    assert len(search.vector_search(rng.standard_normal(BIG), limit=5)) == 1
