"""Where a model's files come from: explicit paths, ctx's, fastembed's and Hugging Face's caches,
and a download (against a stand-in for the hub: never the network) that is atomic and verified."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_models import make_model_dir

from ctx_models import config, embedders, model_files
from ctx_models.errors import ConfigError, ModelFilesError
from ctx_models.onnx_embedder import OnnxEmbedder

pytest.importorskip("onnx", reason="the tests build their ONNX graphs with onnx (the test extra)")

MINILM = model_files.MODELS["all-minilm-l6-v2"]
REAL_UNREACHABLE = model_files._unreachable


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty machine: a home of its own, no caches, no downloads unless a test allows them."""
    home = tmp_path / "home"
    home.mkdir()
    values = {"HOME": str(home), "CTX_MODELS_OFFLINE": "1"}
    for name in (
        "CTX_CACHE_DIR", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE",
        "FASTEMBED_CACHE_DIR", "FASTEMBED_CACHE_PATH", model_files.PATH_ENV, model_files.MODELS_DIR_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(model_files.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(embedders, "_LOADED", {})
    # The stand-in hub is in this process: the host check must not reach for the network.
    monkeypatch.setattr(model_files, "_unreachable", lambda endpoint: None)
    return home


@pytest.fixture(scope="module")
def tiny_minilm(tmp_path_factory):
    """A tiny model with all-minilm-l6-v2's vector length, so the registered check passes."""
    directory, _ = make_model_dir(tmp_path_factory.mktemp("tiny") / "model", dims=384)
    return directory


def _hub_layout(cache: Path, repo: str, model: Path, revision: str = "abc123") -> Path:
    snapshot = cache / ("models--" + repo.replace("/", "--")) / "snapshots" / revision
    shutil.copytree(model, snapshot)
    (cache / ("models--" + repo.replace("/", "--")) / "refs").mkdir()
    (cache / ("models--" + repo.replace("/", "--")) / "refs" / "main").write_text(revision)
    return snapshot


# --------------------------------------------------------------------------- local places


def test_offline_with_no_files_says_what_and_where_in_one_line(env):
    with pytest.raises(ModelFilesError) as caught:
        model_files.locate(MINILM)
    message = str(caught.value)
    assert "\n" not in message
    for part in (
        "model all-minilm-l6-v2 is not on this machine", "downloads are off", "model.onnx",
        "tokenizer.json", "huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        str(env / ".cache" / "ctx" / "models" / "all-minilm-l6-v2"), "--model-path",
    ):
        assert part in message


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "CTX_MODELS_OFFLINE"])
def test_either_switch_stops_a_download(env, monkeypatch, switch):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    monkeypatch.setenv(switch, "1")
    called = []
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: called.append(a))
    with pytest.raises(ModelFilesError, match="downloads are off"):
        model_files.locate(MINILM)
    assert called == []


def test_an_explicit_path_wins_and_is_not_second_guessed(env, tiny_minilm, monkeypatch, tmp_path):
    assert model_files.locate(MINILM, tiny_minilm) == tiny_minilm
    monkeypatch.setenv(model_files.PATH_ENV, str(tiny_minilm))
    assert model_files.locate(MINILM) == tiny_minilm
    with pytest.raises(ModelFilesError, match="does not exist"):
        model_files.load("all-minilm-l6-v2", tmp_path / "nowhere")


def test_the_config_file_s_model_path(env, tiny_minilm, tmp_path):
    config = tmp_path / "ctx.toml"
    config.write_text(f'[db]\npath = "x.sqlite"\n[embedding]\nmodel_path = "{tiny_minilm}"\n')
    assert model_files.locate(MINILM, config=config) == tiny_minilm


def test_a_config_file_that_cannot_be_read_is_said_not_ignored(env, tmp_path):
    # One reader for [db] and [embedding]: the same message, whichever table is read first.
    bad = tmp_path / "ctx.toml"
    bad.write_text("[embedding\nmodel_path = 1\n")
    for read in (lambda f: model_files.locate(MINILM, config=f), config.database_from_config):
        with pytest.raises(ConfigError, match="is not valid TOML"):
            read(bad)
        with pytest.raises(ConfigError, match="does not exist"):
            read(tmp_path / "missing.toml")


