"""Request rows in Postgres: intake (idempotent), reads, and status changes with their audit event."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from dsrflow.crypto.hashing import keyed_hash
from dsrflow.domain.audit import append_arguments, append_call, append_event
from dsrflow.domain.deadlines import country_of_law
from dsrflow.infra.metrics import request_opened
from dsrflow.infra.writes import Write
from dsrflow.stores.deferred_store import call_off_deferred
from dsrflow.stores.request_lookup import lookup_keys
from schemas.requests import NewRequest, RequestStatus


class IdempotencyConflict(Exception):
    """An idempotency key repeated with a request that differs from the first one."""


def _fingerprint(new: NewRequest) -> str:
    """What makes two submissions the same request (received_at defaults to 'now' on each)."""
    # Unset optional fields added later (language) stay out, so a request stored before them
    # still matches its repeat.
    body = new.model_dump(mode="json", exclude={"received_at"} if new.received_at is None else set())
    if body.get("language") is None:
        body.pop("language", None)
    body["subject"]["email"] = body["subject"]["email"].lower()
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _intake_key(new: NewRequest, secret: bytes, idempotency_key: str | None, origin: str) -> str | None:
    """The key a repeat of the submission is known by (`dsr_requests.idempotency_key`), if any."""
    # Anyone may submit as a subject: their keys are scoped to the address too, so that one
    # subject's key (guessed, or predictable) never blocks another's request nor tells whether it
    # was used. Staff share one team's key space on purpose (a ticket number).
    if idempotency_key:
        kind, given = "header", idempotency_key
    elif new.client_request_id:
        kind, given = "client", new.client_request_id
    else:
        return None
    scope = f"{keyed_hash(secret, 'idempotency', str(new.subject.email).lower())[:32]}:" if origin == "subject" else ""
    return f"{origin}:{kind}:{scope}{given}"


async def stored_repeat(conn: asyncpg.Connection | asyncpg.Pool, new: NewRequest, *, secret: bytes,
                        idempotency_key: str | None, origin: str) -> bool:
    """Whether `new` repeats a request stored already (its key, the same content): `create_request`
    returns that one and stores nothing."""
    key = _intake_key(new, secret, idempotency_key, origin)
    if key is None:
        return False
    stored = await conn.fetchval("SELECT intake_fingerprint FROM dsr_requests WHERE idempotency_key = $1", key)
    return bool(stored == _fingerprint(new))


class PolicyVersion(Protocol):
    """What the store records of the policy a request starts under (policy.model.LoadedPolicy)."""

    @property
    def version(self) -> str: ...
    @property
    def content(self) -> dict[str, Any]: ...
    @property
    def default_country(self) -> str: ...
    @property
    def default_language(self) -> str: ...


async def record_policy_version(conn: asyncpg.Connection, loaded: PolicyVersion) -> None:
    # The policy (some 100 KB of JSON) is encoded and sent only while its version is missing:
    # doing so for every request was a tenth of the API's time per request.
    if not await conn.fetchval("SELECT true FROM policy_versions WHERE version = $1", loaded.version):
        await conn.execute(
            "INSERT INTO policy_versions (version, content) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            loaded.version, loaded.content,
        )


_OPEN = f"""
    WITH opened AS (
        INSERT INTO dsr_requests
          (id, idempotency_key, intake_fingerprint, request_type, regime, country, channel, origin,
           subject_email, subject_name, customer_id, details, received_at, status,
           attested_by, policy_version, language, subject_email_key, customer_id_key)
        VALUES ($1,$2,$16,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$17,$18,$19)
        ON CONFLICT DO NOTHING
        RETURNING *)
    SELECT opened.*, {append_call(20)} AS event_hash FROM opened"""


async def create_request(
    pool: asyncpg.Pool,
    new: NewRequest,
    *,
    loaded_policy: PolicyVersion,
    secret: bytes,
    actor: str,
    idempotency_key: str | None,
    origin: str = "staff",
    extra_details: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a new request; return (row, created).

    A repeated idempotency key (per origin: staff and subjects never share keys; and per address
    among subjects) returns the first request; the same key with a different request is refused
    with IdempotencyConflict.
    `extra_details` are stored beside the request's own details (a retention request records its
    rule and whether the subject is told). `secret` keys the hashes staff search by
    (dsrflow/stores/request_lookup.py).
    """
    key = _intake_key(new, secret, idempotency_key, origin)
    fingerprint = _fingerprint(new)
    request_id = str(uuid.uuid4())
    received = new.received_at or datetime.now(UTC)
    status = (
        RequestStatus.in_progress if new.identity_attested else RequestStatus.awaiting_verification
    )
    language = new.language or loaded_policy.default_language
    event = {"type": new.type.value, "regime": new.regime.value, "channel": new.channel.value,
             "attested": new.identity_attested, "policy_version": loaded_policy.version, "language": language}
    async with pool.acquire() as conn:
        # Kept apart from the request: a version recorded for a request refused below is harmless.
        await record_policy_version(conn, loaded_policy)
        # The short reference people read is the id's first 50 bits and names one request (a
        # unique index): an id whose reference is taken (about one in 2,000 over a million
        # requests) is drawn again rather than refusing the request. ON CONFLICT without a target
        # covers both that index and the idempotency key's. The request and the event recording
        # it are one statement (atomic, one round trip): the event is appended only for a row
        # inserted.
        while True:
            row = await conn.fetchrow(
                _OPEN, request_id, key, new.type.value, new.regime.value,
                # Without one, the country of its law: a VCDPA request was stored as the
                # controller's (BE), and its appeal took that country.
                new.country or country_of_law(new.regime, loaded_policy.default_country), new.channel.value, origin,
                str(new.subject.email), new.subject.name, new.subject.customer_id,
                {**new.details(), **(extra_details or {})},
                received, status.value, actor if new.identity_attested else None, loaded_policy.version,
                fingerprint, language,
                *lookup_keys(secret, str(new.subject.email), new.subject.customer_id),
                *append_arguments(event_key=f"{request_id}:created", request_id=request_id,
                                  event_type="request.created", actor=actor, data=event),
            )
            if row is not None:
                break
            existing = key and await conn.fetchrow("SELECT * FROM dsr_requests WHERE idempotency_key = $1", key)
            if existing:
                if existing["intake_fingerprint"] != fingerprint:
                    raise IdempotencyConflict(
                        "this idempotency key was already used for a different request"
                    )
                return dict(existing), False
            request_id = str(uuid.uuid4())  # the reference was taken
    request_opened(new.type, new.channel)  # committed: a repeat with the same key is not counted
    opened = dict(row)
    del opened["event_hash"]
    return opened, True


