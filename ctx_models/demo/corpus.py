"""Hand-written demo documents that `ctx-models seed` loads into a database.

The documents describe a fictional company ("Northwind Labs") so that
keyword, semantic and hybrid search have something realistic to find.

Northwind Labs is invented for this demo. It sells "Northwind Dispatch", a
route-planning API for delivery fleets, runs in one AWS region (eu-central-1)
and has offices in Zurich and Lisbon. All people, hostnames, tenants, tickets
and URLs are fictional; URLs use the reserved example.com / .example domains.

Recurring threads, so that searches find related documents across sources:

* the 2026-02-09 Postgres primary failover (runbook, postmortem, OPS-142,
  incident review, weekly notes);
* API rate limiting (ADR 0007, OPS-157, weekly notes, freeze planning);
* the 2026-05-19 Kafka consumer lag incident (runbook, OPS-188);
* TLS certificate rotation (runbook, freeze planning);
* the ctx search service itself: chunking, BM25, vector and hybrid search
  (ADR 0011, search quality sync);
* deploy freezes, on-call handover, S3 storage cost, a flaky CI pipeline.

Importing this module only defines ``DemoDocument`` and ``DOCUMENTS``.
``_validate()`` checks the corpus invariants; it is not run on import.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoDocument:
    source: str  # connector label, e.g. "filesystem:docs"
    source_id: str  # id inside the source: a relative path, a ticket key, a commit path
    title: str
    author: str
    updated_at: str  # ISO 8601 UTC, e.g. "2026-03-14T09:30:00Z"
    body: str  # plain text / light markdown; paragraphs separated by one blank line
    source_url: str | None = None
    metadata: dict = field(default_factory=dict)  # small JSON-serialisable dict


def _t(text: str) -> str:
    """Dedent a triple-quoted body and strip surrounding blank lines."""
    return textwrap.dedent(text).strip()


_GIT = "https://git.example.com/platform/blob/main/"
_JIRA = "https://jira.example.com/browse/"
_DOCS = "file:///srv/northwind/docs/"


# ---------------------------------------------------------------------------
# filesystem:docs -- runbooks, onboarding and process docs from the docs share
# ---------------------------------------------------------------------------

_POSTGRES_FAILOVER_RUNBOOK = _t("""
# Runbook: Postgres primary failover

Owner: Database Reliability (Mei Tanaka). Rewritten on 2026-02-20 after the 2026-02-09 incident; see docs/postmortems/2026-02-09-postgres-failover.md in the platform repo and ticket OPS-142. This runbook covers the production cluster behind Northwind Dispatch: one primary and three replicas managed by Patroni, with etcd as the configuration store and PgBouncer in front of everything.

## Topology

- db-primary-01 (eu-central-1a): the leader under normal operation.
- db-replica-02 (eu-central-1b): streaming replica, preferred failover target.
- db-replica-03 (eu-central-1c): streaming replica, second failover target.
- db-replica-04 (eu-central-1a): reporting replica for analytics. It is tagged nofailover: true in Patroni and must never be promoted.
- etcd-01, etcd-02, etcd-03: the Patroni DCS. Losing one is fine; losing two freezes leader elections.
- pgb-01, pgb-02: PgBouncer in transaction pooling mode.

Applications never connect to a database host directly. They connect to pgbouncer.internal:6432. PgBouncer resolves db-rw.internal, a DNS record that the Patroni on_role_change callback rewrites within about ten seconds of a promotion. Read-only traffic uses db-ro.internal, which points at replicas 02 and 03. Reporting tools use db-report.internal, which points only at db-replica-04.

## When to use this runbook

Use it when any of these page: PostgresPrimaryDown, PatroniNoLeader, PostgresDiskUsageCritical on the primary, PostgresReplicationSlotRetainedWAL on the primary, or ApiErrorRateHigh together with database errors in the edge-gw logs. If only a replica is unhealthy, do not fail over; follow runbooks/postgres-replica-rebuild.md instead.

## Step 1: Record the state of the cluster

SSH to any database host and run:

    patronictl -c /etc/patroni/patroni.yml list

The output shows each member with its role, state, timeline and lag in MB. Paste it into the incident channel before you change anything. The incident commander needs it now and the postmortem will need it later. If Patroni has already failed over on its own and the new leader looks healthy, skip to Step 5.

## Step 2: Find out why the primary is unhealthy

Most of our primary outages have been resource exhaustion rather than lost hardware. Check in this order:

1. Disk. Run df -h /var/lib/postgresql and du -sh /var/lib/postgresql/15/main/pg_wal. A full WAL volume means Postgres cannot write and will PANIC and restart in a loop.
2. Replication slots. Run SELECT slot_name, active, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) AS retained FROM pg_replication_slots; An inactive slot retaining tens of gigabytes is the usual culprit. On 2026-02-09 the debezium_analytics slot held 212 GB.
3. Connections. Compare SELECT count(*) FROM pg_stat_activity; with max_connections (500). PgBouncer keeps us far below that; if we are close, somebody is bypassing PgBouncer.
4. Host. Look at dmesg for OOM kills or I/O errors and at the EC2 status checks.

