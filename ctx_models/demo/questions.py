"""Labelled questions for the hand-written demo corpus in ``ctx_models.demo.corpus``.

Each ``Question`` is something an employee of the fictional Northwind Labs might
type into a search box or ask a colleague, paired with the one document
(identified by its ``(source, source_id)`` pair) that a person would want to open
first to answer it.

How the set was written: blind, by reading the documents in ``corpus.py``,
before seeing any search results and without running any search code. The
questions are phrased the way people actually ask: natural language, often with
synonyms and paraphrases instead of the words the answering document uses, and
of mixed length. They were not tuned to what any search engine finds. Where
several documents discuss the same incident, the question was made specific
enough that one document is clearly the best answer (the runbook for procedures,
the postmortem for root causes, the ticket for ticket-specific facts, the
meeting notes for decisions taken in that meeting). No document answers more
than three questions.

What it is used for: a test that the answering document ranks in the top 3 for
each question, and ``scripts/bench.py quality --data demo``.
"""

from __future__ import annotations

from typing import NamedTuple


class Question(NamedTuple):
    """A question people ask, and the document that answers it."""

    text: str
    source: str
    source_id: str


_PG_RUNBOOK = "runbooks/postgres-failover.md"
_PG_POSTMORTEM = "docs/postmortems/2026-02-09-postgres-failover.md"

