"""Calling off an OpenDSR job whose request closed unanswered (withdrawn, cancelled, denied) while the
job was still at the processor: OpenDSR § 9, `DELETE .../requests/{subject_request_id}`, which a
processor must accept and may honour while the job is `pending` (202, a signed body).

Before, nothing told the processor: a subject who withdrew an erasure still had their data erased
there minutes later. Now the task's poll on such a request (activities/fanout.py sets
`Subject.closed`; the fan-out tells the task of the close, workflows/task_fanout.py) calls the job
off, and the task ends saying what happened there:
- 202: cancelled before the processor acted (the signature checked as every status answer's);
- refused (400/409: no longer pending; 404/405: a processor that does not take the call), the
  job's signed status says why: carried out (done, with its count: it acted), under way (it may
  have acted), cancelled already (our own earlier call, whose answer a killed worker never
  recorded: DELETE is idempotent in effect, so its retry is told the same), or still pending (the
  processor would not cancel it: it may still act, and must be told by hand);
- a 202 not taken (unsigned or signed by another key, about another job: a man in the middle, a
  cache answering for the processor) or any other refusal of the DELETE: the job's signed status
  decides as for a refusal (still pending: "not taken as a cancellation", outcome `unverified`);
  a status that cannot be taken either (unsigned, another job's) leaves how the job stands unknown:
  the same, staff alerted. Before, a 202 was the one answer not checked against the status, and a
  refused answer failed the poll: the task needed attention on a page nobody opens, no alert;
- the processor unreachable: retried as any poll is (the activity's retries), and on the last try
  the task ends needing staff, who must tell the processor by hand. It never holds the close: the
  request is closed, and its letter sent, before any of this.
Staff are alerted (once, keyed) where the processor may still act and was not told: refused while
pending, its answers not taken, or unreachable; a closed request is in no queue, and nobody opens its page.
Each call-off is one audit event (`processor.called_off`, keyed per job: once, whatever the retries).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import httpx
from temporalio import activity

from activities.acted_after_call_off import acted_message, alert_acted_after, record_acted_after
from activities.connectors.base import ActionOutcome, ConnectorEnv, PermanentConnectorError, Subject
from activities.connectors.opendsr_answers import OpenDsrMalformed, OpenDsrUnavailable, job_answer
from activities.connectors.opendsr_documents import outcome_from_status, reported_count
from activities.context import ActivityContext
from activities.sweep_alerts import sweep_alert
from dsrflow.domain.audit import append_event
from dsrflow.domain.processor_answers import (
    call_off_keys,
    called_off_event_key,
    called_off_later_key,
    closed_unanswered,
    recorded_statuses,
    went_back,
)
from dsrflow.infra.failpoints import failpoint
from schemas.workflow import LetterJob


class OpenDsrConnector(Protocol):
    """What the call-off needs of activities/connectors/opendsr.py's connector (which imports this)."""

    env: ConnectorEnv
    name: str
    base_url: str

    async def _call(self, method: str, url: str, *, json: dict[str, Any] | None = None, signed: bool | str = False,
                    accept: tuple[int, ...] = ()) -> httpx.Response: ...

    async def _request_status(self, external_id: str) -> dict[str, Any]: ...

CALLED_OFF = "processor.called_off"
# What the processor's answer to the call-off says of the job: the audit event's `outcome`.
OUTCOMES = ("cancelled", "in_progress", "completed", "refused", "unreachable", "unverified")
# The outcomes (and statuses) that are the job's signed status: those a later answer may go back on.
_SIGNED_STATES = ("pending", "in_progress", "completed", "cancelled")


def _last_try() -> bool:
    """Whether this is the activity's last try (its retry policy's maximum attempts): then a
    processor still unreachable ends the task rather than failing it."""
    if not activity.in_activity():
        return False
    info = activity.info()
    most = info.retry_policy.maximum_attempts if info.retry_policy is not None else 0
    return most > 0 and info.attempt >= most


async def closed_meanwhile(env: ConnectorEnv, request_id: str) -> bool:
    """Whether an access job's request has closed unanswered since its package began (read at each
    poll of the job: one indexed row). A connector without the app database (the protocol's own
    tests) reads no close. (A restriction's lift, which runs on its closed request, is no access.)"""
    return env.pool is not None and await closed_unanswered(env.pool, request_id)


async def call_off_access(connector: OpenDsrConnector, subject: Subject, job_id: str,
                          action: str = "access") -> ActionOutcome | None:
    """An access job's call-off, its request closed unanswered while its package was being built
    (activities/packages.py): as an erasure's (`call_off`, the same DELETE and outcomes), once the
    job is known to be there. None: the processor has no such job (its package stopped, or an
    earlier try was killed, before it asked), so there is nothing to call off. `action`: the task's
    (access or portability: a portability job's acted-after event said `access`, and the start sweep
    then found no task of that action to put it on)."""
    response = await connector._call("GET", f"{connector.base_url}/requests/{job_id}", signed=True, accept=(404,))
    if response.status_code == 404:
        return None
    return await call_off(connector, subject, job_id, action=action)