@pytest.mark.parametrize("variable", ["CTX_CACHE_DIR", "XDG_CACHE_HOME", None])
def test_ctx_s_cache(env, tiny_minilm, monkeypatch, tmp_path, variable):
    if variable == "CTX_CACHE_DIR":
        root = tmp_path / "ctxcache" / "models"
    elif variable == "XDG_CACHE_HOME":
        root = tmp_path / "xdg" / "ctx" / "models"
    else:
        root = env / ".cache" / "ctx" / "models"
    if variable:
        monkeypatch.setenv(variable, str(tmp_path / ("ctxcache" if variable == "CTX_CACHE_DIR" else "xdg")))
    shutil.copytree(tiny_minilm, root / "all-minilm-l6-v2")
    assert model_files.locate(MINILM) == root / "all-minilm-l6-v2"


def test_ctx_s_older_pure_rust_cache(env, tiny_minilm):
    target = env / ".cache" / "context-harness" / "models" / "all-minilm-l6-v2"
    shutil.copytree(tiny_minilm, target)
    assert model_files.locate(MINILM) == target


def test_the_hugging_face_hub_cache(env, tiny_minilm, monkeypatch, tmp_path):
    snapshot = _hub_layout(tmp_path / "hub", "sentence-transformers/all-MiniLM-L6-v2", tiny_minilm)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert model_files.locate(MINILM) == snapshot
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    shutil.move(tmp_path / "hub", tmp_path / "hub-moved")
    _hub_layout(tmp_path / "hub", "sentence-transformers/all-MiniLM-L6-v2", tiny_minilm)
    assert model_files.locate(MINILM) == snapshot


def test_fastembed_s_caches_and_its_lower_case_mirror_names(env, tiny_minilm, monkeypatch, tmp_path):
    snapshot = _hub_layout(tmp_path / "fe", "qdrant/all-minilm-l6-v2-onnx", tiny_minilm)
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "fe"))
    assert model_files.locate(MINILM) == snapshot
    monkeypatch.delenv("FASTEMBED_CACHE_PATH")
    snapshot = _hub_layout(tmp_path / ".fastembed_cache", "Qdrant/all-MiniLM-L6-v2-onnx", tiny_minilm)
    assert model_files.locate(MINILM) == snapshot.relative_to(tmp_path)


def test_an_incomplete_cache_entry_is_passed_over(env, tiny_minilm):
    target = env / ".cache" / "ctx" / "models" / "all-minilm-l6-v2"
    target.mkdir(parents=True)
    shutil.copy(tiny_minilm / "tokenizer.json", target)  # no model.onnx
    with pytest.raises(ModelFilesError, match="not on this machine"):
        model_files.locate(MINILM)


def test_the_registry_loads_ctx_s_names_from_the_caches(env, tiny_minilm, monkeypatch):
    monkeypatch.setenv(model_files.MODELS_DIR_ENV, str(tiny_minilm.parent))
    (tiny_minilm.parent / "all-minilm-l6-v2").exists() or shutil.copytree(
        tiny_minilm, tiny_minilm.parent / "all-minilm-l6-v2"
    )
    embedder = embedders.embedder_for_model("all-minilm-l6-v2")
    assert isinstance(embedder, OnnxEmbedder) and embedder.dims == 384
    assert set(model_files.MODELS) <= set(embedders.known_models())


def test_every_ctx_model_is_registered_with_its_size_and_pooling():
    sizes = {name: (spec.dims, spec.pooling) for name, spec in model_files.MODELS.items()}
    assert sizes == {
        "all-minilm-l6-v2": (384, "mean"),
        "bge-small-en-v1.5": (384, "cls"),
        "bge-base-en-v1.5": (768, "cls"),
        "bge-large-en-v1.5": (1024, "cls"),
        "nomic-embed-text-v1": (768, "mean"),
        "nomic-embed-text-v1.5": (768, "mean"),
        "multilingual-e5-small": (384, "mean"),
        "multilingual-e5-base": (768, "mean"),
        "multilingual-e5-large": (1024, "mean"),
    }
    assert MINILM.max_length == 256
    assert all(spec.max_length <= 512 for spec in model_files.MODELS.values())


def test_the_default_never_downloads(env, monkeypatch):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    monkeypatch.setattr(
        "huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("the default downloaded")
    )
    assert embedders.default_embedder().model != "all-minilm-l6-v2"


# --------------------------------------------------------------------------- download


class StandIn:
    """huggingface_hub.hf_hub_download serving files from a local folder (the 'hub')."""

    def __init__(self, served: Path, fail_on: str | None = None, exc: BaseException | None = None):
        self.served, self.fail_on, self.exc, self.asked = served, fail_on, exc, []

    def __call__(self, repo_id, filename, *, local_dir, tqdm_class=None, **kwargs):
        self.asked.append((repo_id, filename))
        if filename == self.fail_on:
            raise self.exc  # type: ignore[misc]
        source = self.served / filename
        if not source.is_file():
            from huggingface_hub.errors import EntryNotFoundError

            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        (Path(local_dir) / ".cache").mkdir(exist_ok=True)  # as huggingface_hub leaves it
        return str(target)


