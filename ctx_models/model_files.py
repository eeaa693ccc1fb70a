"""The transformer models ``ctx`` embeds with, and where their files come from.

:data:`MODELS` names each model the way ``ctx`` writes it into
``embeddings.model``, with its vector length, pooling, maximum length and
Hugging Face repository. :func:`locate` finds a model's directory, in order:

1. an explicit path: the ``path`` argument (``--model-path``), else
   ``$CTX_MODELS_MODEL_PATH``, else ``[embedding] model_path`` in the ``ctx``
   config file given;
2. ``$CTX_MODELS_MODELS_DIR/<model>``, then ``ctx``'s model cache:
   ``$CTX_CACHE_DIR/models``, else ``$XDG_CACHE_HOME/ctx/models``, else
   ``~/.cache/ctx/models`` (and ``~/.cache/context-harness/models``, where
   ``ctx``'s pure-Rust path keeps them), as ``<model>/`` or in the Hugging Face
   layout;
3. fastembed's caches (``$FASTEMBED_CACHE_DIR``, ``./.fastembed_cache``,
   ``$FASTEMBED_CACHE_PATH``, ``<tmp>/fastembed_cache``) and the Hugging Face
   hub cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``), as ``models--<org>--<name>/snapshots/<rev>/``;
4. a download from the Hugging Face hub into ``ctx``'s cache, unless offline
   (``HF_HUB_OFFLINE=1`` or ``CTX_MODELS_OFFLINE=1``): then one line names the
   model, the files it needs and where to put them.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config_file import read_table
from .errors import EmbedderUnavailableError, ModelFilesError
from .onnx_embedder import OnnxEmbedder, find_onnx_file

__all__ = [
    "ModelSpec",
    "MODELS",
    "PATH_ENV",
    "MODELS_DIR_ENV",
    "OFFLINE_ENV",
    "locate",
    "load",
    "find_local",
    "ctx_cache_dirs",
    "offline",
    "model_path_from_config",
    "runtime_installed",
]

log = logging.getLogger(__name__)

#: A model directory to use (like ``--model-path``).
PATH_ENV = "CTX_MODELS_MODEL_PATH"
#: A folder holding one folder per model, named as the model.
MODELS_DIR_ENV = "CTX_MODELS_MODELS_DIR"
#: Set to 1 to forbid downloads (as ``HF_HUB_OFFLINE=1`` does).
OFFLINE_ENV = "CTX_MODELS_OFFLINE"


@dataclass(frozen=True)
class ModelSpec:
    """A model as ``ctx`` names it, and how it embeds.

    ``query_prefix`` and ``document_prefix`` are those of the model's card.
    They are recorded, not applied: ``ctx`` embeds questions and chunks as
    they are, and its stored vectors must stay comparable with ours.
    ``mirrors`` are other Hugging Face repositories with the same weights as
    ONNX (the ones fastembed downloads), looked for in the caches.
    """

    name: str
    repo: str
    dims: int
    pooling: str
    max_length: int
    query_prefix: str = ""
    document_prefix: str = ""
    mirrors: tuple[str, ...] = ()
    #: Files to download from ``repo``; those after the first two may be absent.
    files: tuple[str, ...] = (
        "onnx/model.onnx",
        "tokenizer.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
        "config.json",
    )
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def repos(self) -> tuple[str, ...]:
        return (self.repo, *self.mirrors)


_BGE_QUERY = "Represent this sentence for searching relevant passages: "

#: ctx's model names (``embeddings.model``). Lengths and pooling as sentence-transformers
#: uses them; nomic's 8,192-token context is capped at 512, fastembed's default, which
#: ``ctx`` runs it with (and which bounds memory: attention grows with the square).
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2", 384, "mean", 256,
            mirrors=("Qdrant/all-MiniLM-L6-v2-onnx",),
        ),
        ModelSpec(
            "bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", 384, "cls", 512, _BGE_QUERY,
            mirrors=("Xenova/bge-small-en-v1.5", "Qdrant/bge-small-en-v1.5-onnx-q"),
        ),
        ModelSpec(
            "bge-base-en-v1.5", "BAAI/bge-base-en-v1.5", 768, "cls", 512, _BGE_QUERY,
            mirrors=("Xenova/bge-base-en-v1.5", "Qdrant/bge-base-en-v1.5-onnx-q"),
        ),
        ModelSpec(
            "bge-large-en-v1.5", "BAAI/bge-large-en-v1.5", 1024, "cls", 512, _BGE_QUERY,
            mirrors=("Xenova/bge-large-en-v1.5", "Qdrant/bge-large-en-v1.5-onnx"),
        ),
        ModelSpec(
            "nomic-embed-text-v1", "nomic-ai/nomic-embed-text-v1", 768, "mean", 512,
            "search_query: ", "search_document: ",
        ),
        ModelSpec(
            "nomic-embed-text-v1.5", "nomic-ai/nomic-embed-text-v1.5", 768, "mean", 512,
            "search_query: ", "search_document: ",
        ),
        ModelSpec(
            "multilingual-e5-small", "intfloat/multilingual-e5-small", 384, "mean", 512,
            "query: ", "passage: ",
        ),
        ModelSpec(
            "multilingual-e5-base", "intfloat/multilingual-e5-base", 768, "mean", 512,
            "query: ", "passage: ",
        ),
        ModelSpec(
            "multilingual-e5-large", "intfloat/multilingual-e5-large", 1024, "mean", 512,
            "query: ", "passage: ", mirrors=("Qdrant/multilingual-e5-large-onnx",),
            # Past 2 GB an ONNX file keeps its weights beside it.
            files=(
                "onnx/model.onnx", "tokenizer.json", "onnx/model.onnx_data",
                "1_Pooling/config.json", "sentence_bert_config.json", "config.json",
            ),
        ),
    )
}


# --------------------------------------------------------------------------- places


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def offline(environ: Mapping[str, str] | None = None) -> bool:
    """True when downloads are off: ``HF_HUB_OFFLINE=1`` or ``CTX_MODELS_OFFLINE=1``."""
    env = os.environ if environ is None else environ
    return _truthy(env.get("HF_HUB_OFFLINE")) or _truthy(env.get(OFFLINE_ENV))


def ctx_cache_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """``ctx``'s model cache (where downloads go, first), then its older pure-Rust cache."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    if env.get("CTX_CACHE_DIR"):
        first = Path(env["CTX_CACHE_DIR"]).expanduser() / "models"
    elif env.get("XDG_CACHE_HOME"):
        first = Path(env["XDG_CACHE_HOME"]).expanduser() / "ctx" / "models"
    else:
        first = home / ".cache" / "ctx" / "models"
    return [first, home / ".cache" / "context-harness" / "models"]