async def call_off(connector: OpenDsrConnector, subject: Subject, job_id: str, *,
                   action: str = "erase") -> ActionOutcome:
    """Cancel the job at its processor; the task's outcome says what happened there (`action`: what
    the job was asked to do, for the record of one the processor carried out after cancelling it)."""
    label = connector.env.system.label
    url = f"{connector.base_url}/requests/{job_id}"
    distrusted = None  # why the DELETE's answer was not taken: then the job's signed status decides
    document: dict[str, Any] = {}
    try:
        try:
            response = await connector._call("DELETE", url, signed=True, accept=(400, 404, 405, 409))
            if response.status_code == 202:
                job_answer(connector.name, response, "a cancellation", job_id)  # about this job, signed
                failpoint("opendsr-called-off", job_id)  # cancelled, and not yet on record
                state = "cancelled"
        except (PermanentConnectorError, OpenDsrMalformed) as exc:
            # A 202 unsigned, signed by another key, about another job or naming none (a man in the
            # middle, a cache's page answering for the processor), or any other refusal: not a
            # cancellation. Taken for one, the task said "cancelled before it acted" while the job
            # may still be pending; a malformed one was retried until the poll's last try.
            distrusted = str(exc)
        if distrusted is not None or response.status_code != 202:  # no longer pending, or not taken
            document = await connector._request_status(job_id)
            state = str(document.get("request_status"))
    except OpenDsrUnavailable as exc:
        if not _last_try():
            raise
        await _alert(connector, subject, str(exc))
        await _record(connector, subject, job_id, "unreachable")
        return ActionOutcome(status="needs_attention", external_id=job_id, message=(
            f"not called off: the request was closed unanswered, but {label} could not be reached to cancel "
            f"the job ({exc}); it may still act on it: tell it by hand that the request was withdrawn"))
    except PermanentConnectorError as exc:
        # The job's status unsigned, about another job, or refused: how the job stands is unknown, and
        # the poll's failure alone ended the task on a closed request's page nobody opens.
        why = "; ".join(filter(None, (distrusted, str(exc))))  # the DELETE's answer, and the status's
        await _alert(connector, subject, why)
        await _record(connector, subject, job_id, "unverified")
        return ActionOutcome(status="needs_attention", external_id=job_id, message=(
            f"not called off: the request was closed unanswered, but {label}'s answers to the call-off could not "
            f"be taken ({why}), so how the job stands is unknown; it may still act on it: tell it by "
            "hand that the request was withdrawn"))
    state, document = await _as_on_record(connector, subject, job_id, state, document)
    earlier = {data.get("outcome") for data in await _on_record(connector, subject, job_id)}
    if state == "completed" and "cancelled" in earlier:
        return await _acted_after(connector, subject, job_id, document, action)
    if state == "completed":
        await _record(connector, subject, job_id, "completed", reported_count(document))
        done = outcome_from_status(document)
        # Under way at the call-off (a retry reads it done): not known to have been done before the close.
        done.message = (f"carried out by {label}: the job was already under way when it was called off, and the "
                        "processor acted" if "in_progress" in earlier else
                        f"carried out by {label} before the request was closed: the job could no longer "
                        "be called off, and the processor acted")
        return done
    if state == "cancelled":
        await _record(connector, subject, job_id, "cancelled")
        return ActionOutcome(status="needs_attention", external_id=job_id, message=(
            f"called off: the request was closed unanswered, and the job was cancelled at {label} before it acted"))
    if state == "pending":
        failed = distrusted or f"HTTP {response.status_code}"
        await _alert(connector, subject, failed)
        if distrusted is not None:
            await _record(connector, subject, job_id, "unverified")
            return ActionOutcome(status="needs_attention", external_id=job_id, message=(
                f"not called off: the request was closed unanswered, but {label}'s answer to the call-off was "
                f"not taken as a cancellation ({distrusted}), and its signed status says the job is still pending; "
                "it may still act on it: tell it by hand that the request was withdrawn"))
        await _record(connector, subject, job_id, "refused")
        return ActionOutcome(status="needs_attention", external_id=job_id, message=(
            f"not called off: the request was closed unanswered, but {label} refused to cancel the job (HTTP "
            f"{response.status_code}) while it was still pending; it may still act on it: tell it by hand "
            "that the request was withdrawn"))
    await _record(connector, subject, job_id, "in_progress")
    return ActionOutcome(status="needs_attention", external_id=job_id, message=(
        f"not called off: the request was closed unanswered while {label} was already carrying out the job "
        "(no longer pending, so it could not be cancelled); it may have acted"))