def _served(tiny_minilm: Path, tmp_path: Path) -> Path:
    """The tiny model laid out as the hub repository has it (onnx/model.onnx)."""
    served = tmp_path / "served"
    shutil.copytree(tiny_minilm, served)
    (served / "onnx").mkdir()
    shutil.move(served / "model.onnx", served / "onnx" / "model.onnx")
    return served


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_download_on_first_use_into_ctx_s_cache(env, tiny_minilm, monkeypatch, tmp_path):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    stand_in = StandIn(_served(tiny_minilm, tmp_path))
    monkeypatch.setattr("huggingface_hub.hf_hub_download", stand_in)
    directory = model_files.locate(MINILM)
    cache = env / ".cache" / "ctx" / "models"
    assert directory == cache / "all-minilm-l6-v2"
    assert _leftovers(cache) == ["all-minilm-l6-v2"]  # no temporary folder left
    assert (directory / "onnx" / "model.onnx").is_file() and not (directory / ".cache").exists()
    assert {repo for repo, _ in stand_in.asked} == {"sentence-transformers/all-MiniLM-L6-v2"}
    # sentence_bert_config.json and config.json are not served: optional, skipped
    assert [f for _, f in stand_in.asked][:2] == ["onnx/model.onnx", "tokenizer.json"]
    assert OnnxEmbedder(directory).dims == 384
    # the second use finds it: no second download
    stand_in.asked.clear()
    assert model_files.locate(MINILM) == directory and stand_in.asked == []


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), OSError("connection reset")])
def test_an_interrupted_download_leaves_nothing(env, tiny_minilm, monkeypatch, tmp_path, interruption):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    stand_in = StandIn(_served(tiny_minilm, tmp_path), fail_on="tokenizer.json", exc=interruption)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", stand_in)
    expected = KeyboardInterrupt if isinstance(interruption, KeyboardInterrupt) else ModelFilesError
    with pytest.raises(expected) as caught:
        model_files.locate(MINILM)
    if expected is ModelFilesError:
        message = str(caught.value)
        assert "downloading tokenizer.json of model all-minilm-l6-v2" in message
        assert "check the network" in message and "\n" not in message
    assert _leftovers(env / ".cache" / "ctx" / "models") == []