def _hub_caches(env: Mapping[str, str]) -> list[Path]:
    """fastembed's caches, then the Hugging Face hub cache: each in the hub's layout."""
    home = Path(env.get("HOME") or Path.home())
    found = []
    if env.get("FASTEMBED_CACHE_DIR"):
        found.append(Path(env["FASTEMBED_CACHE_DIR"]).expanduser())
    found.append(Path(".fastembed_cache"))  # fastembed-rs' default, in the working directory
    if env.get("FASTEMBED_CACHE_PATH"):
        found.append(Path(env["FASTEMBED_CACHE_PATH"]).expanduser())
    found.append(Path(tempfile.gettempdir()) / "fastembed_cache")
    if env.get("HF_HUB_CACHE"):
        found.append(Path(env["HF_HUB_CACHE"]).expanduser())
    elif env.get("HF_HOME"):
        found.append(Path(env["HF_HOME"]).expanduser() / "hub")
    else:
        found.append(home / ".cache" / "huggingface" / "hub")
    return found


def _is_model_dir(directory: Path) -> bool:
    return find_onnx_file(directory) is not None and (directory / "tokenizer.json").is_file()


def _snapshots(cache: Path, repos: tuple[str, ...]) -> Iterator[Path]:
    """``models--org--name/snapshots/<rev>`` folders of ``repos`` (names matched ignoring case)."""
    wanted = {"models--" + repo.replace("/", "--").lower() for repo in repos}
    try:
        entries = [e for e in cache.iterdir() if e.name.lower() in wanted]
    except OSError:
        return
    for entry in sorted(entries):
        main = entry / "refs" / "main"
        try:
            revisions = [main.read_text().strip()] if main.is_file() else []
        except OSError:
            revisions = []
        snapshots = entry / "snapshots"
        try:
            revisions += sorted(p.name for p in snapshots.iterdir() if p.name not in revisions)
        except OSError:
            continue
        for revision in revisions:
            yield snapshots / revision


