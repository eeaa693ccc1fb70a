"""A deterministic synthetic corpus for load tests and benchmarks.

Documents are made of paragraphs of 1,405 to about 1,420 bytes, so the
contract's chunker (2,800 bytes per chunk at the default 700 tokens) makes
exactly one chunk per paragraph: ``chunks_per_doc`` chunks per document.
Words follow a Zipf-like distribution over a vocabulary of real engineering
words followed by generated ones, so posting lists look like a real corpus's:
a few very common words, a long tail of rare ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SOURCES = (
    "synthetic:alpha",
    "synthetic:beta",
    "synthetic:gamma",
    "synthetic:delta",
    "synthetic:epsilon",
)
PARAGRAPH_BYTES = 1405
BASE_TIME = 1_735_689_600  # 2025-01-01T00:00:00Z

_COMMON = (
    "the of and to in a is for on that with as by this be are from at it an or was not we "
    "service database cluster replica primary latency request error deploy release config "
    "index query cache queue consumer producer partition leader follower timeout retry "
    "backup restore snapshot migration schema table column metric alert dashboard incident "
    "postmortem runbook oncall escalation rollback canary feature flag token secret "
    "certificate rotation kafka postgres redis nginx kubernetes pod node volume storage "
    "bucket region zone network packet dns load balancer throughput capacity budget cost "
    "search vector embedding chunk document keyword ranking score hybrid filter source "
    "pipeline build test flaky runner artifact image registry version upgrade patch"
).split()
_SYLLABLES = "ka lo re mi tu sa ne vo ri da pe zu gi ho ma te li ro na fe bu ki".split()


def vocabulary(size: int = 20_000) -> list[str]:
    """Real words first, then generated two-to-four-syllable words, all distinct."""
    words = list(dict.fromkeys(_COMMON))
    seen = set(words)
    n = len(_SYLLABLES)
    i = 0
    while len(words) < size:
        parts, value = [], i
        for _ in range(2 + i % 3):
            parts.append(_SYLLABLES[value % n])
            value //= n
        word = "".join(parts)
        if word not in seen:
            seen.add(word)
            words.append(word)
        i += 1
    return words


def _probabilities(size: int, exponent: float = 1.07) -> np.ndarray:
    weights = 1.0 / np.power(np.arange(size) + 2.7, exponent)
    return weights / weights.sum()


def synthetic_documents(
    count: int,
    *,
    seed: int = 0,
    chunks_per_doc: int = 10,
    vocabulary_size: int = 20_000,
    paragraph_bytes: int = PARAGRAPH_BYTES,
) -> Iterator[dict]:
    """Yield ``count`` ingest items (mappings for ``store.ingest_many``), the same for the same seed.

    Paragraphs are a little over ``paragraph_bytes``; chunking with ``max_tokens``
    below ``paragraph_bytes / 2`` tokens (the default 700 with the default size)
    gives one chunk per paragraph.
    """
    words = vocabulary(vocabulary_size)
    lengths = np.array([len(w.encode()) + 1 for w in words], dtype=np.int64)
    probabilities = _probabilities(len(words))
    rng = np.random.default_rng(seed)
    # Enough draws that a paragraph almost surely passes paragraph_bytes; redraw if not.
    per_paragraph = int(1.5 * paragraph_bytes / float(probabilities @ lengths)) + 32
    for start in range(0, count, 100):
        block = min(100, count - start)
        while True:
            draws = rng.choice(
                len(words), size=(block, chunks_per_doc, per_paragraph), p=probabilities
            )
            reach = np.cumsum(lengths[draws], axis=2) > paragraph_bytes
            if reach[..., -1].all():
                break
        # Each paragraph ends with the first word that takes it past paragraph_bytes.
        cuts = np.argmax(reach, axis=2) + 1
        for offset in range(block):
            number = start + offset
            paragraphs = [
                " ".join(map(words.__getitem__, row[:cut].tolist()))
                for row, cut in zip(draws[offset], cuts[offset])
            ]
            yield {
                "source": SOURCES[number % len(SOURCES)],
                "source_id": f"doc-{number:07d}",
                "title": f"Synthetic document {number}: {words[draws[offset][0][0]]} {words[draws[offset][0][1]]}",
                "body": "\n\n".join(paragraphs),
                "created_at": BASE_TIME + number * 60,
                "updated_at": BASE_TIME + number * 60,
                "metadata": {"synthetic": True, "seed": seed},
            }


def sample_queries(count: int, *, seed: int = 1, vocabulary_size: int = 20_000) -> list[str]:
    """Two-word queries of mid-frequency words (ranks 40 to 2,000), like a user's."""
    words = vocabulary(vocabulary_size)
    rng = np.random.default_rng(seed)
    picks = rng.integers(40, 2_000, size=(count, 2))
    return [f"{words[a]} {words[b]}" for a, b in picks]
