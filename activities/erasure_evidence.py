"""An erasure's evidence, kept as the system is erased: the legal-claims holds that apply to it,
the erasure ledger (record keys, never values) and the deferred erasures of what a hold keeps, in
one statement with the system's own commit where it can (ErasureContext.before_commit).

A request's erasure task (activities/fanout.py) and a hold's end (activities/deferred.py,
deferred_processors.py) erase through it, so that each names the records it erased and schedules
what it kept the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from activities.connectors.base import (
    ActionOutcome,
    Connector,
    ErasureContext,
    LegalClaimsHold,
    Subject,
)
from activities.context import ActivityContext
from activities.ledger import ledger_write
from dsrflow.crypto.hashing import subject_hash
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.writes import Write, columns, write_together
from dsrflow.stores.holds_store import active_holds_for

# More evidence, written in the same statement as an erasure's own.
Evidence = Callable[[ActionOutcome], Sequence[Write]]


class ErasureEvidence:
    """What every erasure of a system keeps as evidence (FanoutActivities and the erasures after a
    hold's end use it)."""

    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    async def erasure_context_for(self, policy_version: str, system: str,
                                  subject: Subject) -> tuple[ErasureContext, dict[str, dict[str, Any]]]:
        """Today in the controller's timezone, and the legal-claims holds on this subject that
        cover this system."""
        policy = (await self.ctx.policy(policy_version)).policy
        today = datetime.now(ZoneInfo(policy.defaults.timezone)).date()
        holds = await active_holds_for(self.ctx.pool, subject_hash(self.ctx.secret, subject.email))
        applying = {str(h["id"]): h for h in holds if not h["systems"] or system in h["systems"]}
        context = ErasureContext(today=today, legal_holds=tuple(
            LegalClaimsHold(id=hold_id, categories=tuple(h["categories"]) if h["categories"] else None,
                            basis=h["basis"], review_date=h["review_date"])
            for hold_id, h in applying.items()))
        return context, applying

    async def erase_with_evidence(self, connector: Connector, request_id: str, system: str, policy_version: str,
                                  subject: Subject, context: ErasureContext, origin: str = "request",
                                  also: Evidence | None = None) -> ActionOutcome:
        """Erase, keeping the evidence before the system commits where it can (see
        ErasureContext.before_commit), otherwise right after. `also` gives more evidence to write
        with it (the task's provisional outcome)."""
        kept = False

        async def keep(outcome: ActionOutcome) -> None:
            nonlocal kept
            await self.keep_evidence(request_id, system, policy_version, subject, outcome, origin, also)
            kept = True
            failpoint("erasure-evidence-kept")  # the system has not committed yet

        outcome = await connector.erase(subject, replace(context, before_commit=keep))
        if not kept:
            await self.keep_evidence(request_id, system, policy_version, subject, outcome, origin, also)
        return outcome

    async def keep_evidence(self, request_id: str, system: str, policy_version: str, subject: Subject,
                            outcome: ActionOutcome, origin: str = "request", also: Evidence | None = None) -> None:
        """Schedule the erasure of what was held, and ledger what was erased (record keys stay
        here, in Postgres; the workflow sees counts): one statement, so that the system's own
        transaction, open meanwhile, waits for one round trip only."""
        who = subject_hash(self.ctx.secret, subject.email)
        writes = list(also(outcome)) if also is not None else []
        if outcome.held:
            # A record kept again for longer (held through a document issued while the erasure ran):
            # erased at the later date. One row a record and hold (an upsert touches a row once).
            held: dict[tuple[str, str, str, str], date | None] = {}
            for h in outcome.held:
                after = h.until + timedelta(days=1) if h.until else None
                key = (h.dataset, h.key, h.hold_kind, h.hold_ref)
                known = held.get(key)
                held[key] = max(after, known) if after is not None and known is not None else after
            writes.append(Write(
                """INSERT INTO deferred_erasures AS d (request_id, subject_hash, system, dataset, record_key,
                                                       hold_kind, hold_ref, erase_after, policy_version)
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                                        $6::text[], $7::text[], $8::date[], $9::text[])
                   ON CONFLICT (request_id, system, dataset, record_key, hold_kind, hold_ref) DO UPDATE
                   SET erase_after = EXCLUDED.erase_after
                   WHERE d.done_at IS NULL AND EXCLUDED.erase_after > d.erase_after""",
                columns([(request_id, who, system, dataset, key, kind, ref, after, policy_version)
                         for (dataset, key, kind, ref), after in held.items()])))
        ledger = ledger_write([(who, system, dataset, key, action, policy_version, request_id, origin)
                               for dataset, keys in outcome.erased.items() for key, action in keys])
        if ledger is not None:
            writes.append(ledger)
        await write_together(self.ctx.pool, writes)
