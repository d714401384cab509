"""An earlier e-mail's link, pressed before any lock (workflows/verification.py EARLIER_LINK), and
its code, typed before any lock (EARLIER_CODE).

Before, the link of an e-mail a newer code had replaced (a resend, the reminder) counted as a
wrong code: the portal said "That code is not right" and "N attempts left" to a subject who had
typed nothing, and five presses of the old e-mail's button locked the typed code. Now it is
answered as an earlier e-mail's link, with the ways on (the latest e-mail's link, a new code), and
costs no attempt; a forged token, no round's, still counts. Workflow paths on the time-skipping
stack (as tests/test_verification_steps.py); the portal and the public API in-process, with the
real worker, Temporal dev server and PostgreSQL. The earlier e-mail's code, typed, was likewise
"not right" and cost an attempt of the new code, one of the client's and a guess of the address.
"""

from __future__ import annotations

import asyncio
import json

from api.read_models.event_lines import describe_event
from schemas.requests import RequestType
from schemas.verification import VerifyAttempt, VerifyResult
from schemas.workflow import ResendInput
from tests.ratelimit_support import app_clients, unique_ip
from tests.staff_answers import replays
from tests.support import letters_for, unique_email, verification_code, verification_link, wait_for_letter
from tests.test_portal import submit
from tests.test_verification_steps import VERIFIED, attempt
from tests.workflow_fake_world import SHIPPED, _hash
from tests.workflow_stack import FastStack, stack_fixture, time_skipping_env  # noqa: F401 (the fixture)
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow as DSR

MAX_ATTEMPTS = SHIPPED.policy.verification.max_attempts
EARLIER = VerifyResult(verified=False, attempts_left=MAX_ATTEMPTS, locked=False, earlier_link=True)


def _earlier_code(left: int) -> VerifyResult:
    return VerifyResult(verified=False, attempts_left=left, locked=False, earlier_code=True)


def _json(data: str | dict) -> dict:
    return json.loads(data) if isinstance(data, str) else data


async def _failed_records(pool, rid: str, count: int) -> list[dict]:
    """The request's `verification.failed` records once `count` are on record (each is an owed step,
    written just after its answer: workflows/owed_steps.py)."""
    for _ in range(100):
        rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 "
                                "AND event_type = 'verification.failed' ORDER BY seq", rid)
        if len(rows) >= count:
            return [_json(r["data"]) for r in rows]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} verification.failed records expected for {rid}")


async def _told_earlier(http, rid: str, field: str, value: str, said: tuple[str, ...]) -> None:
    """The portal and the public API refuse an earlier e-mail's link token or code (`field`) as
    such: 410, the page saying `said` with the ways on, never "That code is not right", and no
    attempt spent."""
    page = await http.post(f"/portal/requests/{rid}/verify", data={field: value})
    assert page.status_code == 410, page.text
    for words in (*said, "Send me a new code", 'name="code"'):
        assert words in page.text, words
    assert "That code is not right" not in page.text and "attempts left" not in page.text
    answer = await http.post(f"/v1/public/requests/{rid}/verify", json={field: value})
    assert answer.status_code == 410, answer.text
    assert answer.json()["earlier_link" if field == "token" else "earlier_code"] is True
    assert answer.json()["attempts_left"] == MAX_ATTEMPTS and "earlier e-mail" in answer.json()["detail"]


def _link(request_id: str, round_: int) -> VerifyAttempt:
    """The link of a round's e-mail, as the fakes hash its token (tests/workflow_fakes.py)."""
    return VerifyAttempt(token_hash=_hash("token-hash", request_id, str(round_)))