If the disk is full because of an inactive slot, you may drop the slot once the data on-call (Dmitri Volkov's team) confirms the consumer can be re-snapshotted: SELECT pg_drop_replication_slot('debezium_analytics'); WAL is released at the next checkpoint; force one with CHECKPOINT; if you are in a hurry. Never delete files from pg_wal by hand.

## Step 3: Fix in place or fail over

Fix in place if you can restore service in under ten minutes and the primary is otherwise healthy, for example when you dropped a stale slot and Postgres came back cleanly. Fail over if the host is gone, the disk cannot be freed quickly, or Postgres keeps crash-looping. When in doubt after fifteen minutes of user impact, fail over. A failover costs about 30 seconds of write errors; debugging a sick primary can cost an hour.

## Step 4: Choose a candidate and fail over manually

Patroni only fails over on its own when the leader key in etcd expires. If the Patroni agent on the primary is alive but Postgres is crash-looping, as happened on 2026-02-09, the agent keeps renewing the key and nothing happens automatically. You have to fail over by hand.

Pick the replica with the lowest lag from Step 1. Patroni will not promote a replica that is more than maximum_lag_on_failover behind (1 MB in our configuration) unless you force it. Never choose db-replica-04.

    patronictl -c /etc/patroni/patroni.yml failover --candidate db-replica-02 --force

If db-replica-02 is lagging, use db-replica-03. Replica 02 used to lag whenever a long reporting query paused WAL replay; since OPS-145 moved reporting to db-replica-04 this should not happen, but check anyway. Promoting a replica that is behind loses the transactions it has not replayed. That is an incident commander decision: write the lag in bytes into the channel before running the command.

## Step 5: Verify recovery

- patronictl list shows the new leader on a new timeline, and the other replicas streaming from it.
- dig +short db-rw.internal returns the new leader's address.
- In the PgBouncer admin console on pgb-01 and pgb-02 (psql -p 6432 -U pgbouncer pgbouncer), SHOW SERVERS; lists connections to the new leader only. If you still see the old address, run RECONNECT; and check again. On 2026-02-09 pgb-01 held stale connections for four minutes until someone did this.
- The Grafana dashboard "Dispatch API / Errors" shows the 5xx rate back under 0.5% within five minutes.
- Kafka Connect: the Debezium connector for analytics follows the leader through db-rw.internal, but it has to be restarted after a failover. Ask the data on-call to do it.

## Step 6: Bring the old primary back as a replica

Once service is restored, rejoin the old primary. If its data directory is intact, Patroni runs pg_rewind automatically when you start it. If the disk was full, free space first (drop the slot, restart Postgres), then let Patroni rejoin it. If pg_rewind fails, reinitialise it from the new leader:

    patronictl -c /etc/patroni/patroni.yml reinit postgres-prod db-primary-01

A full reinit of the current 1.4 TB data set takes about 90 minutes and puts read load on the leader, so avoid doing it during the European morning peak (06:00 to 10:00 UTC). We do not switch leadership back immediately; a planned switchover happens during business hours on the next working day with a heads-up in #platform.

## Step 7: Follow up

Open a ticket in the OPS project, link it from the incident channel, and book the incident review within two working days. Anything still unresolved at the end of your shift goes into the on-call handover note, under "Open incidents", with an owner.
""")

_KAFKA_LAG_RUNBOOK = _t("""
# Runbook: Kafka consumer lag

Owner: Data Platform (Dmitri Volkov). Updated after the 2026-05-19 incident, OPS-188.

The production Kafka cluster runs on kafka-01 to kafka-06. The busiest topic is dispatch.events.v2 (48 partitions, 7 days retention), which carries vehicle position updates and route-plan changes. The consumer groups that matter are dispatch-events-indexer (feeds live ETAs and the tracking map), billing-usage-aggregator and analytics-cdc-sink.

KafkaConsumerLagHigh pages when a group is more than 500,000 messages or 10 minutes behind for 10 minutes. Time lag is the number customers feel: ten minutes of lag on the indexer means ETAs on the tracking map are ten minutes stale.

## Diagnose

Describe the group from any broker:

    kafka-consumer-groups.sh --bootstrap-server kafka-01:9092 --describe --group dispatch-events-indexer

If lag is growing evenly on every partition, the consumers are too slow: look at processing time per batch and at the downstream dependency, which for the indexer is Postgres through PgBouncer. If lag is stuck on a few partitions, look for one stuck consumer or a poison message. If the CONSUMER-ID column keeps changing, the group is rebalancing in a loop; search the consumer logs for "Attempt to heartbeat failed since group is rebalancing" and for "consumer poll timeout has expired".

A rebalance loop almost always means a batch takes longer than max.poll.interval.ms (300 seconds for our services). The member is kicked out, the group rebalances, and the work starts again from the last commit. That is what happened on 2026-05-19, when a release raised max.poll.records from 500 to 2000.

## Mitigate

- Roll back the most recent consumer deploy if it happened in the last few hours.
- Scale out: kubectl -n data scale deploy/dispatch-events-indexer --replicas=24. More consumers than partitions (48) does nothing.
- Do not reset offsets or skip messages without the data on-call. Skipping position updates is acceptable for the tracking map, never for billing-usage-aggregator.

After recovery, watch kafka_consumergroup_rebalances_total for 30 minutes and add a note to the on-call handover.
""")

_ONBOARDING_GUIDE = _t("""
# Welcome to Platform Engineering at Northwind Labs

This guide is for engineers joining the platform group: SRE, database reliability, data platform, search and security engineering. It was last rewritten in October 2026 by Lena Vogel, with corrections from the October hires. If something here is wrong or out of date, fix it in the same week you noticed it. That is part of onboarding, not a distraction from it.

Northwind Labs builds Northwind Dispatch, a route-planning and tracking API used by delivery fleets. Our customers are logistics companies, grocery chains and a growing number of municipal services. Most of them integrate through our REST API and SDKs; some use the web dashboard. Everything runs in AWS eu-central-1 (Frankfurt). Engineering sits in two offices, Zürich and Lisbon, plus a handful of people working remotely across Europe.

## Your first day

Your manager will meet you at the office. In Zürich that is the fourth floor at Hardstrasse; in Lisbon it is the café on the ground floor of our building in Cais do Sodré, where the platform team has coffee every Tuesday at 10:30, right after on-call handover. You will be assigned an onboarding buddy. For most new platform engineers that is José Muñoz in Lisbon or Lena Vogel in Zürich. Your buddy is the person to ask the questions you think are too small for anybody else.

On day one you should get:

- A laptop with full-disk encryption already enabled. Do not disable it; the ctx search index and your Jira exports live on it.
- An SSO account, which gives you email, chat, Jira, Grafana and the Git server at git.example.com.
- Membership in the platform-eng group, which grants read access to the platform repository and the docs share.
- A hardware security key. Register it on the first day; you need it for production access later.

## Your first week

The first week is for reading and setting up, not for shipping. We do not expect a pull request before day four, and nobody will be surprised if your first one is a fix to this guide.

Read these, in this order:

1. The architecture overview in the platform repo: docs/architecture.md.
2. The ADRs in docs/adr. At minimum ADR 0007 (rate limiting at the edge gateway) and ADR 0011 (hybrid search for ctx), because both come up constantly.
3. The postmortem for the 2026-02-09 Postgres failover. It is the best single introduction to how our database, PgBouncer, Patroni and alerting fit together, and to how we talk about incidents.
4. The on-call handover template and the last four handover notes in the #oncall channel.
5. The release checklist in process/release-checklist.md.

Set up your development environment with the bootstrap script in the platform repo (scripts/bootstrap.sh). It installs the toolchain, a local Postgres 15 and a single-node Kafka in containers, and the ctx command-line tool. If bootstrap fails, tell your buddy and open a ticket in the OPS project with the label onboarding; we fix every failure somebody reports.

## Finding things: ctx

Our documentation lives in four places: runbooks and process docs on the docs share, design docs and ADRs in the platform Git repository, tickets in the Jira OPS project, and meeting notes in the notes system. Nobody remembers which document is where. ctx is a small local search tool that indexes all four into one SQLite database on your laptop. It does keyword search with BM25, semantic search with embeddings, and a hybrid of both, which is the default.

Run ctx sync once a day (it only re-indexes what changed) and then try queries like "how do I fail over the primary database", "OPS-142", "what are the rate limits for the Team plan" or "why did the indexer lag in May". Tom Okafor owns ctx; send him queries that return nonsense, since they go into the evaluation set.

## Access to production

Production access is earned in stages. In your first month you get read-only access to Grafana, logs and the Kubernetes clusters. After you have shadowed one on-call week and passed the access review with Aisha Karim from security, you get break-glass SSH access to database and Kafka hosts through the bastion, bastion.internal, with your hardware key. Every production session is recorded. This is not about trust; it is so that after an incident we can reconstruct exactly what was done, including by the most senior people.

Never copy production data to your laptop. If you need realistic data for a test, use the anonymised snapshots in the staging environment, refreshed every Sunday night.

## On-call

New engineers shadow one full on-call week in their second month and take a secondary shift in their third month. Primary on-call follows after that, when you and your manager agree you are ready. Shifts run Tuesday 10:00 to Tuesday 10:00 Central European Time, so that handover happens in office hours in both Zürich and Lisbon. Handover is a short call plus a written note using the handover template: open incidents, silenced alerts, risky changes planned for the week, and anything you are worried about.

Rules that surprise people:

- If you are paged and you are unsure, escalate. Paging the secondary or Mei Tanaka for a database question at three in the morning is expected, not a failure.
- The first message in an incident channel is the current state, not the theory.
- During a deploy freeze (the next one runs from 23 November to 4 December 2026), only fixes for active incidents ship, and they need approval from the incident commander and Sam Whitfield.

## Meetings worth attending

- Platform weekly, Thursdays 16:00 CET. Status, decisions, and the only place where priorities change.
- Incident reviews, scheduled within two working days of any SEV-1 or SEV-2. Anybody can attend; new engineers are especially welcome.
- Search quality sync, monthly, if you are curious about ctx.
- Lisbon café chats, Fridays, informal, in Portuguese and English. José usually brings pastéis de nata.

## Your first month, roughly

By the end of your first month you should have merged a few small changes, shadowed an on-call week, read the main runbooks (Postgres failover, Kafka consumer lag, TLS certificate rotation), attended one incident review, and written or corrected at least one document. Your manager will check in at day 30 and again at day 90. Welcome aboard; we are glad you are here.
""")

_TLS_RUNBOOK = _t("""
# Runbook: TLS certificate rotation

Owner: Security Engineering (Aisha Karim). Updated 2026-07-09 after the near miss with partner-api.northwind.example.

We have three kinds of certificates, and they renew in three different ways:

- Public certificates for api.northwind.example, partner-api.northwind.example and dashboard.northwind.example. Issued by Let's Encrypt through cert-manager in the prod-eu-1 Kubernetes cluster, using DNS-01 challenges. 90-day lifetime; cert-manager renews 30 days before expiry.
- Internal mTLS certificates between services, issued by Vault PKI (the pki_int mount) with a 30-day TTL and renewed by vault-agent sidecars.
- Postgres server certificates on db-primary-01 and the replicas, issued by Vault and renewed by a systemd timer (cert-renew.timer) every 60 days.

CertificateExpiringSoon fires at 14 days before expiry for any certificate the blackbox exporter probes, and pages at 7 days. If it fires at all, automatic renewal has already failed: treat it as a real problem, not noise.

## The 2026-07 near miss — what happened

On 2026-07-02 the alert fired for partner-api.northwind.example with six days left. DNS-01 challenges had been failing since 2026-06-11, when the DNS provider API token was rotated but the Kubernetes secret dns-provider-token in the cert-manager namespace was not updated. cert-manager logged the failures on every retry; nobody was watching. We updated the secret, renewed, and added the CertManagerChallengeFailing alert.

## Check a certificate

    echo | openssl s_client -connect partner-api.northwind.example:443 -servername partner-api.northwind.example 2>/dev/null | openssl x509 -noout -enddate -issuer

In Kubernetes: kubectl get certificates -A shows READY and the expiry for each certificate. For a failing one, kubectl -n edge describe certificate partner-api-tls, then follow the CertificateRequest, Order and Challenge objects it references.

## Renew manually

Fix the underlying problem first (usually credentials or a DNS record), then run cmctl renew -n edge partner-api-tls and watch the Challenge until it is valid. For Postgres, run sudo systemctl start cert-renew.service on the host and then SELECT pg_reload_conf(); — a reload is enough, no restart and no failover needed.

Do not rotate certificates during a deploy freeze unless one would expire before the freeze ends. Before each freeze, list everything expiring within 45 days and renew it early.
""")

_RELEASE_CHECKLIST = _t("""
# Release checklist

Owner: Sam Whitfield. Applies to every production deploy of edge-gw, the Dispatch API services and the event consumers. Updated 2026-11-03 with the Q4 freeze dates.

## Before the deploy

- The change has an approved pull request and green CI on the merge commit. A retried CI job counts as green only if the failing test is already on the quarantine list (docs/ci/quarantine-policy.md).
- Database migrations follow expand and contract: this release only adds columns, tables or indexes. Dropping or renaming happens in a later release once no running code uses the old shape. Indexes on large tables are created CONCURRENTLY.
- Risky behaviour sits behind a feature flag that is off by default, for example edge.ratelimit.enforce.
- Consumer changes that touch max.poll.records, batch sizes or timeouts need a second reviewer from data platform (see OPS-188).
- Check the freeze calendar. The 2026 Q4 deploy freeze runs from 23 November 00:00 UTC to 4 December 18:00 UTC.

## During the deploy

- Announce it in #deploys with the version and the rollback version.
- Canary at 5% for 30 minutes. Compare the 5xx rate, p99 latency and, for consumers, consumer lag against the baseline.
- Continue to 25%, 50% and 100%, with 10 minutes at each step.
- Do not deploy between 06:00 and 10:00 UTC on weekdays (the European morning peak) or after 16:00 on Fridays.

## After the deploy

- Watch the dashboards for 30 minutes after reaching 100%.
- Roll back first and investigate second if error rates rise. Rollback is argocd app rollback dispatch-api or turning off the feature flag.
- Mention anything unusual in the on-call handover note.
""")

_HANDOVER_TEMPLATE = _t("""
# On-call handover template

Copy this into #oncall at handover, Tuesdays 10:00 CET. Keep it short; link tickets instead of retelling them.

Outgoing / incoming:

Open incidents and their owners:

Alerts silenced, until when, and why:

Risky changes planned this week (migrations, failovers, certificate renewals, freeze exceptions):

Things I am worried about:

Alert routes checked this quarter? (added after the 2026-02-09 Postgres failover)
""")

# ---------------------------------------------------------------------------
# git:platform -- ADRs, postmortems and design notes in the platform repo
# ---------------------------------------------------------------------------

_ADR_0007_RATE_LIMITING = _t("""
# ADR 0007: Per-key rate limiting at the edge gateway

Status: Accepted on 2026-03-14. Deciders: Priya Raman, Sam Whitfield, Mei Tanaka, Aisha Karim. Tracking ticket: OPS-157.

## Context

The Dispatch API has no per-client request limits today. The only protection is a global connection cap on the load balancer. Twice in the first quarter of 2026 a single tenant's integration degraded the service for everybody:

- On 2026-01-15 tenant t-4821 shipped a retry loop without backoff against POST /v2/route-plans. Traffic from that one API key reached 12,000 requests per minute, about 40% of our total. The PgBouncer pool for the dispatch database (default_pool_size 80) saturated, and p99 latency for every tenant went from 180 ms to 4.2 seconds for 25 minutes.
- On 2026-03-02 a partner's nightly sync job paged through GET /v2/vehicles with a page size of 1, sending 3,000 requests per minute for two hours. Less harmful, but it exhausted the connection pools on the read replicas.

The 2026-02-09 Postgres failover taught us a third lesson: client retries amplify load during recovery. In the five minutes after db-replica-03 was promoted, retry traffic reached 2.6 times the normal write rate, and the new primary started its life under the heaviest write load of the week.

We need per-client limits that protect shared resources, are predictable and documented for customers, and are cheap to operate.

## Decision

We will enforce rate limits in edge-gw, our Go API gateway, per API key, using the generic cell rate algorithm (GCRA). Limiter state lives in a small dedicated Redis deployment: redis-rl-01 (primary) and redis-rl-02 (replica), managed by Redis Sentinel.

Limits by plan:

- Free: 60 requests per minute, burst 20.
- Team: 600 requests per minute, burst 200.
- Enterprise: 3,000 requests per minute, burst 1,000, adjustable per contract.
- Internal service keys: not rate limited by this mechanism, but still subject to the gateway's global concurrency limit.

Write requests (POST, PUT, PATCH and DELETE) cost two units; reads cost one. Route optimisation calls are expensive enough that they will probably get their own limit, but that is out of scope here.

When a request is rejected, edge-gw answers with HTTP 429, a Retry-After header in seconds, and the RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers from the IETF HTTP API working group draft. Every response carries the RateLimit headers, not only rejections, so that well-behaved clients can pace themselves before they hit the wall.

If Redis is unreachable, or slower than 5 ms at p99 over a 30-second window, edge-gw fails open. It logs the event, increments ratelimit_redis_failopen_total, and falls back to an in-memory limiter on each gateway instance set to the plan limit divided by the number of instances (six today). We prefer occasional over-admission to rejecting legitimate traffic because one of our own dependencies is sick.

## Why GCRA

GCRA is equivalent to a token bucket, but it stores a single value per key: the theoretical arrival time of the next request. One Redis key of roughly 60 bytes per active API key is enough, so at our 9,000 active keys the whole state is well under a megabyte. The check-and-update is a short Lua script run atomically with EVALSHA; in staging it takes 0.3 ms on average including the network round trip. Unlike fixed windows, GCRA has no spike at window boundaries, so a client cannot send twice its limit by straddling the start of a minute.

## Alternatives considered

Envoy's global rate limit service. It is mature and well understood, but we do not run Envoy at the edge. edge-gw is a Go service, and adopting Envoy only for rate limiting would add a proxy hop, a second configuration system and a new thing for on-call to learn. Rejected for now; we will revisit if we adopt a service mesh.

Per-instance in-memory limits only. No dependency at all, but the effective limit depends on how evenly the load balancer spreads a client's requests, and it changes every time we scale the gateway. A customer would see different limits on different days. We keep it only as the fail-open fallback.

Counters in Postgres. Rejected immediately: the main goal is to protect Postgres, and the 2026-01-15 incident started with PgBouncer saturation.

AWS WAF rate-based rules. WAF keys on IP addresses or on headers with coarse windows, and it cannot express per-plan limits without a rule per plan and a way to map keys to plans at the edge. Many customers also send traffic from a few shared NAT addresses. We will keep one WAF rule as a blunt backstop against abuse (20,000 requests per five minutes per IP), but it is not the customer-facing limit.

## Consequences

Customers with bursty integrations will see 429 responses. Customer success gets a short guide explaining the limits and how to request an Enterprise adjustment, and the public developer docs get examples of honouring Retry-After. Our SDKs for Python, TypeScript and Go retry with exponential backoff and jitter, and honour Retry-After, starting with SDK version 3.4.

The rate limit Redis becomes a tier-1 dependency with its own dashboards, alerts and a runbook (runbooks/redis-rate-limit.md, to be written before enforcement starts). Because edge-gw fails open, a Redis outage degrades protection but not availability.

Per-tenant overrides live in the tenant_config table and are cached by edge-gw for 60 seconds, so a change takes effect within a minute without a deploy.

We gain a new metric, ratelimit_decisions_total labelled by plan and decision. It is useful for capacity planning and, according to sales, for conversations about plan upgrades.

## Rollout

1. Shadow mode for two weeks: edge-gw evaluates every request and records would-be rejections in metrics and logs, but admits everything.
2. Review the shadow data. Contact every Enterprise tenant that would see more than 0.1% of requests rejected before enforcing anything for them.
3. Enforce for Free, then Team, then Enterprise, one week apart, never during a deploy freeze.
4. Rollback is the feature flag edge.ratelimit.enforce, which can be turned off per plan in under a minute.

## Open questions

Should GraphQL queries cost units by query complexity rather than per request? Deferred: GraphQL is 3% of traffic. Do we need per-endpoint limits for expensive operations such as POST /v2/route-plans/optimize? Probably, in a follow-up ADR once we have a few weeks of enforcement data.
""")

_ADR_0011_HYBRID_SEARCH = _t("""
# ADR 0011: Hybrid keyword and vector search for internal knowledge (ctx)

Status: Accepted on 2026-04-18. Deciders: Tom Okafor, Priya Raman, Lena Vogel. Reviewed by Aisha Karim for data handling.

## Context

Platform knowledge at Northwind Labs is spread across four systems: runbooks and process documents on the docs share, ADRs and postmortems in the platform Git repository, tickets in the Jira OPS project, and meeting notes in the notes system. Each has its own search, and none of them searches the others.

The cost showed up during the 2026-02-09 Postgres incident. The on-call engineer, Daniel Brooks, spent about six minutes looking for the failover procedure. The wiki search for "failover" returned twenty pages, most of them about an old MySQL setup, and the runbook itself was titled "Patroni operations". Ticket OPS-142 and the incident review both asked for something better. An informal survey in March found that engineers search for platform documents several times a day and give up roughly a third of the time.

We want one place to search all four sources, that works offline on a laptop, that handles both exact identifiers (OPS-142, db-primary-01, max_slot_wal_keep_size) and vague questions ("why did the primary run out of disk"), and that needs no new production infrastructure.

## Decision

We will build ctx, a local-first document store and search tool. It keeps everything in one SQLite database per user and combines keyword search (BM25 over SQLite FTS5) with vector search over embeddings, merged with reciprocal rank fusion.

## Data model

Connectors produce documents. A document has a source (a connector label such as jira:ops or git:platform), a source_id that is unique inside that source (a ticket key, or a path), a title, an author, an updated_at timestamp, a body and a small metadata object. The pair (source, source_id) identifies a document. Re-ingesting a document with the same content hash is a no-op; a changed document replaces its chunks and embeddings in one transaction.

Documents are split into chunks, and each chunk gets one embedding row per embedding model. The embedding row records the model name and the vector dimension, so that two models can coexist during a migration and a query never compares vectors from different models.

## Chunking

The chunker splits a body on blank lines into paragraphs and greedily joins consecutive paragraphs into chunks of at most 2,800 characters. A paragraph longer than that is split at sentence boundaries, and as a last resort at whitespace. There is no overlap between chunks in the first version.

2,800 characters is about 700 tokens of our English prose, comfortably inside the embedding model's input window even after we prepend the document title, which we do for the embedding input only, not for the stored chunk text. Smaller chunks made retrieval more precise in our tests but split runbook steps away from their context: a chunk containing only "Step 4" without the topology section above it is not much use. Larger chunks diluted the embeddings of long postmortems. We will revisit the size when we have a proper evaluation set.

## Keyword search

Chunks are indexed in an FTS5 virtual table using the unicode61 tokenizer with remove_diacritics 2, so that a search for Zurich also finds the spelling with an umlaut used in the onboarding guide. Ranking uses the built-in bm25() function with the default parameters (k1 = 1.2, b = 0.75) and the title column weighted three times the body. BM25 is excellent for identifiers, error messages and hostnames, which embeddings handle poorly, and it explains itself: a user can see which words matched.

## Vector search

A small sentence-embedding model runs locally on the CPU and produces 384-dimensional float32 vectors, stored as blobs next to the chunks. Queries are embedded with the same model, and we score every chunk with cosine similarity. Brute force is fast enough: 50,000 chunks take 77 MB and a query scores them in about 15 ms with numpy on a laptop. We will consider an approximate nearest neighbour index when a database passes 500,000 chunks, which is not on the horizon.

## Hybrid ranking

Hybrid search runs both queries, takes the top 50 chunks from each, and merges them with reciprocal rank fusion: each chunk scores the sum of 1 / (60 + rank) over the lists it appears in. RRF needs no score normalisation, which matters because BM25 scores and cosine similarities live on unrelated scales. Results are then collapsed to the best chunk per document, so one long postmortem cannot fill the whole first page.

On a pilot set of 60 questions taken from real on-call chat, recall at 10 was 0.72 for BM25 alone, 0.69 for vectors alone and 0.84 for hybrid. Hybrid is the default; both single modes remain available with --mode keyword and --mode semantic.

## Alternatives considered

A hosted vector database: rejected. It would put internal incident data with a third party, it needs network access, and it costs money for a few hundred megabytes of data. pgvector on our Postgres cluster: rejected. Internal tooling must not share a cluster with production, as 2026-02-09 reminded us. Elasticsearch or OpenSearch: capable, but far heavier to operate than the problem deserves, and not local-first.

## Consequences

Changing the embedding model means re-embedding everything: about 20 minutes for 40,000 chunks on a laptop CPU. Because embeddings carry the model name, the old ones keep working until the rebuild finishes. Deletions rely on connectors emitting tombstones; a document that silently disappears from its source stays in ctx until the next full sync.

Jira tickets and meeting notes can contain customer names. The index lives only on laptops with full-disk encryption, is never synced to shared storage, and the filesystem connector skips files matching *.pem, *.key and .env. Aisha Karim reviewed this design on 2026-04-15 and asked for an audit of connector ignore rules every quarter.
""")

_POSTMORTEM_POSTGRES = _t("""
# Postmortem: Postgres primary disk exhaustion and manual failover (2026-02-09)

Status: Final. Authors: Daniel Brooks and Mei Tanaka. Reviewed at the incident review on 2026-02-11. Severity: SEV-2.

## Summary

On Monday 2026-02-09, between 07:31 and 08:05 UTC, the Northwind Dispatch API returned elevated 5xx errors. At the peak, 41% of write requests and 12% of read requests failed. The production Postgres primary, db-primary-01, ran out of space on its WAL volume because an inactive logical replication slot, debezium_analytics, had been retaining WAL since 2026-01-28. Postgres stopped accepting writes and began crash-looping. Patroni did not fail over automatically, because the Patroni agent on db-primary-01 stayed healthy and kept renewing the leader key while it tried to restart Postgres. The on-call engineer failed over manually to db-replica-03 at 07:52, and service recovered by 08:05.

## Impact

- 34 minutes of degraded service for all tenants.
- About 18,400 failed API requests, of which roughly 11,000 were route-plan writes. Clients on our SDKs retried automatically. We found no evidence of permanent data loss.
- Three enterprise customers opened support tickets. Customer success sent an incident notice at 08:30.
- db-replica-03 was 96 KB behind the primary at promotion. The transactions in that gap had already failed at the client, so nothing acknowledged was lost.

## Timeline (UTC)

- 2026-01-28 14:10: Kafka Connect is upgraded. The Debezium connector for the analytics pipeline fails to start because a plugin path changed. Nobody notices: the connector failure alert routes to a chat channel that was archived in December.
- 2026-02-09 06:52: PostgresDiskUsageHigh (80%) fires for the WAL volume on db-primary-01. It is a ticket-level alert and does not page.
- 07:31: The WAL volume reaches 100%. Postgres logs PANIC: could not write to file "pg_wal/xlogtemp.48211": No space left on device, and the postmaster restarts in a loop.
- 07:33: ApiErrorRateHigh pages Daniel Brooks, primary on-call.
- 07:41: Daniel confirms the disk is full, opens the incident channel and pages Mei Tanaka as secondary.
- 07:44: patronictl list shows db-replica-02 lagging by 1.9 GB. A long-running reporting query on replica-02 had paused WAL replay; part of the reporting workload still pointed at replica-02 instead of db-replica-04. db-replica-03 is 96 KB behind.
- 07:48: Mei joins. Decision: fail over to db-replica-03 rather than fix in place, since freeing the disk requires confirming that the slot can be dropped.
- 07:52: patronictl failover --candidate db-replica-03 --force.
- 07:54: db-replica-03 is leader on timeline 14 and db-rw.internal is updated. PgBouncer on pgb-02 follows; pgb-01 keeps stale server connections until Daniel runs RECONNECT at 07:58.
- 08:05: The 5xx rate is back under 0.3%. The incident moves to monitoring.
- 08:22: Dmitri Volkov confirms the analytics connector can be re-snapshotted. The slot is dropped on db-primary-01 and 212 GB of WAL is released at the next checkpoint.
- 08:40: db-primary-01 rejoins as a replica via pg_rewind.
- 09:15: Incident closed. Leadership stays on db-replica-03 until a planned switchover on 2026-02-12.

## Root cause

A logical replication slot makes Postgres keep every WAL segment its consumer has not confirmed. When the Debezium connector stopped on 2026-01-28, its slot stayed behind, and WAL grew by about 18 GB per day on a 250 GB volume. We had not set max_slot_wal_keep_size, which would have invalidated the slot instead of filling the disk, and we had no alert on WAL retained per slot.

## Contributing factors

- Alert routing. The 80% disk alert did not page, and the connector failure alert went to an archived channel. Two separate signals existed for eleven days and reached nobody.
- Replica hygiene. Reporting queries still ran on db-replica-02 with max_standby_streaming_delay set to -1, so one slow query could stall replay indefinitely. That made our preferred failover candidate unusable at the worst moment.
- PgBouncer. pgb-01 did not drop its connections to the failed primary on its own, because server_lifetime was 3600 seconds and the crash-looping primary never closed the sockets cleanly.
- Documentation. The runbook, then titled "Patroni operations", only described automatic failover. It did not say how to choose a candidate or when to stop debugging and fail over. Daniel also needed about six minutes to find it at all.

## What went well

- The page reached the on-call engineer two minutes after user impact began.
- Choosing to fail over instead of debugging in place kept the outage short. Mei estimates an in-place fix would have taken another 20 to 30 minutes.
- The data team answered within minutes, and the slot drop was safe.

## Action items

- OPS-142 (P1, Mei Tanaka): alert when any replication slot retains more than 20 GB of WAL or is inactive for more than 30 minutes.
- OPS-143 (P1, Daniel Brooks): page on PostgresDiskUsageHigh at 85% on primaries, and audit all alert routes that point at archived channels.
- OPS-144 (P2, Mei Tanaka): set max_slot_wal_keep_size = 100GB on all production clusters and grow the WAL volume to 500 GB.
- OPS-145 (P2, Dmitri Volkov): move all reporting traffic to db-replica-04, and set max_standby_streaming_delay = 30s on replicas 02 and 03.
- OPS-146 (P3, Daniel Brooks): add a RECONNECT step to the runbook and lower PgBouncer server_lifetime to 600 seconds.
- Done on 2026-02-20: runbooks/postgres-failover.md rewritten to cover manual candidate selection and verification.

## Lessons

An alert that does not reach a person is not an alert. Alert routes will be reviewed every quarter as part of on-call handover, and any alert that fires twice without anybody acting on it will be either fixed or deleted. Separately, the difficulty of finding the runbook fed directly into the decision to build ctx (ADR 0011).
""")

_CAPACITY_S3 = _t("""
# Capacity plan: S3 storage, second half of 2026

Author: Priya Raman, with data from Lena Vogel and Dmitri Volkov. Written in August 2026 for the H2 budget review. Figures are from the AWS Cost Explorer and S3 Storage Lens exports for July 2026; prices are eu-central-1 list prices excluding our enterprise discount.

## Summary

S3 is now our third-largest infrastructure cost after EC2 instances and EBS volumes. We store 196 TB across four main buckets, growing about 6% per month, and pay roughly 4,800 USD per month for storage plus about 700 USD for requests. Without changes we reach about 260 TB and 6,400 USD per month by December. Four lifecycle changes bring December's storage bill down to about 3,000 USD per month without deleting anything we are required to keep.

## Where the bytes are

- nw-prod-events-archive: 118 TB. The S3 sink for dispatch.events.v2 and the other Kafka topics. Every vehicle position update since 2024 in compressed Parquet. Growing 7 TB per month, the fastest-growing bucket by far, since position updates per vehicle went from one per 30 seconds to one per 10 seconds in May.
- nw-prod-wal-archive: 41 TB. pgBackRest full backups and WAL archives for the production Postgres cluster. Retention is 35 days of point-in-time recovery plus monthly full backups kept for 13 months. WAL volume jumped in February, because WAL is archived as it is generated and the 212 GB of WAL retained by the debezium_analytics slot before the 2026-02-09 incident was archived as well. That has aged out.
- nw-ci-artifacts: 26 TB. Build outputs, container image layers exported for caching, and test reports. No lifecycle rule at all, which is why it has kept growing since 2023. Most objects were never read after the day they were written.
- nw-prod-exports: 11 TB. Customer-requested data exports, kept for 30 days by policy but in practice kept forever because the cleanup job broke in 2025.

The remaining 3 to 4 TB is spread across about forty small buckets and is not worth optimising.

## Cost model

At list prices S3 Standard costs about 0.0245 USD per GB-month in eu-central-1, Standard-Infrequent Access about 0.0135, Glacier Instant Retrieval about 0.005 and Glacier Deep Archive about 0.0018. Transitions cost money per object, so lifecycle rules pay off only for objects larger than roughly 128 KB that are kept for months. Our Parquet files average 180 MB and our WAL segments are 16 MB compressed to about 5 MB, so transitions are cheap for us. CI artifacts are a mix of large layers and many tiny reports; the tiny ones should expire, not transition.

## Proposal

1. nw-ci-artifacts: expire objects after 30 days, and after 7 days under the test-reports/ prefix. Keep release build outputs (prefix releases/) for 400 days in Standard-IA. Tracked in OPS-203. Saves about 520 USD per month immediately and stops the growth.
2. nw-prod-events-archive: transition to Glacier Instant Retrieval after 90 days. The analytics team queries recent data heavily and old data about once a quarter for model training; Instant Retrieval keeps millisecond access for those jobs. Saves about 2,400 USD per month by December. Dmitri Volkov confirmed that nothing in the analytics pipeline reads objects older than 60 days on a schedule.
3. nw-prod-exports: fix the cleanup job and add a 30-day expiry rule as a backstop, matching the documented policy. Saves about 250 USD per month, and, more importantly, we stop holding customer data longer than we promised. Aisha Karim asked for this independently of cost.
4. nw-prod-wal-archive: no change to retention, which is set by our recovery objectives. Move monthly full backups older than 90 days to Glacier Deep Archive. Saves about 300 USD per month. Restoring from those takes up to 12 hours, which is acceptable for backups that old.

## Risks

Glacier Instant Retrieval charges per GB retrieved. A careless full scan of the events archive would cost about 3,500 USD in retrieval fees. We will add a Cost Explorer anomaly alert on retrieval charges and tell the analytics team before the transition goes live.

Lifecycle rules apply to existing objects as soon as they are enabled. For the CI bucket, that means deleting about 21 TB on the first night. We will enable versioning for two weeks beforehand, so a mistaken rule can be undone, and we will not enable any rule during the Q4 deploy freeze (23 November to 4 December).

## Related capacity notes

The Postgres WAL volumes grew from 250 GB to 500 GB in March (OPS-144), and max_slot_wal_keep_size now caps what a stuck slot can retain. Kafka broker disks on kafka-01 to kafka-06 are at 61% with 7 days retention; at the current growth of position updates we need either larger volumes or tiered storage by the second quarter of 2027. That will be a separate note.

## Timeline

- August: approve this plan in the budget review. Enable versioning on nw-ci-artifacts.
- September: OPS-203 live. Fix the exports cleanup job.
- October: events archive transition, after the analytics team confirms their jobs.
- November: review the first full month of savings before the freeze.
""")

_CI_QUARANTINE = _t("""
# CI flaky test quarantine policy

Owner: Lena Vogel. Adopted on 2026-01-29 after OPS-171.

A test that fails and then passes on retry without code changes is flaky. When you see one, add it to ci/quarantine.txt in the same pull request with a ticket key, for example test_route_plan_concurrent_updates OPS-171. Quarantined tests still run, but their failures do not fail the pipeline; results go to the CI flakiness dashboard.

A quarantined test must be fixed or deleted within 14 days. The platform weekly reviews the list every Thursday. We never raise the global retry count to hide flakiness; it is fixed at one retry per job.
""")

# ---------------------------------------------------------------------------
# jira:ops -- tickets in the OPS project
# ---------------------------------------------------------------------------

_OPS_142 = _t("""
OPS-142: Alert on replication slots retaining WAL

Type: Task. Status: Done. Priority: P1. Assignee: Mei Tanaka. Reporter: Daniel Brooks. Labels: postgres, alerting, postmortem. Linked: postmortem 2026-02-09 (Postgres primary failover), OPS-144, OPS-145.

## Description

During the 2026-02-09 incident the WAL volume on db-primary-01 filled up because the logical replication slot debezium_analytics had been inactive since 2026-01-28 and retained 212 GB of WAL. We had no alert on slots at all; the first page came when the API was already failing.

Add alerts so that a stuck or abandoned slot pages someone long before the disk is at risk.

## Acceptance criteria

- postgres_exporter exposes retained WAL bytes and the active flag for every slot on every cluster.
- PostgresReplicationSlotRetainedWAL pages when a slot retains more than 20 GB for 10 minutes.
- PostgresReplicationSlotInactive opens a ticket when a slot is inactive for 30 minutes, and pages if it is on a primary and retains more than 50 GB.
- Both alerts link to runbooks/postgres-failover.md, Step 2.
- Tested on staging by pausing a real connector.

## Comments

Daniel Brooks, 2026-02-10: Filing this as P1 from the postmortem. Can we also get the slot name into the alert summary? At 07:40 I had no idea which consumer owned the slot.

Mei Tanaka, 2026-02-18: PR platform!412 adds a custom postgres_exporter query: pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) per slot, exported as pg_replication_slot_retained_bytes with slot_name and slot_type labels. Alert rules are in alerts/postgres.yml. Slot name is in the summary, and the description says which team owns each known slot.

