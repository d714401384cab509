"""What the LGPD's simplified confirmation says (Art. 19, I: "em formato simplificado,
imediatamente"): whether we process personal data about the subject, as far as can be told at
once. Our own systems (the `sql` connector: our databases) answer in milliseconds and are read
now; processors (OpenDSR, an HTTP API, those asked by e-mail) answer later, for the complete
statement of Art. 19, II that follows by the due date. The letter says which of these it could
tell: a yes from our own systems, or "nothing in our own systems" with the processors still being
asked, never a "no" that their answers could contradict.

A step of its own (`confirm_at_once`), run once before the letter: its answer is the letter's
params, kept in the workflow's history, so a letter sent again after a crash says the same.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import replace

from temporalio import activity

from activities.connectors.base import PermanentConnectorError
from activities.context import ActivityContext
from activities.fanout import open_connector, reached_systems, subject_of
from dsrflow.crypto.hashing import subject_hash
from dsrflow.stores.deferred_store import kept_records
from dsrflow.stores.requests_store import get_request
from schemas.vocabulary import ConnectorKind
from schemas.workflow import StartRequest

PURPOSE = "simplified_confirmation"


class ConfirmationActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="confirm_at_once")
    async def confirm_at_once(self, start: StartRequest) -> dict[str, bool]:
        """`found`: one of our own systems holds data about the subject (records kept under a
        hold included: minimised, still theirs); `unread`: one of them could not be read now;
        `asked`: processors are asked for the complete answer, which comes later."""
        ctx = self.ctx
        row = await get_request(ctx.pool, start.request_id)
        if row is None:
            raise LookupError(f"request {start.request_id} not found")
        policy = (await ctx.policy(start.policy_version)).policy
        systems = reached_systems(row, policy)  # as the plan reaches them
        own = [name for name, spec in systems.items() if spec.connector == ConnectorKind.sql]
        subject = replace(subject_of(row), held=await kept_records(
            ctx.pool, subject_hash=subject_hash(ctx.secret, row["subject_email"])))
        found = unread = False
        for system in own:
            try:
                async with open_connector(ctx, start.policy_version, system) as connector:
                    async with aclosing(connector.access(subject)) as records:  # type: ignore[type-var]
                        found = await anext(aiter(records), None) is not None
            except PermanentConnectorError:
                unread = True  # read again for the package, or staff are told why it cannot be
            if found:
                break
        return {"found": found, "unread": unread and not found, "asked": len(own) < len(systems)}
