"""An appeal's (a UK complaint's) claim to be decided: one decision per refusal. The intake refuses
an appeal of a refusal whose other appeal is being decided or has been (dsrflow/domain/appeals.py
`refuse_decided`), but not while that other one awaits its subject's confirmation (a stranger's,
made in the subject's name, must not hold the subject's own back). So two appeals of one refusal,
both awaiting confirmation, were both confirmed, both decided (perhaps differently), and the
subject got two outcomes. Now, as an appeal starts being decided (confirmed, or at its start when
staff attested it), the same check runs again, excluding itself, under a lock on the refusal: the
first to start is decided; a later one is closed (cancelled, its record naming the other), and its
letter tells the subject which appeal answers theirs (workflows/appeal_claim.py)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.context import ActivityContext
from dsrflow.domain.appeals import being_decided, decided_appeal, decided_words
from dsrflow.domain.audit import lock_chain
from dsrflow.infra.failpoints import failpoint
from dsrflow.stores.requests_store import set_status
from schemas.appeal_claims import AppealClaim, AppealTaken
from schemas.requests import RequestStatus

# The event a lost claim records (the key `transition_record` gives a cancellation): a retry reads
# the loss back from it rather than deciding again.
_CLOSED = "status:cancelled"


class AppealClaimActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="claim_appeal_decision")
    async def claim_appeal_decision(self, claim: AppealClaim) -> AppealTaken | None:
        """None: this appeal is the refusal's one being decided (its `in_progress` recorded with
        the claim). Else the appeal being decided, or decided, instead, with this one recorded as
        closed for it. A retry answers as the first attempt did: its records are read back."""
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            taken = await _claim(conn, claim)
        failpoint("appeal-claimed", claim.request_id)  # on record, and the workflow not yet told
        return taken


async def _claim(conn: Any, claim: AppealClaim) -> AppealTaken | None:
    rid = claim.request_id
    appeal_of = await conn.fetchval("SELECT details->>'appeal_of' FROM dsr_requests WHERE id = $1", rid)
    if appeal_of is None:
        raise LookupError(f"request {rid} not found, or not an appeal")
    # Two appeals of one refusal confirmed at the same instant take turns here, each
    # reading the other's status once the first's transaction is committed.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"appeal-decided:{appeal_of}")
    # The chain head before the row, as every status change takes them (a staff close may
    # be recorded meanwhile: dsrflow/domain/audit.py `lock_chain`).
    await lock_chain(conn, rid)
    row = await conn.fetchrow("SELECT regime, subject_email, closed_at FROM dsr_requests WHERE id = $1", rid)
    if row["closed_at"] is not None:
        return await _lost_before(conn, rid)
    other = await decided_appeal(conn, appeal_of, row["subject_email"], besides=rid)
    if other is None:
        if claim.in_progress is not None:
            change = claim.in_progress
            await set_status(conn, rid, change.status, event_key=f"{rid}:{change.event_key}",
                             actor=change.actor, data=change.data)
        return None
    taken = AppealTaken(decided_as=str(other["id"]), decided=not being_decided(other["status"]),
                        reason=f"not decided separately: that request's {decided_words(row['regime'], other)}")
    await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:{_CLOSED}", actor="workflow",
                     data={"reason": taken.reason, "withdrawn_by_subject": False,
                           "decided_as": taken.decided_as, "decided": taken.decided})
    return taken


async def _lost_before(conn: Any, rid: str) -> AppealTaken | None:
    """The claim an earlier attempt lost, as it recorded it; None for a request closed otherwise
    (staff's close, which its workflow holds already)."""
    data = await conn.fetchval("SELECT data FROM audit_events WHERE event_key = $1", f"{rid}:{_CLOSED}")
    if not data or "decided_as" not in data:
        return None
    return AppealTaken(decided_as=data["decided_as"], decided=data["decided"], reason=data["reason"])