Dmitri Volkov, 2026-02-19: On our side, the Debezium connector now sets heartbeat.interval.ms=10000 so the slot advances even when the captured tables are quiet. Otherwise your alert would fire every weekend.

Mei Tanaka, 2026-03-04: Tested on staging by pausing the connector: the ticket alert fired after 31 minutes, and the page fired once retained WAL passed 20 GB (we generated WAL with pgbench). Rolled out to production. max_slot_wal_keep_size is handled separately in OPS-144. Closing.
""")

_OPS_157 = _t("""
OPS-157: Roll out per-key rate limiting in edge-gw (ADR 0007)

Type: Epic. Status: Done. Priority: P2. Assignee: Priya Raman. Reporter: Priya Raman. Labels: edge-gw, rate-limiting, redis. Linked: ADR 0007.

## Description

Implement and roll out GCRA rate limiting per API key in edge-gw as described in docs/adr/0007-rate-limiting.md: Redis-backed state on redis-rl-01 and redis-rl-02, 429 responses with Retry-After and RateLimit headers, fail-open to in-memory limits, shadow mode first, then enforcement per plan behind the edge.ratelimit.enforce flag.

## Comments

Priya Raman, 2026-03-16: Shadow mode enabled in production. Dashboard "Edge / Rate limiting" shows would-be rejections per plan.

