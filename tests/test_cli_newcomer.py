"""The command line as a new user meets it: where options go, help, messages that say what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctx_models import cli, search, store
from ctx_models.demo.seed import seed
from ctx_models.embedders import HashingEmbedder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def seeded(db, db_path: Path) -> Path:
    seed(embedder=HashingEmbedder(64))
    return db_path


def test_options_go_before_the_command_or_after_it(seeded: Path, run_cli) -> None:
    after = run_cli("stats", "--db", str(seeded))
    before = run_cli("--db", str(seeded), "stats")
    assert after[0] == before[0] == 0 and after[1] == before[1]
    verbose = run_cli("-v", "--db", str(seeded), "stats")
    assert verbose[0] == 0 and verbose[1] == after[1]
    assert run_cli("--db", str(seeded), "search", "failover", "--mode", "keyword")[0] == 0


def test_every_command_has_a_description_in_its_help(capsys) -> None:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) >= {"init", "seed", "stats", "export", "delete", "embed", "search", "check", "backup"}
    for name, sub in commands.items():
        assert sub.description and len(sub.description) > 30, name
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        out = capsys.readouterr().out
        assert sub.description.split()[0] in out, name


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "2026-04-11T09:00", "11/04/2026"])
def test_since_errors_speak_cli(seeded: Path, run_cli, since: str) -> None:
    code, out, err = run_cli("search", "failover", "--since", since, "--db", str(seeded))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "YYYY-MM-DD" in err or "zone" in err
    assert "datetime" not in err and "timezone.utc" not in err


def test_vector_only_snippets_end_at_a_word_boundary_with_an_ellipsis(db) -> None:
    embedder = HashingEmbedder(64)
    words = " ".join(f"word{n:03d}" for n in range(200))
    store.ingest("s", "long", words, embedder=embedder)
    (hit,) = search.vector_search(embedder.embed([words])[0])
    assert hit.snippet.endswith("...") and len(hit.snippet) <= 243
    assert words.startswith(hit.snippet[:-3]) and words[len(hit.snippet) - 3] == " "


def test_progress_bars_only_on_a_terminal(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "ctx_models", "seed", "--docs", "300", "--dims", "16",
         "--db", str(tmp_path / "p.sqlite")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # stderr is a pipe here: no bar


def test_embed_keeps_another_models_embeddings_unless_asked_to_replace(
    seeded: Path, run_cli, monkeypatch
) -> None:
    before = store.stats().models
    code, out, err = run_cli("embed", "--dims", "32", "--db", str(seeded))
    assert code == 0 and out.strip() == "embedded 0 chunk(s) with hashing-v1-32", err
    assert err.count("\n") == 1 and "kept the embeddings of other models (31 of hashing-v1-64)" in err
    assert "--replace" in err and store.stats().models == before
    code, out, err = run_cli("embed", "--dims", "32", "--replace", "--db", str(seeded))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "replaces existing embeddings (31 of hashing-v1-64)" in err and "--yes" in err
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = run_cli("embed", "--dims", "32", "--replace", "--db", str(seeded))
    assert (code, out.strip()) == (0, "nothing embedded")
    assert store.stats().models == before
    code, out, err = run_cli("embed", "--dims", "32", "--replace", "--yes", "--db", str(seeded))
    assert code == 0 and out.strip() == "embedded 31 chunk(s) with hashing-v1-32", err
    assert store.stats().models == {"hashing-v1-32": 31}
    code, out, err = run_cli("embed", "--dims", "32", "--db", str(seeded))
    assert (code, out.strip(), err) == (0, "embedded 0 chunk(s) with hashing-v1-32", "")


def test_embed_fills_chunks_no_model_has_embedded_beside_another_models(seeded: Path, run_cli) -> None:
    store.ingest("notes", "new", "a new note about kafka consumer lag")  # no embedding yet
    code, out, err = run_cli("embed", "--dims", "32", "--db", str(seeded))
    assert code == 0 and out.strip() == "embedded 1 chunk(s) with hashing-v1-32", err
    assert store.stats().models == {"hashing-v1-64": 31, "hashing-v1-32": 1}


def test_an_empty_result_says_why(db, db_path: Path, run_cli) -> None:
    store.ingest("notes", "a", "postgres failover notes")  # no embeddings yet
    code, out, _ = run_cli("search", "failover", "--mode", "semantic", "--db", str(db_path))
    assert code == 0 and out.startswith("no results: no chunk has an embedding yet; run `ctx-models embed`")
    code, out, _ = run_cli("search", "failover", "--source", "jira", "--db", str(db_path))
    assert code == 0 and "there is no source 'jira' (sources: notes)" in out
    code, out, err = run_cli("search", "failover", "--db", str(db_path))
    assert code == 0 and "postgres failover notes" in out
    assert "no chunk has an embedding yet" in err  # hybrid answers with keywords, and says why


def test_end_of_input_at_a_confirmation_is_a_no(seeded: Path, run_cli, monkeypatch) -> None:
    # Ctrl-D at "[y/N]" ended in "unexpected EOFError"; it answers no, as Enter does.
    def ctrl_d(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", ctrl_d)
    before = store.stats()
    code, out, err = run_cli("embed", "--dims", "32", "--replace", "--db", str(seeded))
    assert (code, out.strip(), err) == (0, "nothing embedded", ""), err
    source = before.sources[0].source
    code, out, err = run_cli("delete", "--source", source, "--db", str(seeded))
    assert (code, out.strip(), err) == (0, "nothing deleted", ""), err
    after = store.stats()
    assert (after.documents, after.models) == (before.documents, before.models)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--docs", "-1"), "--docs must be 0 or a positive integer"),
        (("--dims", "0"), "--dims must be from 1"),
        (("--batch-size", "0"), "--batch-size must be a positive integer"),
        (("--model", "no-such-model"), "no-such-model"),
    ],
)
def test_seed_with_a_bad_option_creates_no_database(tmp_path: Path, run_cli, options, message) -> None:
    db_path = tmp_path / "new.sqlite"
    code, out, err = run_cli("seed", *options, "--db", str(db_path))
    assert code != 0 and out == "" and message in err and err.count("\n") == 1, (out, err)
    assert not db_path.exists()