async def _alert(connector: OpenDsrConnector, subject: Subject, failed: str) -> None:
    """Staff are told to tell the processor by hand, once (the alert's key), before the event that
    ends the task: a worker that dies in between alerts nobody twice (activities/held_lifts.py does
    the same). Without the app database and mail (the protocol's own tests) nobody is told."""
    env = connector.env
    if env.pool is None or env.mailer is None:
        return
    ctx = ActivityContext(pool=env.pool, settings=env.settings, mailer=env.mailer, secret=env.secret)
    await sweep_alert(ctx, LetterJob(
        request_id=subject.request_id, purpose="staff_alert", key=f"call-off-by-hand:{connector.name}:{subject.attempt}",
        to_staff=True, params={"kind": "needs_attention", "days_left": None,
                               "facts": {"what": "call_off_by_hand", "system": connector.name, "failed": failed}}))


async def _on_record(connector: OpenDsrConnector, subject: Subject, job_id: str) -> list[dict[str, Any]]:
    """What the job's call-off put on record so far, in order (`call_off_keys`): its first answer, and
    any later one (a retry that found it further along, its carrying out after its cancellation)."""
    pool = connector.env.pool
    if pool is None:
        return []
    rows = await pool.fetch("SELECT data FROM audit_events WHERE event_key = ANY($1::text[]) ORDER BY seq",
                            call_off_keys(subject.request_id, connector.name, job_id))
    return [json.loads(row["data"]) if isinstance(row["data"], str) else row["data"] for row in rows]


async def _as_on_record(connector: OpenDsrConnector, subject: Subject, job_id: str, state: str,
                        document: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The job's state, or the one its call-off put on record when this answer goes back on it: a
    retry (the first try's result lost with its worker) told `pending` after `completed` learns
    nothing new of the job (`went_back`), and said the processor refused while the job was pending,
    alerting staff, while the trail said it had acted. The record's count comes with it."""
    if state not in _SIGNED_STATES:
        return state, document
    recorded = {str(data.get("outcome")): data for data in await _on_record(connector, subject, job_id)}
    earlier = went_back(state, {outcome for outcome in recorded if outcome in _SIGNED_STATES})
    if earlier is None:
        return state, document
    return earlier, {"subject_request_id": job_id, "request_status": earlier,
                     "results_count": recorded[earlier].get("results_count")}


async def completed_stands(connector: OpenDsrConnector, subject: Subject, job_id: str,
                           document: dict[str, Any]) -> dict[str, Any]:
    """The job's status document, or `completed` where it reads `cancelled` and the processor's
    signed callback said `completed` for the task's attempt: a task told `completed` without a
    count polls for it, and read as it stood, the poll ended the task "the processor reports the
    request as cancelled", and needing attention, for a job carried out (which a cancellation cannot
    undo; the API refuses such a callback, went_back). Its count, not given, is none."""
    pool = connector.env.pool
    if document.get("request_status") != "cancelled" or pool is None:
        return document
    on_record = await recorded_statuses(pool, subject.request_id, connector.name, job_id, subject.attempt)
    if went_back("cancelled", on_record.statuses) != "completed":
        return document
    return {"subject_request_id": job_id, "request_status": "completed"}


async def _acted_after(connector: OpenDsrConnector, subject: Subject, job_id: str,
                       document: dict[str, Any], action: str) -> ActionOutcome:
    """A job carried out after this call-off had cancelled it (its retry, the first try's result lost
    with its worker, reads `completed` where `cancelled` is on record): the processor acted against
    our instruction. Staff alerted (once), then its own event (activities/acted_after_call_off.py)."""
    env = connector.env
    assert env.pool is not None  # something is on record
    if env.mailer is not None:
        await alert_acted_after(ActivityContext(pool=env.pool, settings=env.settings, mailer=env.mailer,
                                                secret=env.secret), subject.request_id, connector.name, subject.attempt)
    async with env.pool.acquire() as conn:
        await record_acted_after(conn, request_id=subject.request_id, system=connector.name, action=action,
                                 external_id=job_id, attempt=subject.attempt, count=reported_count(document),
                                 actor="system")
    done = outcome_from_status(document)
    done.message = acted_message(env.system.label)
    return done


async def _record(connector: OpenDsrConnector, subject: Subject, job_id: str, outcome: str,
                  count: int | None = None) -> None:
    """The call-off's audit event, once per job, with a carried-out job's count (a connector built
    without the app database, as in the protocol's own tests, records nothing). A retry that finds
    another outcome than the one on record (the job under way, then carried out) adds one for it,
    once per outcome: the trail says what is true at the end, where it kept the first answer alone."""
    pool = connector.env.pool
    if pool is None:
        return
    earlier = [data.get("outcome") for data in await _on_record(connector, subject, job_id)]
    if outcome in earlier:
        return
    key = called_off_event_key(subject.request_id, connector.name, job_id) if not earlier else \
        called_off_later_key(subject.request_id, connector.name, job_id, outcome)
    async with pool.acquire() as conn:
        await append_event(
            conn, event_key=key, event_type=CALLED_OFF, actor="system", request_id=subject.request_id,
            data={"system": connector.name, "attempt": subject.attempt, "outcome": outcome,
                  **({"results_count": count} if count is not None else {})})
