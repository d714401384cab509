"""dsrflow's Prometheus metrics: every definition in one place, and what reads them out.

Labels carry vocabularies only: request types, channels and statuses, letter purposes, connector
kinds, system names and steps from the policy, rate-limit actions, the scheduled sweeps' names.
Never an e-mail address, a name or a request id: a metrics store keeps every series for months,
is read by people who may not see personal data, and each distinct label value is a series of
its own. `_label` enforces
the shape on every value that reaches a label, so a mistake shows as `other`, not as an address.

Counters count in the process where the effect happens (the API: requests opened, rate-limit
refusals; the worker: letters, connector calls, verification outcomes, packages, and requests a
retention sweep opens): sum them over instances. The gauges computed from Postgres are the same
on every endpoint that shows them: aggregate those with `max`, never `sum`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from dsrflow.infra.logging import get_logger
from dsrflow.infra.ports import free_port
from schemas.clock_start import clock_waits_sql
from schemas.requests import RequestStatus
from schemas.restrictions import LIFTING_SQL
from schemas.staff_tokens import EXPIRES_SOON, LIMIT_EVENT, ROLES
from schemas.sweeps import SWEEP_EVERY, stale_after

__all__ = ["CONTENT_TYPE", "MAILBOX_READER_FAILING", "REGISTRY", "DatabaseGauges", "connector_call", "exposition",
           "letter_sent",
           "package_built", "rate_limited", "request_opened", "sdk_metrics_runtime", "verification_event"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Our own registry, not prometheus_client's global one: nothing a library registers behind our
# back reaches /metrics, and the worker's merged page cannot hold one family twice.
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

REQUESTS_OPENED = Counter("dsrflow_requests_opened", "Requests opened (stored for the first time), by type and "
                          "channel", ["type", "channel"], registry=REGISTRY)
LETTERS_SENT = Counter("dsrflow_letters_sent", "Letters handed to the mail relay, by purpose (each letter once)",
                       ["purpose"], registry=REGISTRY)
CONNECTOR_CALLS = Counter("dsrflow_connector_calls", "Uses of a system's connector by an activity (prepare, act, "
                          "poll, export), by system and connector kind", ["system", "kind"], registry=REGISTRY)
CONNECTOR_FAILURES = Counter("dsrflow_connector_failures", "Connector calls that raised, by system, connector kind "
                             "and exception class (PermanentConnectorError needs staff; others are retried)",
                             ["system", "kind", "error"], registry=REGISTRY)
VERIFICATION_OUTCOMES = Counter("dsrflow_verification_outcomes", "Identity verification events: succeeded, failed "
                                "(a wrong code or link), locked, resent", ["outcome"], registry=REGISTRY)
RATE_LIMIT_REJECTIONS = Counter("dsrflow_rate_limit_rejections", "Calls refused by a rate limit (429) or by the "
                                "ceiling of unverified requests (503), by action and what is counted",
                                ["action", "per"], registry=REGISTRY)
PACKAGE_BUILD_SECONDS = Histogram("dsrflow_package_build_seconds", "Time to read every system and write one "
                                  "access or portability package", ["kind"], registry=REGISTRY,
                                  buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
MAILBOX_READER_FAILING = Gauge("dsrflow_mailbox_reader_failing", "1 while this worker's IMAP reader cannot read the "
                               "privacy mailbox (its last session failed), else 0", registry=REGISTRY)
PACKAGE_BYTES = Histogram("dsrflow_package_bytes", "Size of each package written (encrypted zip)", ["kind"],
                          registry=REGISTRY, buckets=(1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10))

_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-")


def _label(value: object) -> str:
    """A label value: an identifier from a vocabulary or the policy. Anything else (an address
    has an @, a name may have spaces, a request id is a UUID) becomes `other`."""
    text = str(getattr(value, "value", value))
    return text if _LABEL.fullmatch(text) and not _UUID.match(text) else "other"


# Where the effects happen: one call each -------------------------------------------------------


def request_opened(request_type: object, channel: object) -> None:
    REQUESTS_OPENED.labels(_label(request_type), _label(channel)).inc()


def letter_sent(purpose: str) -> None:
    LETTERS_SENT.labels(_label(purpose)).inc()


def verification_event(event_type: str) -> None:
    """Counts `verification.*` audit events (the record_event activity); others are ignored."""
    if event_type.startswith("verification."):
        VERIFICATION_OUTCOMES.labels(_label(event_type.removeprefix("verification."))).inc()


def rate_limited(action: str, per: str) -> None:
    RATE_LIMIT_REJECTIONS.labels(_label(action), _label(per)).inc()


def package_built(kind: str, seconds: float, size_bytes: int) -> None:
    PACKAGE_BUILD_SECONDS.labels(_label(kind)).observe(seconds)
    PACKAGE_BYTES.labels(_label(kind)).observe(size_bytes)


@contextmanager
def connector_call(system: str, kind: str) -> Iterator[None]:
    """One use of a connector. Cancellation (a heartbeat timeout, a worker shutting down) is
    not the system failing, so only exceptions count as failures; nor is an error the connector
    marks benign (a long SaaS run's slice ending: the next attempt carries on)."""
    labels = (_label(system), _label(kind))
    CONNECTOR_CALLS.labels(*labels).inc()
    try:
        yield
    except Exception as exc:
        if not (isinstance(exc, ApplicationError) and exc.category == ApplicationErrorCategory.BENIGN):
            CONNECTOR_FAILURES.labels(*labels, _label(type(exc).__name__)).inc()
        raise


# Gauges computed from Postgres ----------------------------------------------------------------

_CLOSED = [s.value for s in RequestStatus if s.is_closed]
_BY_STATUS = "SELECT status, count(*) AS n FROM dsr_requests GROUP BY status"
# "Today" is the controller's (its timezone decides when a request becomes overdue), as in the
# queue's overdue filter; requests still being registered have no due date yet, and a UK GDPR
# request awaiting verification none that counts (its month has not started: the queue leaves it
# out too, and DsrRequestsOverdue fired for one received a month before its subject verified).
_DUE = f"""
WITH today AS (SELECT (now() AT TIME ZONE $1)::date AS d)
SELECT count(*) FILTER (WHERE current_due_date < today.d) AS overdue,
       count(*) FILTER (WHERE current_due_date >= today.d AND current_due_date <= today.d + 7) AS due_soon
  FROM dsr_requests r, today
 WHERE NOT (status = ANY($2::text[])) AND current_due_date IS NOT NULL AND NOT {clock_waits_sql("r")}
"""
# Open requests whose workflow never set their due date: stored, and not (yet) started. The sweep
# (activities/request_start_sweep.py) starts one within minutes; one still here later is stuck.
_UNSTARTED = """
SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age
  FROM dsr_requests WHERE due_date IS NULL AND closed_at IS NULL
"""
# A task's updated_at is when it last changed: for a task needing attention, since when.
_TASKS = """
SELECT t.system AS key, count(*) AS n, extract(epoch FROM now() - min(t.updated_at))::float8 AS age
  FROM system_tasks t JOIN dsr_requests r ON r.id = t.request_id
 WHERE t.status = 'needs_attention' AND (NOT (r.status = ANY($1::text[])) OR r.id IN (""" + LIFTING_SQL + """))
 GROUP BY t.system
"""
# Legal-claims holds in force past the date by which the controller said it would review them
# (the subject's response letter gives it: "we review whether they still do by ..."). Nothing else
# brings such a hold back to anyone: the records it keeps are never erased while it stands.
_HOLDS_PAST_REVIEW = """
SELECT count(*) FROM legal_holds WHERE released_at IS NULL AND review_date < (now() AT TIME ZONE $1)::date
"""
# When each scheduled sweep last succeeded (migration 0035, written by the sweep's activity).
_SWEEPS = "SELECT sweep, extract(epoch FROM now() - last_success_at)::float8 AS age, problems FROM sweep_runs"
# Staff alerts the relay refused for good this past week (activities/sweep_alerts.py records each
# on its request, `letter.refused`, and does not send it again): staff were not told, and nothing
# else says so but the request's timeline. A week, so that one refusal keeps the alert up long enough
# to be seen, and it clears by itself (migration 0046 indexes these events).
_REFUSED_ALERTS = """
SELECT count(*) FROM audit_events
 WHERE event_type = 'letter.refused' AND occurred_at > now() - interval '7 days' AND (data->>'to_staff')::boolean
"""
# Staff tokens in force that expire within EXPIRES_SOON, by role (dsrflow/stores/staff_tokens.py):
# a script's or a colleague's token that lapses stops their work that day, and the last admin's
# leaves nobody to manage tokens but at the server. The console's Tokens page lists them.
_TOKENS_EXPIRING = """
SELECT role AS key, count(*) AS n FROM staff_tokens
 WHERE revoked_at IS NULL AND expires_at > now() AND expires_at <= now() + $1::interval GROUP BY role
"""
# Tokens refused requests past their bound this past day (api/staff_opens.py): a token whose holder
# was not opening requests by the hundred may be stolen (migration 0048 indexes these events).
_TOKENS_OVER_BOUND = """
SELECT count(DISTINCT data->>'token_id') FROM audit_events
 WHERE event_type = '""" + LIMIT_EVENT + """' AND occurred_at > now() - interval '1 day'
"""
_STEPS = """
SELECT step AS key, count(*) AS n, extract(epoch FROM now() - min(since))::float8 AS age
  FROM step_troubles WHERE resolved_at IS NULL GROUP BY step
"""


async def _read_gauges(pool: asyncpg.Pool, timezone: str) -> list[Metric]:
    async with pool.acquire() as conn:
        statuses = {r["status"]: r["n"] for r in await conn.fetch(_BY_STATUS)}
        due = await conn.fetchrow(_DUE, timezone, _CLOSED)
        tasks = await conn.fetch(_TASKS, _CLOSED)
        steps = await conn.fetch(_STEPS)
        unstarted = await conn.fetchrow(_UNSTARTED)
        holds_past_review = await conn.fetchval(_HOLDS_PAST_REVIEW, timezone)
        sweeps = {r["sweep"]: r for r in await conn.fetch(_SWEEPS)}
        refused_alerts = await conn.fetchval(_REFUSED_ALERTS)
        expiring = {r["key"]: r["n"] for r in await conn.fetch(_TOKENS_EXPIRING, EXPIRES_SOON)}
        over_bound = await conn.fetchval(_TOKENS_OVER_BOUND)
    by_status = GaugeMetricFamily("dsrflow_requests", "Requests by status (every request ever stored)",
                                  labels=["status"])
    for status in RequestStatus:
        by_status.add_metric([status.value], statuses.get(status.value, 0))
    families: list[Metric] = [
        by_status,
        GaugeMetricFamily("dsrflow_requests_overdue", "Open requests past their current (possibly extended) due date",
                          value=due["overdue"]),
        GaugeMetricFamily("dsrflow_requests_due_within_7_days", "Open requests due today or within the next 7 days",
                          value=due["due_soon"]),
        GaugeMetricFamily("dsrflow_requests_unstarted", "Open requests stored whose workflow has not started",
                          value=unstarted["n"]),
        GaugeMetricFamily("dsrflow_requests_unstarted_oldest_seconds",
                          "Age of the oldest open request whose workflow has not started (0: none)",
                          value=unstarted["age"]),
        GaugeMetricFamily("dsrflow_legal_holds_past_review",
                          "Legal-claims holds in force past their review date (the controller's calendar)",
                          value=holds_past_review),
        GaugeMetricFamily("dsrflow_staff_alerts_refused",
                          "Staff alerts the mail relay refused for good in the last 7 days (not sent again)",
                          value=refused_alerts),
    ]
    tokens = GaugeMetricFamily("dsrflow_staff_tokens_expiring",
                               f"Staff tokens in force that expire within {EXPIRES_SOON.days} days, by role",
                               labels=["role"])
    for role in ROLES:
        tokens.add_metric([role], expiring.get(role, 0))
    families += [tokens, GaugeMetricFamily(
        "dsrflow_staff_tokens_over_their_bound",
        "Staff tokens refused requests past their bound of requests opened in the last day", value=over_bound)]
    for name, what, label, rows in (
        ("dsrflow_tasks_needing_attention", "system tasks of open requests waiting for staff", "system", tasks),
        ("dsrflow_steps_needing_attention", "workflow steps failing until staff retry or skip them", "step", steps),
    ):
        count = GaugeMetricFamily(name, f"Number of {what}", labels=[label])
        oldest = GaugeMetricFamily(f"{name}_oldest_seconds", f"Age of the oldest of the {what}", labels=[label])
        for row in rows:
            count.add_metric([_label(row["key"])], row["n"])
            oldest.add_metric([_label(row["key"])], row["age"])
        families += [count, oldest]
    # A schedule skips a run while the last one still runs: one run that hangs (or a sweep that
    # fails every time) stops the sweep for good. DsrSweepStale compares the two.
    age = GaugeMetricFamily("dsrflow_sweep_last_success_age_seconds",
                            "Seconds since the scheduled sweep last succeeded (since the install, before its first)",
                            labels=["sweep"])
    stale = GaugeMetricFamily("dsrflow_sweep_stale_after_seconds",
                              "The age of its last success at which the scheduled sweep counts as stopped "
                              "(two runs missed)", labels=["sweep"])
    problems = GaugeMetricFamily("dsrflow_sweep_problems",
                                 "What the scheduled sweep's last successful run left undone for a person "
                                 "(a retention rule that could not run, a system not erased in)", labels=["sweep"])
    for sweep in SWEEP_EVERY:
        if sweep in sweeps:
            age.add_metric([sweep], sweeps[sweep]["age"])
            problems.add_metric([sweep], sweeps[sweep]["problems"])
        stale.add_metric([sweep], stale_after(sweep).total_seconds())
    return [*families, age, stale, problems]


class DatabaseGauges(Collector):
    """Gauges read from Postgres when scraped, kept for `ttl` seconds: several Prometheus
    servers, or one scraping every endpoint, cost one round of queries per `ttl`. When Postgres
    does not answer they are left out and `dsrflow_database_up` says 0."""

    def __init__(self, ttl: float = 15.0) -> None:
        self.ttl = ttl
        self._at = float("-inf")
        self._families: list[Metric] = []
        self._up = 0
        self._lock = asyncio.Lock()

    async def refresh(self, pool: asyncpg.Pool, timezone: str) -> None:
        async with self._lock:  # concurrent scrapes share one round of queries
            if time.monotonic() - self._at < self.ttl:
                return
            try:
                self._families = await asyncio.wait_for(_read_gauges(pool, timezone), 5)
                self._up = 1
            except Exception as exc:  # noqa: BLE001 - the scrape still shows what this process counted
                get_logger("dsrflow.metrics").warning("metrics gauges not read from postgres",
                                                      error=type(exc).__name__)
                self._families, self._up = [], 0
            self._at = time.monotonic()

    def collect(self) -> Iterable[Metric]:
        yield from self._families
        yield GaugeMetricFamily("dsrflow_database_up", "1 when the gauges from Postgres were read at the last scrape",
                                value=self._up)


async def exposition(gauges: DatabaseGauges, pool: asyncpg.Pool, timezone: str) -> bytes:
    """This process's metrics and the gauges from Postgres, in Prometheus' text format."""
    await gauges.refresh(pool, timezone)
    return generate_latest(REGISTRY) + generate_latest(gauges)


# The Temporal SDK's own metrics ---------------------------------------------------------------


def free_loopback_address() -> str:
    """A port nobody listens on, on 127.0.0.1 (the SDK's own endpoint, read by ours)."""
    return f"127.0.0.1:{free_port()}"


def sdk_metrics_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime whose clients and workers publish the SDK's metrics (workflow task
    latency, schedule-to-start, activity failures, sticky cache, pollers) on `bind_address`, in
    Prometheus' conventions: counters end in _total, durations are seconds named _seconds."""
    config: Any = PrometheusConfig(bind_address=bind_address, counters_total_suffix=True, unit_suffix=True,
                                   durations_as_seconds=True)
    return Runtime(telemetry=TelemetryConfig(metrics=config))
