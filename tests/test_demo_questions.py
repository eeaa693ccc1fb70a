"""Search answers the labelled demo questions (ctx_models.demo.questions) with the default embedder.

The questions were written blind, from the documents, before any search ran;
each names the one document that answers it.
"""

from __future__ import annotations

import pytest

import ctx_models
from ctx_models import search
from ctx_models.demo.questions import QUESTIONS
from ctx_models.demo.seed import seed
from ctx_models.embedders import WordLlamaEmbedder, default_embedder

NONSENSE = ["xyzzyplugh", "qwxzvbnm flurbotz", "blorptangle zzyzx wubwub", "asdfghjkl"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    database = ctx_models.connect(tmp_path_factory.mktemp("demo") / "ctx.sqlite")
    ctx_models.run_migrations(database)
    seed()
    yield database
    database.close()


def _rank(question, **kwargs) -> int | None:
    results = search.hybrid_search(question.text, limit=10, **kwargs)
    found = [(r.source, r.source_id) for r in results]
    wanted = (question.source, question.source_id)
    return found.index(wanted) + 1 if wanted in found else None


def test_the_default_embedder_is_wordllama_with_the_test_extra():
    assert isinstance(default_embedder(), WordLlamaEmbedder)


def test_answering_document_in_the_top_3_for_most_questions(demo):
    assert len(QUESTIONS) >= 25
    ranks = {q.text: _rank(q) for q in QUESTIONS}
    in_top_3 = [text for text, rank in ranks.items() if rank is not None and rank <= 3]
    share = len(in_top_3) / len(QUESTIONS)
    missed = {text: rank for text, rank in ranks.items() if text not in in_top_3}
    assert share >= 0.8, f"{share:.0%} in the top 3; missed: {missed}"


def test_hybrid_answers_more_questions_than_either_signal(demo):
    def top_3(**kwargs):
        return sum(1 for q in QUESTIONS if (rank := _rank(q, **kwargs)) is not None and rank <= 3)

    hybrid, keyword, semantic = top_3(), top_3(mode="keyword"), top_3(mode="semantic")
    assert hybrid >= max(keyword, semantic), (hybrid, keyword, semantic)


def test_the_failover_question_finds_the_runbook_first(demo):
    (question,) = [q for q in QUESTIONS if q.text == "how do I promote a standby database"]
    assert _rank(question) == 1


@pytest.mark.parametrize("nonsense", NONSENSE)
def test_nonsense_words_return_nothing(demo, nonsense):
    results = search.hybrid_search(nonsense, explain=True)
    assert results == []
    assert results.why_empty.startswith("no chunk holds any word of the question")
    assert search.hybrid_search(nonsense, mode="keyword") == []
    assert search.keyword_search(nonsense) == []
