"""The restriction a legal-claims hold set on the records it kept, lifted once their erasure is
called off and the hold is released (docs/holds.md "A request closed unanswered").

A sql system's erasure under a legal-claims hold keeps the subject's records as they are and marks
them restricted (activities/connectors/sql_erasure.py `minimise`): kept for the claim only, they
must not be processed otherwise meanwhile. When the erasure is then withdrawn, cancelled or denied,
what the hold kept is called off (dsrflow/stores/deferred_store.py `call_off_deferred`): the hold's
release erases nothing, and the records go back to their system's ordinary use and retention.
Before, nothing lifted the mark, so they stayed restricted for ever though nothing kept them so.

The erasure sweep lifts it (activities/deferred.py, before anything is erased), and so does the
close of a request whose hold was released before it closed (`lift_at_close`), for each request
and system whose called-off records' hold is released, unless something still keeps them so:
- another legal-claims hold in force over the record's data (its system and one of its dataset's
  categories, activities/hold_cover.py; its release sweeps the subject again);
- a restriction of the subject's in force or under way at the system (`restricted_elsewhere`,
  checked under the restriction lock a lift takes, activities/restriction_lock.py: a restriction
  reaching the system meanwhile waits and restricts last); its own lift lifts them;
- a record another erasure still keeps (a later request's hold, not called off): that one stays
  marked, and is looked at again at the next sweep.
One `erasure.called_off_unrestricted` event (the system and how many records, no keys), in the
statement that marks the rows `unrestricted_at`. Exactly once in effect: un-restricting a record
that is not restricted changes nothing, so a sweep killed after the system committed and before
the record (failpoint `called-off-unrestricted`) lifts again at its next run, changing nothing, and
records it once. A system that fails is left for the next run, and said in the sweep's report.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Any

import asyncpg

from activities.context import ActivityContext
from activities.errors import failure_message
from activities.fanout import open_connector, subject_of
from activities.hold_cover import any_covers, dataset_categories
from activities.restriction_lock import acted, restriction_lock
from dsrflow.domain.audit import append_event
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from dsrflow.infra.writes import Write
from dsrflow.stores.holds_store import active_holds_for
from dsrflow.stores.requests_store import get_request
from dsrflow.stores.restrictions_store import restricted_elsewhere

log = get_logger(__name__)

# The close runs as a short step (workflows/dsr_steps.py SHORT: 10 s), its status written first.
AT_CLOSE_WITHIN = 5.0

# Called-off records a released legal-claims hold had marked, not yet unmarked: a processor kept
# whole (dataset "all") was asked nothing and marked nothing.
_DUE = """
    SELECT d.id, d.request_id::text AS request_id, d.policy_version, d.system, d.dataset, d.record_key,
           d.subject_hash
      FROM deferred_erasures d JOIN legal_holds h ON h.id::text = d.hold_ref
     WHERE d.hold_kind = 'legal_claims' AND d.called_off_at IS NOT NULL AND d.done_at IS NULL
       AND d.unrestricted_at IS NULL AND d.dataset <> 'all' AND h.released_at IS NOT NULL
       AND ($1::text IS NULL OR d.subject_hash = $1) AND ($2::uuid IS NULL OR d.request_id = $2::uuid)
     ORDER BY d.id"""

# Of these rows' records, those another erasure still keeps (not erased, not called off).
_KEPT_ELSEWHERE = """
    SELECT DISTINCT d.dataset, d.record_key FROM deferred_erasures d
     WHERE d.system = $1 AND d.done_at IS NULL AND d.called_off_at IS NULL
       AND (d.dataset, d.record_key) IN (SELECT * FROM unnest($2::text[], $3::text[]))"""


async def lift_called_off_marks(ctx: ActivityContext, subject_hash: str | None, request_id: str | None = None,
                                *, until: float | None = None) -> tuple[int, dict[str, str]]:
    """Lift the marks due (one subject's, or everyone's; one request's): the records unmarked
    now, and the systems that could not be reached this run, with why (for the sweep's report).
    `until` (the event loop's clock): no system is waited for past it (`lift_at_close`)."""
    groups: dict[tuple[str, str, str], list[asyncpg.Record]] = defaultdict(list)
    for row in await ctx.pool.fetch(_DUE, subject_hash, request_id):
        groups[(row["request_id"], row["policy_version"], row["system"])].append(row)
    lifted, unable = 0, {}
    for (request_id, version, system), rows in groups.items():
        try:
            lifted += await _lift(ctx, request_id, version, system, rows, until)
        except Exception as exc:  # noqa: BLE001 - left marked, for the next run; the report says so
            log.warning("called-off records not unrestricted this run", request_id=request_id, system=system,
                        error=type(exc).__name__)
            unable[system] = f"called-off records not yet unrestricted, tried again next run: {failure_message(exc)}"
    return lifted, unable


async def lift_at_close(ctx: ActivityContext, request_id: str) -> int:
    """At the close of a request closed unanswered (activities/lifecycle.py `transition`), lift
    the marks of what it just called off whose hold was released before it closed (the release's
    sweep could not erase them: the system unreachable then, the sweep not started, or a task's
    try that kept them after the release). Before, only the next daily sweep did, a day later:
    the release's sweep had run already and nothing else sweeps the subject. Bounded, as the close
    is a short step: a system slow to answer is left, like one unreachable, to the daily sweep.
    The bound is on waiting for the systems, not on recording what one did: a bound over both
    that ran out once a system had un-restricted, while its record was written, left the records
    no longer restricted and the rows, the trail and the deferred panel saying they were, until the
    next daily sweep (hDY). The records lifted now."""
    until = asyncio.get_running_loop().time() + AT_CLOSE_WITHIN
    lifted, unable = await lift_called_off_marks(ctx, None, request_id, until=until)
    if unable:
        log.warning("called-off records not unrestricted at the close; the daily sweep does", request_id=request_id,
                    systems=sorted(unable))
    return lifted


async def _lift(ctx: ActivityContext, request_id: str, version: str, system: str,
                rows: list[asyncpg.Record], until: float | None) -> int:
    # The restriction lock, entered in `held`, is given back after the record: a restriction of the
    # subject waiting on it restricts, and records that, after (activities/restriction_lock.py).
    async with AsyncExitStack() as held:
        async with asyncio.timeout_at(until):  # (past it: TimeoutError, this system left for the next run)
            free = await _lifted_in_system(ctx, request_id, version, system, rows, held)
        if not free:
            return 0
        failpoint("called-off-unrestricted", system)  # lifted in the system, not yet on record
        acted(system, "lift_restriction", request_id)
        ids = [row["id"] for row in free]
        data: dict[str, Any] = {"system": system, "records": len(ids)}
        async with ctx.pool.acquire() as conn:
            await append_event(conn, event_key=f"{request_id}:deferred:unrestricted:{system}:{ids[0]}",
                               request_id=request_id, event_type="erasure.called_off_unrestricted",
                               actor="erasure-sweep", data=data,
                               along=[Write("UPDATE deferred_erasures SET unrestricted_at = now() "
                                            "WHERE id = ANY($1::bigint[]) AND unrestricted_at IS NULL", (ids,))])
    return len(ids)


async def _lifted_in_system(ctx: ActivityContext, request_id: str, version: str, system: str,
                            rows: list[asyncpg.Record], held: AsyncExitStack) -> list[asyncpg.Record]:
    """Un-restrict in `system` what nothing else keeps restricted: the rows so lifted, the system's
    restriction lock left in `held` for the record."""
    # Another hold in force that covers a record's data keeps it restricted: its release sweeps the
    # subject again. Judged per dataset's categories, as the erasure kept them, not per system.
    holds = await active_holds_for(ctx.pool, rows[0]["subject_hash"])
    policy = (await ctx.policy(version)).policy
    rows = [r for r in rows if not any_covers(holds, system, dataset_categories(policy, system, r["dataset"]))]
    if not rows:
        return []
    request = await get_request(ctx.pool, request_id)
    if request is None:
        raise LookupError(f"request {request_id} not found")
    await held.enter_async_context(restriction_lock(ctx, subject_of(request), system, "lift_restriction"))
    if system in await restricted_elsewhere(ctx.pool, request_id):
        return []  # the subject restricted it: that restriction's lift un-restricts them
    kept = {(r["dataset"], r["record_key"]) for r in await ctx.pool.fetch(
        _KEPT_ELSEWHERE, system, [r["dataset"] for r in rows], [r["record_key"] for r in rows])}
    free = [r for r in rows if (r["dataset"], r["record_key"]) not in kept]
    if not free:
        return []
    keys: dict[str, list[str]] = defaultdict(list)
    for row in free:
        keys[row["dataset"]].append(row["record_key"])
    async with open_connector(ctx, version, system) as connector:
        await connector.unrestrict_keys(keys)
    return free