QUESTIONS: tuple[Question, ...] = (
    # filesystem:docs
    Question("how do I promote a standby database", "filesystem:docs", _PG_RUNBOOK),
    Question("which database host must never become the leader", "filesystem:docs", _PG_RUNBOOK),
    Question(
        "how long does it take to rebuild the old primary from scratch",
        "filesystem:docs",
        _PG_RUNBOOK,
    ),
    Question(
        "how do I see how far behind a consumer group is",
        "filesystem:docs",
        "runbooks/kafka-consumer-lag.md",
    ),
    Question(
        "is it ok to skip messages to catch up on lag",
        "filesystem:docs",
        "runbooks/kafka-consumer-lag.md",
    ),
    Question(
        "does running more indexer pods than partitions help",
        "filesystem:docs",
        "runbooks/kafka-consumer-lag.md",
    ),
    Question(
        "who will be my mentor as a new platform engineer",
        "filesystem:docs",
        "onboarding/platform-onboarding.md",
    ),
    Question(
        "when do new hires get ssh access to the database servers",
        "filesystem:docs",
        "onboarding/platform-onboarding.md",
    ),
    Question(
        "can I copy prod data to my laptop for testing",
        "filesystem:docs",
        "onboarding/platform-onboarding.md",
    ),
    Question(
        "check a certificate's expiry date",
        "filesystem:docs",
        "runbooks/tls-certificate-rotation.md",
    ),
    Question(
        "why did the partner api certificate nearly lapse in july",
        "filesystem:docs",
        "runbooks/tls-certificate-rotation.md",
    ),
    Question(
        "do I need to restart postgres after renewing its server cert",
        "filesystem:docs",
        "runbooks/tls-certificate-rotation.md",
    ),
    Question(
        "how long should the canary run before widening the rollout",
        "filesystem:docs",
        "process/release-checklist.md",
    ),
    Question(
        "are friday afternoon deploys allowed",
        "filesystem:docs",
        "process/release-checklist.md",
    ),
    Question(
        "how do I safely remove a column in a schema migration",
        "filesystem:docs",
        "process/release-checklist.md",
    ),
    Question(
        "what should I write when handing over the pager",
        "filesystem:docs",
        "oncall/handover-template.md",
    ),
    # git:platform
    Question(
        "how many requests per minute do free customers get",
        "git:platform",
        "docs/adr/0007-rate-limiting.md",
    ),
    Question(
        "what happens to api traffic if the throttling redis goes down",
        "git:platform",
        "docs/adr/0007-rate-limiting.md",
    ),
    Question(
        "why didn't we use envoy for api throttling",
        "git:platform",
        "docs/adr/0007-rate-limiting.md",
    ),
    Question(
        "why don't we use pgvector for internal doc search",
        "git:platform",
        "docs/adr/0011-hybrid-search.md",
    ),
    Question(
        "why did we pick that chunk size for ctx",
        "git:platform",
        "docs/adr/0011-hybrid-search.md",
    ),
    Question(
        "what happens to search if we switch to a different embedding model",
        "git:platform",
        "docs/adr/0011-hybrid-search.md",
    ),
    Question(
        "what caused the wal disk on the primary to fill up in february",
        "git:platform",
        _PG_POSTMORTEM,
    ),
    Question(
        "how many api requests failed during the february database outage",
        "git:platform",
        _PG_POSTMORTEM,
    ),
    Question(
        "did we lose any data when we switched over to replica-03",
        "git:platform",
        _PG_POSTMORTEM,
    ),
    Question(
        "fastest growing s3 bucket",
        "git:platform",
        "docs/capacity/2026-h2-s3-storage.md",
    ),
    Question(
        "monthly object storage bill",
        "git:platform",
        "docs/capacity/2026-h2-s3-storage.md",
    ),
    Question(
        "cost of reading all the archived vehicle positions after the glacier move",
        "git:platform",
        "docs/capacity/2026-h2-s3-storage.md",
    ),
    Question(
        "what should I do when a test only passes on retry",
        "git:platform",
        "docs/ci/quarantine-policy.md",
    ),
    Question(
        "how long can a flaky test stay muted",
        "git:platform",
        "docs/ci/quarantine-policy.md",
    ),
    # jira:ops
    Question("how was the stuck slot alert tested on staging", "jira:ops", "OPS-142"),
    Question("why does the debezium connector send heartbeats", "jira:ops", "OPS-142"),
    Question("when did enterprise tenants start getting throttled", "jira:ops", "OPS-157"),
    Question(
        "what happened to rate limiting during the redis maintenance in april",
        "jira:ops",
        "OPS-157",
    ),
    Question(
        "why was the concurrent route plan test failing intermittently",
        "jira:ops",
        "OPS-171",
    ),
    Question(
        "what was the real fix for the indexer falling behind after the may release",
        "jira:ops",
        "OPS-188",
    ),
    Question("how far behind did the events indexer get at its worst", "jira:ops", "OPS-188"),
    Question(
        "was the database the bottleneck during the kafka lag incident in may",
        "jira:ops",
        "OPS-188",
    ),
    Question(
        "what's the status of expiry rules for the ci build artifacts bucket",
        "jira:ops",
        "OPS-203",
    ),
    # notes:meetings
    Question(
        "debezium db password in plain text?",
        "notes:meetings",
        "2026-02-11-incident-review",
    ),
    Question(
        "who attended the review of the february postgres outage",
        "notes:meetings",
        "2026-02-11-incident-review",
    ),
    Question(
        "who proposed moving on-call handover to tuesdays",
        "notes:meetings",
        "2026-04-02-platform-weekly",
    ),
    Question(
        "how much did ci retries drop after we started quarantining tests",
        "notes:meetings",
        "2026-04-02-platform-weekly",
    ),
    Question(
        "why did searching for hostnames with dashes throw an error",
        "notes:meetings",
        "2026-09-08-search-quality-sync",
    ),
    Question(
        "did changing the rrf k constant make any difference",
        "notes:meetings",
        "2026-09-08-search-quality-sync",
    ),
    Question(
        "why did chunks with just a section title score so high in keyword search",
        "notes:meetings",
        "2026-09-08-search-quality-sync",
    ),
    Question(
        "when is the postgres minor version upgrade scheduled",
        "notes:meetings",
        "2026-10-21-deploy-freeze-planning",
    ),
    Question(
        "who is organising the on-call rota for the holiday freeze",
        "notes:meetings",
        "2026-10-21-deploy-freeze-planning",
    ),
    Question(
        "can sales get a customer's rate limit raised during peak season",
        "notes:meetings",
        "2026-10-21-deploy-freeze-planning",
    ),
)