async def get_request(conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> dict[str, Any] | None:
    return (await get_request_with(conn, request_id, "NULL"))[0]


async def get_request_with(conn: asyncpg.Connection | asyncpg.Pool, request_id: str, fact: str,
                           *args: Any) -> tuple[dict[str, Any] | None, Any]:
    """The request's row and one more fact that goes with it, `fact` (an SQL expression over
    `args` as $2, $3...), read in one round trip: an activity's every read is a wake-up of
    PostgreSQL and of the worker (BENCHMARKS.md, B1)."""
    try:
        uuid.UUID(request_id)
    except ValueError:
        return None, None
    row = await conn.fetchrow(f"SELECT ({fact}) AS fact_, r.* FROM dsr_requests r WHERE r.id = $1", request_id, *args)
    if row is None:
        return None, None
    found = dict(row)
    return found, found.pop("fact_")


async def set_status(
    conn: asyncpg.Connection,
    request_id: str,
    status: RequestStatus,
    *,
    event_key: str,
    actor: str,
    data: dict[str, Any] | None = None,
) -> None:
    writes = [Write("""UPDATE dsr_requests SET status = $2, updated_at = now(),
                           closed_at = CASE WHEN $3 THEN coalesce(closed_at, now()) ELSE NULL END
                       WHERE id = $1""", (request_id, status.value, status.is_closed))]
    if status.is_closed and status != RequestStatus.completed:
        # Closed unanswered (denied or withdrawn at approval, after its plan copied them): the
        # identifiers a deletion service knows the subject by serve no erasure any more, and were
        # kept in clear for good (activities/connectors/http_identifiers.py). A completed request
        # keeps its unaccepted ones: a hold's deferred erasure sends them when it ends.
        writes.append(Write("UPDATE http_identifiers SET value = NULL WHERE request_id = $1 AND value IS NOT NULL",
                            (request_id,)))
    await append_event(
        conn, event_key=event_key, request_id=request_id, event_type=f"status.{status.value}",
        actor=actor, data=data or {}, along=writes,
    )
    # A request completes once its tasks have settled, each result stored with its run's partial
    # count and audited then (activities/task_results.py): only a close that stops tasks (withdrawn,
    # cancelled, denied) has counts to add to the trail, and completions (every erasure's) skip the read.
    if status.is_closed and status != RequestStatus.completed:
        await _partial_effects(conn, request_id, actor)
        # What a legal-claims hold kept from the erasure is not erased when it ends: the subject
        # no longer asks for it (dsrflow/stores/deferred_store.py; the sweep calls off any left).
        await call_off_deferred(conn, request_id, actor=actor)


async def _partial_effects(conn: asyncpg.Connection, request_id: str, actor: str) -> None:
    """The trail's account of what the tasks of a closed request changed before they stopped (an
    http run's changes, which its journal counted: the close's trigger keeps them on the task before
    the journal goes, migration 0049, with those on the wire then, 0052), one event per count: a
    retried close appends none twice."""
    for task in await conn.fetch(
            """SELECT system, action, attempt, coalesce(partial_changed, 0) AS counted, partial_unsure FROM system_tasks
                WHERE request_id = $1 AND (partial_changed > 0 OR partial_unsure > 0) ORDER BY system, action""",
            request_id):
        await append_event(conn, **partial_effect(request_id, task["system"], task["action"], task["attempt"],
                                                  task["counted"], task["partial_unsure"], actor=actor))


def partial_effect(request_id: str, system: str, action: str, attempt: int, counted: int, unsure: int | None,
                   *, actor: str) -> dict[str, Any]:
    """`append_event`'s arguments for the trail's account of what a task's runs changed before its
    request's close stopped them: `counted` changes, and `unsure` more on the wire then whose answer
    is not on record (migration 0052), each of which may have been made: the count is then "at
    least". One event per account: a retried close or answer appends none twice."""
    return {"event_key": f"{request_id}:task:{system}:{action}:{attempt}:partial:{counted}"
                         + (f":unsure:{unsure}" if unsure else ""),
            "request_id": request_id, "event_type": "task.partial_effect", "actor": actor,
            "data": {"system": system, "action": action, "attempt": attempt, "counted": counted,
                     **({"unsure": unsure} if unsure else {})}}


async def decided_instead(pool: asyncpg.Pool | asyncpg.Connection, request_id: str) -> str | None:
    """The appeal decided instead of appeal `request_id`, closed for it as both claimed their refusal
    (its `status.cancelled` event's `decided_as`: activities/appeal_claims.py); None for any other."""
    return await pool.fetchval(  # type: ignore[no-any-return]
        """SELECT data->>'decided_as' FROM audit_events
            WHERE request_id = $1 AND event_type = 'status.cancelled' ORDER BY seq LIMIT 1""",
        uuid.UUID(str(request_id)))


async def withdrawn_by_subject(pool: asyncpg.Pool | asyncpg.Connection, request_id: str) -> bool:
    """Whether the request was cancelled because its subject withdrew it, as its `status.cancelled`
    event records (written with the status: `set_status`); a cancellation by staff refuses it."""
    return bool(await pool.fetchval(
        """SELECT (data->>'withdrawn_by_subject')::boolean FROM audit_events
            WHERE request_id = $1 AND event_type = 'status.cancelled' ORDER BY seq LIMIT 1""",
        uuid.UUID(str(request_id))))