def test_a_download_that_fails_verification_is_not_kept(env, tiny_minilm, monkeypatch, tmp_path):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    served = _served(tiny_minilm, tmp_path)
    data = (served / "onnx" / "model.onnx").read_bytes()
    (served / "onnx" / "model.onnx").write_bytes(data[: len(data) // 3])
    monkeypatch.setattr("huggingface_hub.hf_hub_download", StandIn(served))
    with pytest.raises(ModelFilesError, match="does not load as an ONNX model"):
        model_files.locate(MINILM)
    assert _leftovers(env / ".cache" / "ctx" / "models") == []


def test_a_download_of_another_size_is_not_kept(env, monkeypatch, tmp_path):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    small, _ = make_model_dir(tmp_path / "small", dims=8)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", StandIn(_served(small, tmp_path)))
    with pytest.raises(ModelFilesError, match="outputs 8-dimension vectors, but all-minilm-l6-v2 has 384"):
        model_files.locate(MINILM)
    assert _leftovers(env / ".cache" / "ctx" / "models") == []


def test_an_unwritable_cache_is_our_error(env, tiny_minilm, monkeypatch, tmp_path):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CTX_CACHE_DIR", str(blocker))
    monkeypatch.setattr("huggingface_hub.hf_hub_download", StandIn(_served(tiny_minilm, tmp_path)))
    with pytest.raises(ModelFilesError, match="cannot write the model cache.*CTX_CACHE_DIR"):
        model_files.locate(MINILM)


def test_the_shared_model_s_absence_skips_and_under_ci_fails(monkeypatch, tmp_path):
    import shared_model

    monkeypatch.setenv("CTX_MODELS_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.delenv("CTX_MODELS_REQUIRE_SHARED", raising=False)
    with pytest.raises(pytest.skip.Exception, match=str(tmp_path / "no-shared" / "models")):
        shared_model.minilm_dir()
    monkeypatch.setenv("CTX_MODELS_REQUIRE_SHARED", "1")
    with pytest.raises(pytest.fail.Exception, match="is absent"):
        shared_model.minilm_dir()


def test_an_unreachable_hub_fails_fast_in_one_line_and_leaves_nothing(env, monkeypatch):
    """A real check against a port nothing listens on (no network involved)."""
    import socket

    monkeypatch.undo()  # the fixture's stand-in for the check, and its environment
    env_home = env
    monkeypatch.setenv("HOME", str(env_home))
    for name in ("CTX_MODELS_OFFLINE", "HF_HUB_OFFLINE", "CTX_CACHE_DIR", "XDG_CACHE_HOME", "HF_HUB_CACHE",
                 "HF_HOME", model_files.PATH_ENV, model_files.MODELS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(env_home / "hub"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://user:secret@127.0.0.1:{port}")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(ModelFilesError) as caught:
        model_files.locate(MINILM)
    message = str(caught.value)
    assert f"http://127.0.0.1:{port} cannot be reached" in message and "secret" not in message
    assert "\n" not in message and "--model-path" in message
    assert _leftovers(env_home / ".cache" / "ctx" / "models") == []


def test_seed_embed_and_search_take_a_model_path(env, tiny_minilm, tmp_path, capsys, monkeypatch):
    from ctx_models.cli import main

    monkeypatch.setattr(embedders, "_FACTORIES", dict(embedders._FACTORIES))
    named = tmp_path / "models" / "all-minilm-l6-v2"
    shutil.copytree(tiny_minilm, named)
    db = str(tmp_path / "s.sqlite")

    def run(*argv):
        code = main([*argv, "--db", db])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("seed", "--model", "all-minilm-l6-v2", "--model-path", str(named), "-q")
    assert code == 0 and "embedded with all-minilm-l6-v2" in out, err
    # the folder's name says which of ctx's models it is
    code, out, err = run("embed", "--model-path", str(named), "-q")
    assert (code, out.strip()) == (0, "embedded 0 chunk(s) with all-minilm-l6-v2"), err
    code, out, err = run("embed", "--model-path", str(tiny_minilm), "-q")
    assert code == 1 and out == "" and err.count("\n") == 1 and "--model NAME" in err
    code, out, err = run("search", "postgres failover", "--explain", "--model-path", str(named))
    assert code == 0 and "(model all-minilm-l6-v2)" in out, err
    code, out, err = run("search", "postgres failover", "--mode", "semantic", "--model-path", str(tmp_path / "none"))
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err


def test_download_over_http_from_a_local_stand_in_hub(env, tiny_minilm, monkeypatch, tmp_path):
    """huggingface_hub itself, pointed by HF_ENDPOINT at a server on 127.0.0.1: no network."""
    from hub_stand_in import HubStandIn

    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    # huggingface_hub reads HF_HUB_OFFLINE once, when imported (another test may have set it then)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(model_files, "_unreachable", REAL_UNREACHABLE)  # the real check, on 127.0.0.1
    with HubStandIn(_served(tiny_minilm, tmp_path)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        directory = model_files.locate(MINILM)
    assert directory == env / ".cache" / "ctx" / "models" / "all-minilm-l6-v2"
    assert (directory / "onnx" / "model.onnx").read_bytes() == (tiny_minilm / "model.onnx").read_bytes()
    asked = {path.split("/resolve/main/")[1] for method, path in hub.requests if "/resolve/" in path}
    assert {"onnx/model.onnx", "tokenizer.json"} <= asked
    assert all("/sentence-transformers/all-MiniLM-L6-v2/" in path for _, path in hub.requests if "/resolve/" in path)
    assert _leftovers(directory.parent) == ["all-minilm-l6-v2"]
    assert model_files.load("all-minilm-l6-v2").embed(["postgres failover"]).shape == (1, 384)



def test_a_folder_named_after_another_of_ctx_s_models_is_refused(env, tiny_minilm, tmp_path):
    named = tmp_path / "bge" / "all-minilm-l6-v2"
    shutil.copytree(tiny_minilm, named)
    with pytest.raises(ModelFilesError, match="named after model all-minilm-l6-v2, not bge-small-en-v1.5"):
        model_files.load("bge-small-en-v1.5", named)
    assert model_files.load("all-minilm-l6-v2", named).dims == 384


def test_an_incomplete_folder_in_the_cache_is_not_overwritten_by_a_download(env, tiny_minilm, monkeypatch, tmp_path):
    monkeypatch.delenv("CTX_MODELS_OFFLINE")
    target = env / ".cache" / "ctx" / "models" / "all-minilm-l6-v2"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", StandIn(_served(tiny_minilm, tmp_path)))
    with pytest.raises(ModelFilesError, match="exists but lacks model.onnx.*remove it"):
        model_files.locate(MINILM)
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert _leftovers(target.parent) == ["all-minilm-l6-v2"]
