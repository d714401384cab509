"""Requests on randomly drawn paths, each seed one journey: systems that fail for good or answer
late, a database and a mail relay that stop answering for a while, and staff who answer whatever
the request shows them (a failed step, a task needing attention, an approval, a restriction to
lift) in the order a busy team would, now and then extending, denying or cancelling on the way.

Whatever the path, every request ends once its causes are fixed and staff have answered what it
showed them, and sends each of its letters at most once. A request that stops moving while showing
nothing to answer is what this looks for: the fan-out that waited for ever once a retry outlived it
(workflows/task_fanout.py SETTLE_AFTER_RETRIES) was such a request. A request staff deny or
cancel asks the systems nothing new afterwards (NO_RETRY_AFTER_CLOSE). Each journey's history
replays.
Same stack as tests/test_workflow_paths.py; a journey runs in about a second of real time.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError

from schemas.requests import DenialReason, RequestStatus, RequestType
from schemas.restrictions import LiftRestrictionInput
from schemas.staff_answers import ResolveTaskInput, RetryTaskInput
from schemas.steps import RetryStepInput, SkipStepInput
from schemas.workflow import (
    ApproveInput,
    CancelInput,
    DenyInput,
    ExtendInput,
    ObjectionDecision,
    RequestState,
    ResendInput,
)
from tests.staff_answers import hold, replays
from tests.workflow_fakes import FakeActivities, FakeSystem, RequestSpec
from tests.workflow_stack import FastStack, Request, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR
from workflows.owed_steps import ANSWER_WITHIN

# 106: a processor's retry still at work when staff close the request: the request ended without it
# before RETRIES_BEFORE_END (the test server's clock then stopped once the orphaned child ended).
# 477: a retry whose record the database holds, then staff close the request: the journey that ran the
# retry on the closed request before NO_RETRY_AFTER_CLOSE (600 seeds swept, it alone).
JOURNEYS = [*range(40), 106, 477]
# How long staff leave the request between two looks: mostly minutes (a processor's poll comes
# after 5, then 10, 20, 40), now and then hours or days.
SOON = [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=4), timedelta(minutes=20)]
LATER = [timedelta(hours=6), timedelta(days=2)]
# The steps whose database or relay may stop answering for a while, and what they carry.
FAULTS: list[tuple[str, Any]] = [
    ("record_event", lambda e: e.event_type in ("task.retried", "task.resolved", "approval.granted",
                                                "objection.decided", "verification.succeeded", "verification.failed")),
    ("issue_verification", lambda issue: issue.round > 1),
    ("send_letter", lambda job: job.purpose in ("acknowledgement", "response", "denial", "extension_notice")),
    ("transition", lambda t: True),
    ("record_task_result", lambda r: True),
]


def drawn_request(rng: random.Random) -> RequestSpec:
    systems = [FakeSystem("crm")]
    if rng.random() < 0.6:
        systems.append(FakeSystem("billing", broken="API key revoked" if rng.random() < 0.5 else None))
    for processor in ("processor", "mailer"):  # processors answer after minutes to hours of polls
        if rng.random() < 0.6:
            systems.append(FakeSystem(processor, connector="opendsr", answers_on_poll=rng.randint(1, 4),
                                      broken="the processor refuses this action" if rng.random() < 0.4 else None))
    kind = rng.choice([RequestType.erasure, RequestType.access, RequestType.restriction, RequestType.objection])
    return RequestSpec(request_type=kind, approval_required=rng.random() < 0.3, systems=systems,
                       attested=rng.random() < 0.7,
                       objection_scope="legitimate_interest" if kind == RequestType.objection else None)


async def answer(stack: FastStack, request: Request, update: Any, body: Any) -> bool:
    """Staff's call, as the console makes it: answered within ANSWER_WITHIN (moved on here, since
    an update does not move the test server's clock), or refused for a reason the page shows.
    Whether it was taken."""
    call = asyncio.ensure_future(request.handle.execute_update(update, body))
    await asyncio.sleep(0.05)
    if not call.done():
        await stack.sleep(ANSWER_WITHIN + timedelta(seconds=1))
    try:
        await asyncio.wait_for(call, 20)
    except WorkflowUpdateFailedError:
        return False  # refused: a race with the request itself, as a person pressing a stale button meets
    except RPCError as error:
        # The time-skipping server forgets an update's outcome once its workflow has ended (a
        # cancellation that ends it, say); the dev server keeps it.
        if "not found" not in str(error):
            raise
    return True


def retries_asked(fakes: FakeActivities, request: Request) -> set[tuple[str, int]]:
    """The (system, attempt) of every staff retry the systems were asked to carry out so far: of
    the request's own actions, not of a lift (compliance's later decision on a restriction left in
    force, which a closed request may still carry out)."""
    return {(c.task.system, c.attempt) for c in fakes.system_calls
            if c.request_id == request.id and c.attempt > 1 and c.task.action != "lift_restriction"}


def retries_on_record(fakes: FakeActivities, request: Request) -> set[tuple[str, int]]:
    """The (system, attempt) of every staff retry on record so far (`retry:<system>:<attempt>`)."""
    return {(key.split(":")[1], int(key.split(":")[2])) for key in
            (e.event_key for e in fakes.events if e.request_id == request.id and e.event_type == "task.retried")}


def waiting_for_staff(state: RequestState, fakes: FakeActivities, request: Request,
                      rng: random.Random) -> list[tuple[Any, Any]]:
    """What the request shows staff to answer, as the calls that answer it (causes fixed first)."""
    tasks = {r.system: r.status for r in state.results}
    if state.trouble is not None and state.trouble.answered_by is None:
        calls: list[tuple[Any, Any]] = [(DSR.retry_step, RetryStepInput(actor="compliance:journey"))]
        if state.trouble.skippable:  # a letter: staff may send it by hand instead
            calls.append((DSR.skip_step, SkipStepInput(note="Sent by post", actor="compliance:journey")))
        return calls
    stuck = [system for system, status in tasks.items() if status == "needs_attention"]
    if stuck:
        fakes.system(request.id, stuck[0]).broken = None
        calls = [(DSR.retry_task, RetryTaskInput(system=stuck[0], actor="compliance:journey")),
                 (DSR.resolve_task, ResolveTaskInput(system=stuck[0], note="Done by hand", actor="compliance:journey"))]
        # A closed request refuses those (bar a lift's own tasks); a restriction it left in force
        # still waits for its lift.
        return calls + lift(state, fakes, request, rng) if state.status.is_closed else calls
    if state.status == RequestStatus.awaiting_verification:  # the subject, from their e-mail (once it came)
        resend = (DSR.resend_verification, ResendInput(actor="subject"))
        if not any(c.request_id == request.id for c in fakes.challenges):
            return [resend]
        typed = fakes.code(request.id) if rng.random() < 0.7 else "000000"
        return [(DSR.verify, fakes.typed(request.id, typed)), resend]
    if state.awaiting_decision:
        return [(DSR.decide_objection, ObjectionDecision(compelling_grounds=rng.random() < 0.3,
                                                         explanation="Weighed against the subject's grounds",
                                                         actor="compliance:journey"))]
    if state.status == RequestStatus.awaiting_approval and state.approval is None:
        return [(DSR.approve, ApproveInput(actor="compliance:journey"))]
    return lift(state, fakes, request, rng)


def lift(state: RequestState, fakes: FakeActivities, request: Request, rng: random.Random) -> list[tuple[Any, Any]]:
    """The lift of a restriction in force: completed, or closed part-way (denied, withdrawn) once a
    system had restricted the data (workflows/restriction_lifecycle.py). One asked before the
    restriction is on record, or a second, is refused, as a stale button is."""
    reached = any(r.action == "restrict" and r.status == "done" for r in state.results)
    if state.request_type != RequestType.restriction or not (
            state.status == RequestStatus.completed or state.status.is_closed and reached):
        return []
    if rng.random() < 0.5:  # a system that cannot lift: its task needs attention after the lift
        rng.choice(fakes.specs[request.id].systems).broken = "this system cannot lift a restriction"
    return [(DSR.lift_restriction, LiftRestrictionInput(reason="The claim was settled", actor="compliance:journey"))]


def interference(rng: random.Random, state: RequestState) -> tuple[Any, Any] | None:
    """Now and then a decision nothing asked for, as staff take them; more often while an answer
    of theirs is still under way (its record or letter owed), which is when closing races it."""
    draw = rng.random() * (0.4 if state.owed else 1.0)
    if draw < 0.06:
        return DSR.extend, ExtendInput(reason="Six systems and years of records", actor="compliance:journey")
    if draw < 0.08:
        return DSR.deny, DenyInput(reason_code=DenialReason.manifestly_unfounded,
                                   explanation="The same request was answered last week", actor="compliance:journey")
    if draw < 0.10:
        return DSR.cancel, CancelInput(reason="Withdrawn by phone", withdrawn_by_subject=True, actor="agent:journey")
    return None


@pytest.mark.parametrize("journey", JOURNEYS)
async def test_every_request_ends_once_its_causes_are_fixed_and_staff_answer_what_it_shows(
        stack: FastStack, journey: int):
    rng = random.Random(journey)
    fakes = stack.fakes
    faults = rng.sample(FAULTS, rng.randint(0, 2))
    for activity, when in faults:
        hold(fakes, activity, when)
    request = await stack.open(drawn_request(rng))
    skipped: set[str] = set()  # the letters staff sent by other means
    closed_with: set[tuple[str, int]] | None = None  # once staff closed it: see below

    for step in range(60):
        if (await request.handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            break
        if faults and (step == 8 or rng.random() < 0.2):  # the database or the relay answers again
            for activity, _ in faults:
                fakes.heal(activity)
            faults = []
        await asyncio.sleep(0.05)
        state = await request.state()
        calls = waiting_for_staff(state, fakes, request, rng)
        # Decisions nothing asked for come early only: one late would end a request that had
        # stopped moving, and hide it.
        chosen = rng.choice(calls) if calls else interference(rng, state) if step < 6 else None
        if chosen is not None:
            if chosen[0] == DSR.skip_step and state.trouble is not None:
                skipped.add(state.trouble.about or "")
            if await answer(stack, request, *chosen) and chosen[0] in (DSR.deny, DSR.cancel) and closed_with is None:
                # What a closed request may still ask of the systems: the retries on record by
                # now (their attempts may start late). A retry recorded later never runs.
                closed_with = retries_asked(fakes, request) | retries_on_record(fakes, request)
        # Minutes at most while a fault lasts: every failed attempt meanwhile costs the test server
        # real time, and 20 minutes of them once outlasted its call.
        await stack.sleep(rng.choice(SOON[:3] if faults else SOON if rng.random() < 0.8 else LATER))
    else:
        state = await request.state()
        pytest.fail(f"journey {journey} did not end: {state.status.value}, trouble {state.trouble}, "
                    f"owed {state.owed}, tasks {[(r.system, r.status, r.attempt) for r in state.results]}")

    final = await request.result()
    assert final.trouble is None and final.owed == []
    if closed_with is not None:  # a withdrawn or denied request asks the systems nothing new
        assert retries_asked(fakes, request) <= closed_with, (retries_asked(fakes, request), closed_with)
    sent = Counter(fakes.subject_letters(request.id))
    assert all(n == 1 for purpose, n in sent.items() if purpose != "verification"), sent  # no letter twice
    if final.status == RequestStatus.completed:
        assert sent["response"] == 1 or "response letter" in skipped
        assert all(r.status == "done" for r in final.results)
    await replays(stack, request)