Priya Raman, 2026-03-31: Two weeks of shadow data. 14 tenants would have been limited at least once: 11 Free, 3 Team, no Enterprise. Tenant t-4821 would have been rejected on 22% of requests during a retry storm on 2026-03-24, which is exactly the case we built this for. Redis p99 for the Lua script is 0.4 ms. No fail-open events.

Sam Whitfield, 2026-04-01: Customer success has contacted the three Team tenants. Go ahead with enforcement for Free on 2026-04-07.

Priya Raman, 2026-04-14: Free enforced since 04-07 with no support tickets. Team enforced today.

Daniel Brooks, 2026-04-22: Heads-up for on-call: during planned maintenance on redis-rl-01 today, Sentinel failover took 9 seconds and edge-gw failed open as designed (ratelimit_redis_failopen_total rose by about 4,000). No customer impact. runbooks/redis-rate-limit.md now mentions that this counter moving is expected during Redis maintenance.

Priya Raman, 2026-04-29: Enterprise enforced on 04-21 with per-contract overrides for two tenants. Closing the epic. Per-endpoint limits for route optimisation will be a new ADR.
""")

_OPS_171 = _t("""
OPS-171: Flaky CI: test_route_plan_concurrent_updates fails about 8% of runs

Type: Bug. Status: Done. Priority: P2. Assignee: Lena Vogel. Reporter: Tom Okafor. Labels: ci, flaky-test.