def _candidates(spec: ModelSpec, env: Mapping[str, str]) -> Iterator[Path]:
    """Every place the model's files may already be, in the order of the module docstring."""
    if env.get(MODELS_DIR_ENV):
        yield Path(env[MODELS_DIR_ENV]).expanduser() / spec.name
    for cache in ctx_cache_dirs(env):
        yield cache / spec.name
        yield from _snapshots(cache, spec.repos)
    for cache in _hub_caches(env):
        yield from _snapshots(cache, spec.repos)


def find_local(spec: ModelSpec, environ: Mapping[str, str] | None = None) -> Path | None:
    """The first directory on this machine that holds the model's files, or None (no network)."""
    env = os.environ if environ is None else environ
    for directory in _candidates(spec, env):
        if _is_model_dir(directory):
            return directory
    return None


def model_path_from_config(config_file: str | os.PathLike[str]) -> Path | None:
    """``[embedding] model_path`` of a TOML config (relative to the working directory), or None.

    Raises ConfigError when the file cannot be read or is not TOML.
    """
    _, section = read_table(config_file, "embedding")
    value = section.get("model_path")
    return Path(value).expanduser() if isinstance(value, str) and value.strip() else None


def _where_to_put(spec: ModelSpec, env: Mapping[str, str]) -> str:
    return (
        f"put model.onnx (or onnx/model.onnx) and tokenizer.json (with 1_Pooling/config.json "
        f"and sentence_bert_config.json) from https://huggingface.co/{spec.repo} in "
        f"{ctx_cache_dirs(env)[0] / spec.name}, or name their folder with --model-path DIR "
        f"or {PATH_ENV}"
    )


