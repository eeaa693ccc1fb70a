"""The benchmarks behind ``scripts/bench.py``: one module per command, and what they share.

``core`` (paths, fresh databases, timing, results, the ingest floor) and ``corpora`` (the
collections and corpora measured on) are shared; ``ingest``, ``search`` (with ``keyword``),
``sync``, ``serve``, ``quality``, ``embed`` and ``backends`` are one command each; ``peers``
is sqlite-vec, measured beside ours. Imports run downwards only, no circle (tests/test_layers.py).
"""