The integration test fails with "expected version 3, got 2" on roughly one pipeline in twelve, and retries hide it. Cause: all test workers shared one Postgres container, and the test waited a fixed 200 ms for a trigger-driven update. Fixed by giving each worker its own schema and polling for the expected version with a 5 s timeout. 300 consecutive green runs since. Follow-up: the quarantine policy in docs/ci/quarantine-policy.md.
""")

_OPS_188 = _t("""
OPS-188: dispatch-events-indexer consumer lag of 4.2M messages after release 2026.05.19-2

Type: Incident. Status: Done. Priority: P1. Severity: SEV-2. Assignee: Dmitri Volkov. Reporter: Dmitri Volkov. Labels: kafka, consumer-lag, incident.

## Description

On 2026-05-19 the consumer group dispatch-events-indexer fell behind on dispatch.events.v2 after release 2026.05.19-2. Lag peaked at 4.2 million messages, roughly 95 minutes of time lag, around 13:40 UTC. Vehicle ETAs on the tracking map and in the ETA API were stale for up to an hour and a half; route planning itself was not affected.

The release raised max.poll.records from 500 to 2000 to improve throughput. Each record triggers an upsert into Postgres through PgBouncer, and at the afternoon peak a batch of 2000 took up to seven minutes, longer than max.poll.interval.ms (300 seconds). Consumers were evicted from the group, the eager assignor revoked every partition on each rebalance, and the group spent most of its time rebalancing instead of consuming.