async def test_an_earlier_e_mails_link_is_told_so_and_costs_no_attempt(stack: FastStack):
    """Round 1's link, pressed more times than there are attempts after a resend replaced it: each
    press is answered as an earlier e-mail's link, the typed code is not locked, and the press is
    on record as such; a forged token still counts; the latest e-mail's link confirms."""
    fakes = stack.fakes
    request = await stack.open(request_type=RequestType.access, attested=False)
    await request.until(lambda s: s.verification is not None and s.verification.round == 1)
    await request.handle.execute_update(DSR.resend_verification, ResendInput(actor="subject"))
    for _ in range(MAX_ATTEMPTS + 1):
        assert await request.handle.execute_update(DSR.verify, _link(request.id, 1)) == EARLIER
    state = await request.state()
    assert state.verification is not None and not state.verification.locked
    assert state.verification.attempts_left == MAX_ATTEMPTS

    forged = await request.handle.execute_update(DSR.verify, VerifyAttempt(token_hash=_hash("forged", request.id)))
    assert forged == VerifyResult(verified=False, attempts_left=MAX_ATTEMPTS - 1, locked=False)
    # The replaced code, typed more times than there are attempts: told so, never counted, no lock.
    for _ in range(MAX_ATTEMPTS + 1):
        assert await attempt(request, fakes, fakes.code(request.id, 1)) == _earlier_code(MAX_ATTEMPTS - 1)
    assert await attempt(request, fakes, "000000") == VerifyResult(  # a wrong code still counts
        verified=False, attempts_left=MAX_ATTEMPTS - 2, locked=False)
    assert await request.handle.execute_update(DSR.verify, _link(request.id, 2)) == VERIFIED
    assert (await request.result()).status == "completed"
    failed = [e for e in fakes.events if e.request_id == request.id and e.event_type == "verification.failed"]
    assert [(e.data.get("earlier_link", False), e.data.get("earlier_code", False), e.data["attempts_left"])
            for e in failed] == ([(True, False, MAX_ATTEMPTS)] * (MAX_ATTEMPTS + 1) + [(False, False, MAX_ATTEMPTS - 1)]
                                 + [(False, True, MAX_ATTEMPTS - 1)] * (MAX_ATTEMPTS + 1)
                                 + [(False, False, MAX_ATTEMPTS - 2)])
    await replays(stack, request)


async def test_the_portal_and_the_api_say_an_earlier_e_mails_link_no_longer_works(http, pool, mail_sink):
    """After "Send me a new code", the first e-mail's button: the page says that link is from an
    earlier e-mail, that the latest e-mail's link works, and offers a new code, never "That code is
    not right"; the API answers 410. Neither costs an attempt, and the timeline says what it was."""
    rid = await submit(http, type="access", email=unique_email("earlierlink"))
    first = verification_link(await wait_for_letter(mail_sink, rid, "verification")).rsplit("token=", 1)[1]
    assert (await http.post(f"/portal/requests/{rid}/resend")).status_code == 200
    assert len(letters_for(mail_sink, rid, "verification")) == 2

    await _told_earlier(http, rid, "token", first, (
        "This link is from an earlier e-mail: it no longer works.",
        "The link in our latest e-mail still works: open it to confirm that the request is yours.",
        "Or ask for a new code below."))

    pressed = {"method": "email_link", "attempts_left": MAX_ATTEMPTS, "earlier_link": True}
    assert await _failed_records(pool, rid, 2) == [pressed] * 2
    assert describe_event({"event_type": "verification.failed", "data": pressed}) == (
        f"Refused: an earlier e-mail's link (no attempt counted: {MAX_ATTEMPTS} attempt(s) left)")


async def test_the_portal_and_the_api_say_an_earlier_e_mails_code_no_longer_works(settings, pool, dev_server, mail_sink,
                                                                                   task_queue):
    """After "Send me a new code", the first e-mail's code typed on the page and sent to the API,
    more times than the client may try a code and than the address has guesses: each answered as
    an earlier e-mail's code (410), with the ways on, never "That code is not right"; nothing is
    spent, so the new code then confirms from the same client. The timeline says what it was."""
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_verify_per_request="2/hour",
                        rate_guess_per_email="2/7d") as call_from:
        http = call_from(unique_ip())
        rid = await submit(http, type="access", email=unique_email("earliercode"))
        first = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        assert (await http.post(f"/portal/requests/{rid}/resend")).status_code == 200
        latest = verification_code(letters_for(mail_sink, rid, "verification")[-1])
        assert latest != first

        for _ in range(3):
            await _told_earlier(http, rid, "code", first, (
                "That code is from an earlier e-mail: it no longer works.",
                "We have sent you more than one code: only the one in our latest e-mail works.",
                "The link in our latest e-mail still works"))

        confirmed = await http.post(f"/portal/requests/{rid}/verify", data={"code": latest})
        assert confirmed.status_code == 303, confirmed.text

    typed = {"method": "email_code", "attempts_left": MAX_ATTEMPTS, "earlier_code": True}
    assert await _failed_records(pool, rid, 6) == [typed] * 6
    assert describe_event({"event_type": "verification.failed", "data": typed}) == (
        f"Refused: an earlier e-mail's code (no attempt counted: {MAX_ATTEMPTS} attempt(s) left)")
