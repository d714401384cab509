"""One system's restriction of one subject, changed by one action at a time: a lift's check that no
other restriction of the subject holds the system (activities/restrictions.py `lift_held_by`), its
connector call and its record run under an exclusive lock, each restriction's call and record under
a shared one, both per system and subject (by address and by customer number, as the systems find
a subject and `restricted_elsewhere` matches one).

Why: the check reads the database once, before the lift's call. A restriction that reached the
system after the check and before the lift landed (its identity confirmed after the check, its
call then quicker than the lift's) was undone by the lift, and stayed undone while in force. Under
the lock, a restriction under way when the lift checks is seen (`restricted_elsewhere` counts one
from its plan on: the plan is written before any of its calls), and one that starts later waits
for the lift to finish and restricts last. Two restrictions do not wait on each other.

Held until the action is on record (the task's result, `restriction.lift_released`,
`erasure.called_off_unrestricted`), not only until its call returned: the one that acted last is
recorded last. Before (hEA), the lock ended with the lift's call; the restriction waiting on it
restricted and recorded "restricted" before the lift recorded "lifted", so the request's trail and
the subject's history, read in record order, said lifted last of a system left restricted. Each
holder records inside the lock, and gives `acted` (failpoint `restriction-acted`) the place between
the system's change and its record. What the lock does not order: a processor asked by e-mail,
whose confirmation (its link, a poll) records the job done later, when the processor acted, and a
task of a workflow started before its tasks recorded their own results (tasks-record-themselves: a
step of its own records it). (OpenDSR has no restriction: staff are asked.)

The locks are held by a connection of their own, opened for the action and closed after its record
(milliseconds more than the call: one transaction; restrict and lift actions only): a worker that
dies, however (kill -9), ends its session and so its locks, and the next action goes on at once; no
lease to expire, and no pooled connection kept back from the pool while a processor answers. The
record takes a pooled connection under the lock: no holder waits for the lock while it holds one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from activities.connectors.base import Subject
from activities.context import ActivityContext
from dsrflow.crypto.hashing import subject_hash
from dsrflow.infra.db import connect
from dsrflow.infra.failpoints import failpoint

# The actions that change a system's restriction, and whether each excludes the others.
EXCLUSIVE = {"lift_restriction": True, "restrict": False}


def lock_keys(secret: bytes, subject: Subject, system: str) -> list[str]:
    """The subject's keys at `system`, in one order for every holder (so two never wait on each
    other), keyed by the identities' hashes: pg_locks and the server's logs show no address."""
    identities = [("address", subject.email), ("customer", subject.customer_id)]
    return sorted(f"restriction:{system}:{kind}:{subject_hash(secret, value)}"
                  for kind, value in identities if value)


@asynccontextmanager
async def restriction_lock(ctx: ActivityContext, subject: Subject, system: str, action: str) -> AsyncIterator[None]:
    """Held from before a lift's check (or a restriction's call) until its result is on record;
    nothing for any other action (an erasure pays nothing). Never entered twice in one action:
    a lift's second entry would wait for its first for ever."""
    if action not in EXCLUSIVE:
        yield
        return
    take = "pg_advisory_lock" if EXCLUSIVE[action] else "pg_advisory_lock_shared"
    conn = await connect(ctx.settings.effective_database_url)
    try:
        for key in lock_keys(ctx.secret, subject, system):
            await conn.execute(f"SELECT {take}(hashtextextended($1, 0))", key)
        yield
    except BaseException:
        # Failed, or cancelled while it waited for a lock (its activity timed out or was cancelled):
        # the session ends at once, and its locks, granted or asked, with it.
        conn.terminate()
        raise
    await conn.close()  # ends the session, and its locks with it


def acted(system: str, action: str, request_id: str) -> None:
    """Done in the system (or a lift's held answer on record), the result not yet on record, the
    locks not yet given back: failpoint `restriction-acted`, for a lock's holder."""
    if action in EXCLUSIVE:
        failpoint("restriction-acted", f"{system}:{action}:{request_id}")