## Timeline (UTC)

12:05 release rolled out to 100%. 12:31 KafkaConsumerLagHigh pages. 12:50 rebalance loop identified from "consumer poll timeout has expired" in the logs. 13:10 rollback to 2026.05.19-1 started; lag keeps growing while pods restart. 13:40 lag peaks at 4.2M. 14:35 lag under 100k with the group scaled to 48 consumers. 14:55 back to normal.

## Follow-ups

- Set max.poll.records back to 500 and make it a reviewed setting (see process/release-checklist.md).
- Switch partition.assignment.strategy to CooperativeStickyAssignor so a rebalance only moves the partitions that need to move.
- Alert on kafka_consumergroup_rebalances_total above 3 per 10 minutes.
- Rewrite runbooks/kafka-consumer-lag.md with the rebalance-loop diagnosis.

## Comments

Mei Tanaka, 2026-05-19: Postgres was fine throughout; PgBouncer pool for the indexer peaked at 60 of 80. The slow part was per-row upserts, not the database.

Dmitri Volkov, 2026-05-20: Batching upserts with INSERT ... ON CONFLICT over 500 rows at a time cut batch time from about 90 seconds to 6 seconds at the same load. That is the real fix; the poll settings are the safety net.

Dmitri Volkov, 2026-05-21: All follow-ups merged and deployed. Closing.
""")

_OPS_203 = _t("""
OPS-203: Lifecycle rules for nw-ci-artifacts

Type: Task. Status: In Progress. Priority: P3. Assignee: Lena Vogel. Reporter: Priya Raman. Labels: s3, cost, ci.

From the H2 storage plan: the CI artifacts bucket holds 26 TB with no lifecycle rules. Expire objects after 30 days, after 7 days under test-reports/, and move releases/ to Standard-IA for 400 days. Versioning enabled on 2026-08-20 as a safety net; rules go live once two weeks have passed. Expected savings about 520 USD per month. Must not be enabled during the Q4 freeze.
""")

# ---------------------------------------------------------------------------
# notes:meetings -- meeting notes
# ---------------------------------------------------------------------------

_MEETING_INCIDENT_REVIEW = _t("""
# Incident review: Postgres primary failover of 2026-02-09

Date: 2026-02-11, 15:00 to 15:50 UTC, meeting room Limmat plus video. Facilitator: Sam Whitfield. Notes: Priya Raman.

Attendees: Sam Whitfield, Mei Tanaka, Daniel Brooks, Priya Raman, Dmitri Volkov, Aisha Karim, Lena Vogel, Tom Okafor.

## Discussion

Daniel walked through the timeline from the draft postmortem. The WAL volume on db-primary-01 filled because the debezium_analytics slot had been inactive since the Kafka Connect upgrade on 2026-01-28. The disk alert fired at 06:52 but only as a ticket; the first page came at 07:33 from the API error rate. He failed over to db-replica-03 at 07:52 after Mei joined.

Mei explained why Patroni did not fail over on its own: the Patroni agent was healthy and kept the leader key while Postgres crash-looped. She also explained why db-replica-02 was not a candidate: it was 1.9 GB behind because a reporting query had paused replay.

Dmitri noted that the connector failure alert went to a channel archived in December, and that the data team did not know. Aisha asked whether the Kafka Connect configuration still stores the Debezium database password in plain text; it does, and she will open a separate security ticket. Tom pointed out that Daniel spent six minutes finding the runbook; several people agreed the wiki search is the real problem and not the runbook title.