def locate(
    spec: ModelSpec,
    path: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    download: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The model's directory: explicit, cached, or downloaded (see the module's docstring)."""
    env = os.environ if environ is None else environ
    explicit = path if path is not None else env.get(PATH_ENV) or None
    if explicit is None and config is not None:
        explicit = model_path_from_config(config)
    if explicit is not None:
        return Path(explicit).expanduser()  # loading it reports what is missing
    found = find_local(spec, env)
    if found is not None:
        return found
    if not download or offline(env):
        why = "downloads are off (HF_HUB_OFFLINE or CTX_MODELS_OFFLINE)" if offline(env) else (
            "downloads are not allowed here"
        )
        raise ModelFilesError(
            f"model {spec.name} is not on this machine and {why}: {_where_to_put(spec, env)}"
        )
    return _download(spec, env)


# --------------------------------------------------------------------------- download


def _download(spec: ModelSpec, env: Mapping[str, str]) -> Path:
    """Download the model into ``ctx``'s cache: into a temporary folder, checked, then renamed.

    An interruption (Ctrl-C, a lost connection) leaves no partial model: the
    temporary folder is removed, and the model's folder appears only whole.
    """
    try:
        import huggingface_hub
    except ImportError:
        raise ModelFilesError(
            f"model {spec.name} is not on this machine and downloading it needs "
            f"huggingface_hub (pip install 'ctx-models[models]'); or {_where_to_put(spec, env)}"
        ) from None
    target = ctx_cache_dirs(env)[0] / spec.name
    if target.exists():
        # Not a whole model (find_local would have taken it), and not ours to delete.
        raise ModelFilesError(
            f"{target} exists but lacks model.onnx (or onnx/model.onnx) or tokenizer.json: "
            f"complete it, or remove it to download model {spec.name} again"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{spec.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise ModelFilesError(
            f"cannot write the model cache {target.parent} ({exc.strerror}); set CTX_CACHE_DIR "
            f"to a writable folder, or {_where_to_put(spec, env)}"
        ) from None
    endpoint = env.get("HF_ENDPOINT") or "https://huggingface.co"
    unreachable = _unreachable(endpoint)
    if unreachable:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelFilesError(
            f"model {spec.name} is not on this machine and {_redacted(endpoint)} cannot be "
            f"reached to download it ({unreachable}): {_where_to_put(spec, env)}"
        )
    log.warning("downloading model %s from the Hugging Face hub (%s) ...", spec.name, spec.repo)
    hub_log = logging.getLogger("huggingface_hub")
    hub_level = hub_log.level
    # Its retries log a warning each (twice over); our error says what failed, once.
    hub_log.setLevel(logging.ERROR)
    try:
        for number, name in enumerate(spec.files):
            try:
                huggingface_hub.hf_hub_download(
                    spec.repo,
                    name,
                    local_dir=partial,
                    endpoint=env.get("HF_ENDPOINT") or None,
                    tqdm_class=_progress_class(),
                )
            except Exception as exc:  # network, HTTP and hub errors alike
                absent = type(exc).__name__ in ("EntryNotFoundError", "RemoteEntryNotFoundError")
                if number >= 2 and absent:
                    continue  # an optional file this repository does not have
                raise ModelFilesError(
                    f"downloading {name} of model {spec.name} from {spec.repo} failed "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                    f"check the network, or {_where_to_put(spec, env)}"
                ) from None
        shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        OnnxEmbedder(partial, spec.name, spec.dims, pooling=spec.pooling, max_length=spec.max_length)
        try:
            partial.rename(target)
        except OSError:
            if not _is_model_dir(target):  # not another process's finished download
                raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        hub_log.setLevel(hub_level)
    shutil.rmtree(partial, ignore_errors=True)
    log.warning("model %s saved in %s", spec.name, target)
    return target


def _unreachable(endpoint: str, timeout: float = 5.0) -> str | None:
    """Why the hub's host cannot be reached, or None: a quick check before the download.

    Without it, huggingface_hub retries a dead network five times with backoff
    (about 25 s) before failing.
    """
    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return f"HF_ENDPOINT {endpoint!r} is not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def _redacted(endpoint: str) -> str:
    """The endpoint without any user or password in it."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _progress_class() -> Any:
    """tqdm on a terminal; a silent one otherwise (no bars in logs or pipes)."""
    from tqdm.auto import tqdm

    if sys.stderr.isatty():
        return tqdm

    class Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


# --------------------------------------------------------------------------- loading


def load(
    name: str,
    path: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> OnnxEmbedder:
    """The embedder of the registered model ``name``, from its located directory."""
    spec = MODELS.get(name)
    if spec is None:
        raise EmbedderUnavailableError(
            f"{name!r} is not one of ctx's models ({', '.join(MODELS)})"
        )
    directory = locate(spec, path, config=config, download=download)
    if directory.name in MODELS and directory.name != name:
        # Same-size models (bge-small and all-MiniLM are both 384) would load without a word.
        raise ModelFilesError(
            f"{directory} is named after model {directory.name}, not {name}: give the folder "
            f"of {name}'s files"
        )
    log.info("model %s from %s", name, directory)
    return OnnxEmbedder(
        directory, spec.name, spec.dims, pooling=spec.pooling, max_length=spec.max_length
    )


def runtime_installed() -> bool:
    """True when onnxruntime and tokenizers can be imported (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


def factory(name: str) -> Callable[[], OnnxEmbedder]:
    """What :func:`ctx_models.embedders.register_embedder` keeps for ``name``."""
    return lambda: load(name)

