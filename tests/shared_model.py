"""The real all-MiniLM-L6-v2 in ``<repository>/../shared/models`` (CI has it; a fresh clone does not).

``$CTX_MODELS_SHARED`` names another shared folder. Tests that need the model
skip, naming the folder, only when it is absent; under
``CTX_MODELS_REQUIRE_SHARED=1`` (set by ``.ci/run``) its absence fails them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("CTX_MODELS_SHARED") or ROOT.parent / "shared")


def minilm_dir() -> Path:
    """The model's folder, or a skip (a failure under CTX_MODELS_REQUIRE_SHARED=1) naming it."""
    directory = shared_dir() / "models" / "all-minilm-l6-v2"
    if not (directory / "model.onnx").is_file() or not (directory / "reference.jsonl").is_file():
        message = (
            f"the shared model folder {directory} (model.onnx, reference.jsonl) is absent; "
            "CI has it beside the clone, or set CTX_MODELS_SHARED"
        )
        if os.environ.get("CTX_MODELS_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return directory