## Decisions

- Set max_slot_wal_keep_size = 100GB in production. We accept that a broken CDC consumer will need a re-snapshot instead of threatening the primary.
- Reporting queries move to db-replica-04 only, by the end of February.
- Alert routes get a quarterly audit as part of the on-call handover.
- Tom will write up a proposal for cross-source search (became ADR 0011).

## Action items

- Mei: OPS-142 slot alerts, OPS-144 max_slot_wal_keep_size and 500 GB WAL volumes.
- Daniel: OPS-143 disk paging threshold and alert route audit, OPS-146 PgBouncer server_lifetime and RECONNECT step.
- Dmitri: OPS-145 reporting traffic to db-replica-04.
- Aisha: security ticket for Kafka Connect secrets.
- Mei and Daniel: rewrite the failover runbook by 2026-02-20.
""")

_MEETING_PLATFORM_WEEKLY = _t("""
# Platform weekly, 2026-04-02

Attendees: Sam Whitfield (chair), Priya Raman, Mei Tanaka, Daniel Brooks, Lena Vogel, Tom Okafor, Dmitri Volkov. Notes: Lena Vogel.

## Rate limiting (OPS-157)

Priya summarised two weeks of shadow mode: 14 tenants would have been limited, none of them Enterprise, and t-4821 would have been rejected on 22% of requests during its retry storm on 03-24. Customer success has spoken to the three Team tenants. Enforcement for Free starts 2026-04-07, Team a week later, Enterprise a week after that. Redis p99 is 0.4 ms. The runbook for redis-rl is written.

## Postgres follow-ups

Mei: OPS-142 (slot alerts) and OPS-144 (max_slot_wal_keep_size, 500 GB WAL volumes) are done. Dmitri: OPS-145 is done; all reporting traffic now uses db-report.internal, which points only at db-replica-04, and replicas 02 and 03 have max_standby_streaming_delay = 30s. Planned switchover back to db-primary-01 happened on 2026-02-12 without issues.

## CI

Lena: since OPS-171 and the quarantine policy, pipeline retries dropped from 11% to 3% of jobs. Two tests on the quarantine list, both with tickets and both under 14 days old.

## Search

Tom has a draft of ADR 0011 (hybrid search for ctx): SQLite, FTS5 with BM25, local embeddings, reciprocal rank fusion. Review on 2026-04-15; Aisha joins for data handling.

## On-call

Daniel proposed moving handover from Monday 09:00 to Tuesday 10:00 CET so Lisbon and Zurich overlap and nobody hands over straight after a weekend. Agreed, effective next week. Handover template gets a line about alert route audits.

## Decisions

- Rate limiting enforcement schedule as above.
- On-call handover moves to Tuesday 10:00 CET.

## Action items

- Priya: enforce Free plan 04-07, report at next weekly.
- Tom: circulate ADR 0011 draft by Friday.
- Daniel: update the handover template and the on-call calendar.
""")

_MEETING_SEARCH_SYNC = _t("""
# Search quality sync, 2026-09-08

Attendees: Tom Okafor, Lena Vogel, Priya Raman, Daniel Brooks, Mei Tanaka. Notes: Tom Okafor.

## Evaluation results

The evaluation set now has 120 queries: 60 from the original pilot, 40 collected from on-call chat since April, and 20 that people reported as bad results. Graded relevance, nDCG at 10:

- BM25 only: 0.61
- Vectors only: 0.58
- Hybrid with reciprocal rank fusion, k = 60: 0.71
- Hybrid with k = 20: 0.70 (no meaningful difference; we keep 60)

Hybrid wins clearly on vague questions ("why did the indexer fall behind in May" finds OPS-188 and the Kafka lag runbook). BM25 still wins on exact identifiers. Vectors alone are poor for ticket keys like OPS-142 and for hostnames.

## Problems found

Queries containing hyphens, such as db-primary-01 or dispatch-events-indexer, raised an FTS5 syntax error because the raw query string was passed to MATCH. Fixed in ctx 0.9.2 by quoting every query term as a phrase. The tokenizer still splits db-primary-01 into db, primary and 01, so phrase matching is what keeps those results precise.

Long documents with many chunks were crowding out short ones before we collapsed results per document. Since collapsing, short tickets like OPS-203 show up where they should.

Chunks that contain only a markdown heading and one line were getting high BM25 scores for title words. Mei suggested merging heading-only paragraphs with the next paragraph during chunking. Tom agreed.

## Decisions

- Keep RRF with k = 60 and the 2,800 character chunk limit.
- Add a source filter (--source jira:ops) and show source and updated date in results.
- Merge heading-only paragraphs into the following paragraph in the chunker.

## Action items

- Tom: chunker change, and rerun the evaluation before the October release.
- Lena: add the search evaluation to CI as a non-blocking job.
- Daniel: collect ten more on-call queries during his next shift.
""")

_MEETING_FREEZE_PLANNING = _t("""
# Deploy freeze planning, Q4 2026

Date: 2026-10-21, 15:00 to 15:45 UTC, Zürich and Lisbon plus video. Chair: Sam Whitfield. Notes: José Muñoz.

Attendees: Sam Whitfield, José Muñoz, Priya Raman, Mei Tanaka, Aisha Karim, Dmitri Volkov, Lena Vogel.

## Context

Late November to early December is peak season for our delivery customers; last year API traffic was 2.3 times the October average. The freeze protects that window.

## Decisions

- Freeze from 23 November 00:00 UTC to 4 December 18:00 UTC. Only fixes for active incidents ship, approved by the incident commander and Sam.
- Mei schedules the Postgres minor upgrade for 17 November, with a planned switchover to db-replica-02 — not during the freeze.
- Aisha renews every certificate expiring before 15 January ahead of the freeze, following the TLS rotation runbook.
- No rate limit changes during the freeze; Enterprise overrides requested by sales wait until 5 December.
- S3 lifecycle rules (OPS-203, events archive) go live before 20 November or after the freeze, never during.
- On-call is doubled during the freeze: a second primary in the Lisbon time zone.

## Action items

- Sam: announce the freeze in #engineering and update the release checklist.
- Mei: upgrade plan and switchover rehearsal on staging by 10 November.
- Aisha: certificate inventory by 6 November.
- José: on-call rota for the freeze, including the extra primary.
""")

# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------

DOCUMENTS: tuple[DemoDocument, ...] = (
    # filesystem:docs
    DemoDocument(
        source="filesystem:docs",
        source_id="runbooks/postgres-failover.md",
        title="Runbook: Postgres primary failover",
        author="Mei Tanaka",
        updated_at="2026-02-20T16:05:00Z",
        body=_POSTGRES_FAILOVER_RUNBOOK,
        source_url=_DOCS + "runbooks/postgres-failover.md",
        metadata={
            "tags": ["postgres", "patroni", "pgbouncer", "oncall", "failover"],
            "team": "database",
        },
    ),
    DemoDocument(
        source="filesystem:docs",
        source_id="runbooks/kafka-consumer-lag.md",
        title="Runbook: Kafka consumer lag",
        author="Dmitri Volkov",
        updated_at="2026-05-27T12:00:00Z",
        body=_KAFKA_LAG_RUNBOOK,
        source_url=_DOCS + "runbooks/kafka-consumer-lag.md",
        metadata={"tags": ["kafka", "consumer-lag", "oncall"], "team": "data-platform"},
    ),
    DemoDocument(
        source="filesystem:docs",
        source_id="onboarding/platform-onboarding.md",
        title="Welcome to Platform Engineering at Northwind Labs",
        author="Lena Vogel",
        updated_at="2026-10-06T08:20:00Z",
        body=_ONBOARDING_GUIDE,
        source_url=_DOCS + "onboarding/platform-onboarding.md",
        metadata={"tags": ["onboarding", "oncall", "ctx"], "team": "platform"},
    ),
    DemoDocument(
        source="filesystem:docs",
        source_id="runbooks/tls-certificate-rotation.md",
        title="Runbook: TLS certificate rotation",
        author="Aisha Karim",
        updated_at="2026-07-09T15:45:00Z",
        body=_TLS_RUNBOOK,
        source_url=None,
        metadata={"tags": ["tls", "cert-manager", "vault", "oncall"], "team": "security"},
    ),
    DemoDocument(
        source="filesystem:docs",
        source_id="process/release-checklist.md",
        title="Release checklist",
        author="Sam Whitfield",
        updated_at="2026-11-03T10:40:00Z",
        body=_RELEASE_CHECKLIST,
        source_url=_DOCS + "process/release-checklist.md",
        metadata={"tags": ["release", "deploy-freeze", "canary"], "team": "platform"},
    ),
    DemoDocument(
        source="filesystem:docs",
        source_id="oncall/handover-template.md",
        title="On-call handover template",
        author="Daniel Brooks",
        updated_at="2026-04-09T10:15:00Z",
        body=_HANDOVER_TEMPLATE,
        source_url=None,
        metadata={"tags": ["oncall", "handover", "template"], "team": "sre"},
    ),
    # git:platform
    DemoDocument(
        source="git:platform",
        source_id="docs/adr/0007-rate-limiting.md",
        title="ADR 0007: Per-key rate limiting at the edge gateway",
        author="Priya Raman",
        updated_at="2026-03-14T09:30:00Z",
        body=_ADR_0007_RATE_LIMITING,
        source_url=_GIT + "docs/adr/0007-rate-limiting.md",
        metadata={
            "tags": ["adr", "rate-limiting", "edge-gw", "redis"],
            "status": "Accepted",
            "team": "platform",
        },
    ),
    DemoDocument(
        source="git:platform",
        source_id="docs/adr/0011-hybrid-search.md",
        title="ADR 0011: Hybrid keyword and vector search for internal knowledge (ctx)",
        author="Tom Okafor",
        updated_at="2026-04-18T10:00:00Z",
        body=_ADR_0011_HYBRID_SEARCH,
        source_url=_GIT + "docs/adr/0011-hybrid-search.md",
        metadata={
            "tags": ["adr", "search", "bm25", "embeddings", "sqlite"],
            "status": "Accepted",
            "team": "search",
        },
    ),
    DemoDocument(
        source="git:platform",
        source_id="docs/postmortems/2026-02-09-postgres-failover.md",
        title="Postmortem: Postgres primary disk exhaustion and manual failover (2026-02-09)",
        author="Daniel Brooks",
        updated_at="2026-02-16T11:20:00Z",
        body=_POSTMORTEM_POSTGRES,
        source_url=_GIT + "docs/postmortems/2026-02-09-postgres-failover.md",
        metadata={
            "tags": ["postmortem", "postgres", "failover", "wal"],
            "severity": "SEV-2",
            "team": "database",
        },
    ),
    DemoDocument(
        source="git:platform",
        source_id="docs/capacity/2026-h2-s3-storage.md",
        title="Capacity plan: S3 storage, second half of 2026",
        author="Priya Raman",
        updated_at="2026-08-12T09:05:00Z",
        body=_CAPACITY_S3,
        source_url=_GIT + "docs/capacity/2026-h2-s3-storage.md",
        metadata={"tags": ["capacity", "s3", "cost", "lifecycle"], "team": "platform"},
    ),
    DemoDocument(
        source="git:platform",
        source_id="docs/ci/quarantine-policy.md",
        title="CI flaky test quarantine policy",
        author="Lena Vogel",
        updated_at="2026-01-29T09:00:00Z",
        body=_CI_QUARANTINE,
        source_url=_GIT + "docs/ci/quarantine-policy.md",
        metadata={"tags": ["ci", "flaky-test", "policy"], "team": "platform"},
    ),
    # jira:ops
    DemoDocument(
        source="jira:ops",
        source_id="OPS-142",
        title="Alert on replication slots retaining WAL",
        author="Daniel Brooks",
        updated_at="2026-03-04T08:45:00Z",
        body=_OPS_142,
        source_url=_JIRA + "OPS-142",
        metadata={
            "status": "Done",
            "priority": "P1",
            "assignee": "Mei Tanaka",
            "labels": ["postgres", "alerting"],
        },
    ),
    DemoDocument(
        source="jira:ops",
        source_id="OPS-157",
        title="Roll out per-key rate limiting in edge-gw (ADR 0007)",
        author="Priya Raman",
        updated_at="2026-04-29T17:25:00Z",
        body=_OPS_157,
        source_url=_JIRA + "OPS-157",
        metadata={
            "status": "Done",
            "priority": "P2",
            "assignee": "Priya Raman",
            "labels": ["edge-gw", "rate-limiting"],
        },
    ),
    DemoDocument(
        source="jira:ops",
        source_id="OPS-171",
        title="Flaky CI: test_route_plan_concurrent_updates fails about 8% of runs",
        author="Tom Okafor",
        updated_at="2026-01-22T14:40:00Z",
        body=_OPS_171,
        source_url=_JIRA + "OPS-171",
        metadata={
            "status": "Done",
            "priority": "P2",
            "assignee": "Lena Vogel",
            "labels": ["ci", "flaky-test"],
        },
    ),
    DemoDocument(
        source="jira:ops",
        source_id="OPS-188",
        title="dispatch-events-indexer consumer lag of 4.2M messages after release 2026.05.19-2",
        author="Dmitri Volkov",
        updated_at="2026-05-21T07:50:00Z",
        body=_OPS_188,
        source_url=_JIRA + "OPS-188",
        metadata={
            "status": "Done",
            "priority": "P1",
            "assignee": "Dmitri Volkov",
            "labels": ["kafka", "incident"],
        },
    ),
    DemoDocument(
        source="jira:ops",
        source_id="OPS-203",
        title="Lifecycle rules for nw-ci-artifacts",
        author="Priya Raman",
        updated_at="2026-08-25T11:30:00Z",
        body=_OPS_203,
        source_url=_JIRA + "OPS-203",
        metadata={
            "status": "In Progress",
            "priority": "P3",
            "assignee": "Lena Vogel",
            "labels": ["s3", "cost"],
        },
    ),
    # notes:meetings
    DemoDocument(
        source="notes:meetings",
        source_id="2026-02-11-incident-review",
        title="Incident review: Postgres primary failover of 2026-02-09",
        author="Priya Raman",
        updated_at="2026-02-11T15:55:00Z",
        body=_MEETING_INCIDENT_REVIEW,
        metadata={
            "kind": "incident-review",
            "tags": ["postgres", "failover"],
            "facilitator": "Sam Whitfield",
        },
    ),
    DemoDocument(
        source="notes:meetings",
        source_id="2026-04-02-platform-weekly",
        title="Platform weekly, 2026-04-02",
        author="Lena Vogel",
        updated_at="2026-04-02T16:50:00Z",
        body=_MEETING_PLATFORM_WEEKLY,
        metadata={
            "kind": "weekly",
            "tags": ["rate-limiting", "ci", "oncall"],
            "chair": "Sam Whitfield",
        },
    ),
    DemoDocument(
        source="notes:meetings",
        source_id="2026-09-08-search-quality-sync",
        title="Search quality sync, 2026-09-08",
        author="Tom Okafor",
        updated_at="2026-09-08T14:45:00Z",
        body=_MEETING_SEARCH_SYNC,
        metadata={"kind": "sync", "tags": ["search", "bm25", "evaluation"], "chair": "Tom Okafor"},
    ),
    DemoDocument(
        source="notes:meetings",
        source_id="2026-10-21-deploy-freeze-planning",
        title="Deploy freeze planning, Q4 2026",
        author="José Muñoz",
        updated_at="2026-10-21T15:50:00Z",
        body=_MEETING_FREEZE_PLANNING,
        metadata={
            "kind": "planning",
            "tags": ["deploy-freeze", "release"],
            "chair": "Sam Whitfield",
        },
    ),
)


def _validate(documents: tuple[DemoDocument, ...] = DOCUMENTS) -> None:
    """Check the corpus invariants. Not run on import; call it from a test or a REPL."""
    import json
    import re

    sources = {"filesystem:docs", "git:platform", "jira:ops", "notes:meetings"}
    keys = [(d.source, d.source_id) for d in documents]
    assert len(set(keys)) == len(keys), "duplicate (source, source_id)"
    assert len({d.updated_at for d in documents}) == len(documents), "duplicate updated_at"
    for d in documents:
        where = f"{d.source}/{d.source_id}"
        assert d.source in sources, where
        assert re.fullmatch(r"2026-(0[1-9]|1[01])-\d\dT\d\d:\d\d:\d\dZ", d.updated_at), where
        assert d.title and d.author and d.body, where
        assert d.body == d.body.strip(), where
        assert "\n\n\n" not in d.body, where
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", d.body), where
        assert all(len(p) <= 2000 for p in d.body.split("\n\n")), where
        json.dumps(d.metadata)
    for source in sources:
        assert sum(d.source == source for d in documents) >= 3, source
    assert sum(4000 <= len(d.body) <= 9000 for d in documents) >= 5, "need five long documents"
