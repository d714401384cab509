"""A UK complaint's progress letters (Data Protection Act 2018 s. 164A(5)(b): the controller informs the
complainant about the progress of the complaint). Its acknowledgement promises to keep them
informed; while the complaint waits for compliance, a `complaint_progress` letter goes the policy's
`remedies.uk_gdpr.appeal.progress_days` after receipt and every that many days again, until its
outcome, a withdrawal or a close. Other requests, a GDPR request and a US state law's appeal, get
none. On the fast stack (tests/workflow_stack.py), the letters as sent (tests/letters_as_sent.py)."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from activities.context import ActivityContext
from activities.letters import LetterActivities
from activities.lifecycle import LifecycleActivities
from activities.mail import Mailer
from api.read_models.evidence import assemble_evidence
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.domain.deadlines import compute_deadline, receipt_date_for
from dsrflow.domain.references import short_reference
from dsrflow.i18n import long_date, translations
from dsrflow.stores.requests_store import create_request, set_status
from policy.model import PolicyError, parse_policy
from schemas.progress_note import TellProgressInput
from schemas.requests import DenialReason, NewRequest, RequestStatus
from schemas.workflow import ApproveInput, CancelInput, DenyInput, LetterJob, StartRequest
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, LOADED, REQUEST_ID, as_sent, both, received_on
from tests.policy_once import policy_of
from tests.support import letters_for, stored_request, unique_email
from tests.workflow_fakes import SHIPPED, RequestSpec
from tests.workflow_stack import FastStack, refused, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

PURPOSE = "complaint_progress"
EVERY = SHIPPED.policy.complaint_progress_days("uk_gdpr")


def _complaint(received: datetime, **facts) -> RequestSpec:
    return RequestSpec(regime="uk_gdpr", complaint=True, approval_required=True, received_at=received, **facts)


def _at_nine(received: datetime, days: int) -> datetime:
    """9:00 the controller's time, `days` after the controller's day of receipt."""
    tz = ZoneInfo(SHIPPED.policy.defaults.timezone)
    day = received.astimezone(tz).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 9, tzinfo=tz)


def _progress(stack: FastStack, request_id: str) -> list[tuple[str, dict, datetime]]:
    fakes = stack.fakes
    return [(job.key, job.params, fakes.sent_at[f"{request_id}:{PURPOSE}:{job.key}"]) for job in fakes.letters
            if job.request_id == request_id and job.purpose == PURPOSE]


async def _until(stack: FastStack, when: datetime) -> None:
    await stack.sleep(when - await stack.env.get_current_time())


async def test_an_undecided_uk_complaint_is_told_of_its_progress_until_its_outcome(stack: FastStack):
    assert EVERY == 14  # the shipped policy's: s. 164A(5)(b)
    received = await stack.env.get_current_time()
    request = await stack.open(_complaint(received))
    await request.until(lambda s: s.status == "awaiting_approval")
    due = (await request.state()).current_due_date
    assert due == compute_deadline("uk_gdpr", receipt_date_for(received, "Europe/Brussels", "uk_gdpr"),
                                   appeal=True).due_date

    await _until(stack, _at_nine(received, EVERY) - timedelta(minutes=5))
    assert _progress(stack, request.id) == []  # not before its day
    await _until(stack, _at_nine(received, 3 * EVERY) + timedelta(hours=1))  # past the due date (day 30)
    sent = _progress(stack, request.id)
    assert [(key, params) for key, params, _ in sent] == [
        ("1", {"number": 1, "stage": "compliance", "late": False}),
        ("2", {"number": 2, "stage": "compliance", "late": False}),
        ("3", {"number": 3, "stage": "compliance", "late": True})]  # late: says so, and apologises
    for (_, _, at), n in zip(sent, (1, 2, 3), strict=True):
        assert abs(at - _at_nine(received, n * EVERY)) < timedelta(minutes=1)

    await request.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))
    assert (await request.result()).status == "completed"
    await stack.sleep(timedelta(days=3 * EVERY))
    assert stack.fakes.subject_letters(request.id) == ["acknowledgement", PURPOSE, PURPOSE, PURPOSE, "response"]


@pytest.mark.parametrize("close", ["deny", "withdraw"])
async def test_no_progress_letter_follows_a_denial_or_a_withdrawal(stack: FastStack, close: str):
    received = await stack.env.get_current_time()
    request = await stack.open(_complaint(received))
    await request.until(lambda s: s.status == "awaiting_approval")
    await _until(stack, _at_nine(received, EVERY) + timedelta(hours=1))
    if close == "deny":
        await request.handle.execute_update(DSR.deny, DenyInput(
            reason_code=DenialReason.other, explanation="We maintain our decision on the request", actor="compliance:cy"))
    else:
        await request.handle.execute_update(DSR.cancel, CancelInput(
            reason="The complainant withdrew it by phone", withdrawn_by_subject=True))
    await request.result()
    await stack.sleep(timedelta(days=4 * EVERY))
    closing = "denial" if close == "deny" else "cancellation"
    assert stack.fakes.subject_letters(request.id) == ["acknowledgement", PURPOSE, closing]


@pytest.mark.parametrize("regime, complaint", [("gdpr", False), ("uk_gdpr", False), ("vcdpa", True)],
                         ids=["gdpr-request", "uk-request", "vcdpa-appeal"])
async def test_other_requests_and_a_us_appeal_get_no_progress_letter(stack: FastStack, regime: str, complaint: bool):
    request = await stack.open(RequestSpec(regime=regime, complaint=complaint, approval_required=True))
    await request.until(lambda s: s.status == "awaiting_approval")
    await stack.sleep(timedelta(days=4 * EVERY))
    assert (await request.state()).status == "awaiting_approval"
    assert stack.fakes.subject_letters(request.id) == ["acknowledgement"]


async def test_a_progress_letters_step_run_again_sends_it_once_under_its_key(stack: FastStack):
    """The relay fails (transient) as the first progress letter goes: its step runs again under the
    same key (`<request>:complaint_progress:1`, the outbox's idempotency key: activities/outbox.py
    `send_once`), never a new one, so a retry after a crash cannot send it twice."""
    fakes = stack.fakes
    received = await stack.env.get_current_time()
    tries: list[str] = []

    def failing(job) -> bool:
        if job.purpose == PURPOSE:
            tries.append(job.key)
        return job.purpose == PURPOSE and len(tries) < 3

    fakes.fail("send_letter", lambda: OSError("relay unreachable"), when=failing)
    request = await stack.open(_complaint(received))
    await request.until(lambda s: s.status == "awaiting_approval")
    await _until(stack, _at_nine(received, EVERY) + timedelta(hours=1))
    await _until(stack, _at_nine(received, 2 * EVERY) - timedelta(hours=1))
    assert tries[:3] == ["1", "1", "1"]
    assert [key for key, _, _ in _progress(stack, request.id)] == ["1"]


# ---- a progress letter staff send by hand (workflows/complaint_progress.py ProgressByHand) ---------

async def test_staff_tell_progress_once_per_press_and_the_next_letter_counts_from_theirs(stack: FastStack):
    """Staff tell the complainant of progress on day 20 (after the automatic letter of day 14): a
    double press (the same `once` key) sends one letter quoting the note, recorded with who sent
    it; the day-28 letter no longer goes, the next goes 14 days after theirs, and says when the
    one after it would. The same key with other words is refused."""
    received = await stack.env.get_current_time()
    request = await stack.open(_complaint(received))
    await request.until(lambda s: s.status == "awaiting_approval")
    await _until(stack, _at_nine(received, EVERY + 6) + timedelta(hours=3))  # day 20, noon
    note = "We asked the billing team to review the <records> again & expect an answer next week."
    press = TellProgressInput(note=note, once="console:compliance:ab12:0", actor="compliance:ab12")
    await request.handle.execute_update(DSR.tell_progress, press)
    await request.handle.execute_update(DSR.tell_progress, press)  # pressed twice
    assert "already used for another progress letter" in await refused(request.handle.execute_update(
        DSR.tell_progress, press.model_copy(update={"note": "Other words for the same press of the button"})))
    by_hand = _at_nine(received, EVERY + 6).date() + timedelta(days=EVERY)  # day 34
    assert [(key, params) for key, params, _ in _progress(stack, request.id)] == [
        ("1", {"number": 1, "stage": "compliance", "late": False}),
        ("staff-1", {"number": 1, "stage": "compliance", "late": False, "note": note, "by_hand": True,
                     "next_date": by_hand.isoformat()})]
    [told] = [e for e in stack.fakes.events if e.request_id == request.id and e.event_type == "complaint.progress_told"]
    assert (told.actor, told.data) == ("compliance:ab12", {"note": note, "letter": "staff-1"})

    await _until(stack, _at_nine(received, 2 * EVERY) + timedelta(hours=1))  # day 28: moved
    assert [key for key, _, _ in _progress(stack, request.id)] == ["1", "staff-1"]
    await _until(stack, _at_nine(received, EVERY + 6 + EVERY) + timedelta(hours=1))  # day 34
    key, params, at = _progress(stack, request.id)[-1]
    assert (key, params["next_date"]) == ("2", (by_hand + timedelta(days=EVERY)).isoformat())
    assert abs(at - _at_nine(received, 2 * EVERY + 6)) < timedelta(minutes=1)


async def test_staff_cannot_tell_progress_of_a_decided_complaint_or_of_another_request(stack: FastStack):
    """Approved, its outcome on its way (its letter failing, the workflow waits for staff): refused."""
    stack.fakes.fail("send_letter", lambda: OSError("relay unreachable"), when=lambda job: job.purpose == "response")
    complaint = await stack.open(_complaint(await stack.env.get_current_time()))
    other = await stack.open(RequestSpec(regime="uk_gdpr", approval_required=True))
    for request in (complaint, other):
        await request.until(lambda s: s.status == "awaiting_approval")
    press = TellProgressInput(note="Our compliance team has the file", actor="compliance:ab12")
    assert "not one" in await refused(other.handle.execute_update(DSR.tell_progress, press))
    await complaint.handle.execute_update(DSR.approve, ApproveInput(actor="compliance:bo"))
    await stack.sleep(timedelta(minutes=1))  # its response is under way, retried
    assert "this complaint is decided" in await refused(complaint.handle.execute_update(DSR.tell_progress, press))
    assert [j.purpose for j in stack.fakes.letters if j.purpose == PURPOSE] == []


# ---- the letter ----------------------------------------------------------------------------------

async def test_a_progress_letter_sent_again_goes_once_and_is_in_the_evidence_pack(pool, settings, mail_sink):
    """With the real activities and PostgreSQL: `prepare_request` gives a UK complaint the policy's
    days (none to the request it complains of); the letter's step run again (a worker lost after
    the relay took it) sends nothing more; the letter is on the trail and in the evidence pack."""
    loaded = policy_of(settings)
    email = unique_email("progress")
    refused = await stored_request(pool, settings, "progress-refused", type_="erasure", regime="uk_gdpr", email=email)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{refused}:test-denial", event_type="letter.sent", actor="workflow",
                           request_id=refused, data={"purpose": "denial", "refusal": True})
    row, _ = await create_request(pool, NewRequest(type="erasure", regime="uk_gdpr", appeal_of=refused,
                                                   subject={"email": email}, identity_attested=True),
                                  loaded_policy=loaded, secret=load_secret_key(settings), actor="test",
                                  idempotency_key=None)
    complaint = str(row["id"])
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    lifecycle = LifecycleActivities(ctx)
    facts = await lifecycle.prepare_request(StartRequest(request_id=complaint, policy_version=loaded.version))
    assert facts.progress_days == EVERY
    refused_facts = await lifecycle.prepare_request(StartRequest(request_id=refused, policy_version=loaded.version))
    assert refused_facts.progress_days is None

    job = LetterJob(request_id=complaint, purpose=PURPOSE, key="1",
                    params={"number": 1, "stage": "compliance", "late": False})
    first, again = LetterActivities(ctx), LetterActivities(ctx)
    assert not (await first.send_letter(job)).already_sent
    assert (await again.send_letter(job)).already_sent
    [letter] = letters_for(mail_sink, complaint, PURPOSE)
    assert "An update on your complaint" in letter["Subject"]
    pack = await assemble_evidence(pool, complaint, secret=load_secret_key(settings))
    assert pack is not None
    assert [lt["purpose"] for lt in pack["letters"]] == [PURPOSE]
    sent = await pool.fetch("SELECT data->>'purpose' AS purpose FROM audit_events "
                            "WHERE request_id = $1::uuid AND event_type = 'letter.sent'", complaint)
    assert [e["purpose"] for e in sent] == [PURPOSE]  # on the trail once


@pytest.mark.parametrize("outcome", ["response-sent", "closed"])
async def test_a_progress_letter_overtaken_by_the_outcome_does_not_go(pool, settings, mail_sink, outcome):
    """The letter's step retried through a relay outage (or was under way) while the complaint's
    response went, or the complaint was withdrawn: sent then, it would follow the outcome saying
    "we are still looking into it". It does not go, and the trail says why."""
    email = unique_email("progress-overtaken")
    complaint = await stored_request(pool, settings, "progress-overtaken", type_="erasure", regime="uk_gdpr",
                                     email=email)
    async with pool.acquire() as conn:
        if outcome == "closed":
            await set_status(conn, complaint, RequestStatus.cancelled, event_key=f"{complaint}:test-withdrawn",
                             actor="test")
        else:
            await conn.execute(
                "INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id, "
                "body_text, body_html) VALUES ($1, $2, 'response', $3, 'Outcome', '<m@x>', '', '')",
                f"{complaint}:response:1", complaint, email)
    ctx = ActivityContext(pool=pool, settings=settings, mailer=Mailer(settings), secret=load_secret_key(settings))
    job = LetterJob(request_id=complaint, purpose=PURPOSE, key="2",
                    params={"number": 2, "stage": "compliance", "late": False})
    receipt = await LetterActivities(ctx).send_letter(job)
    assert not receipt.already_sent and letters_for(mail_sink, complaint, PURPOSE) == []
    told = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1::uuid "
                            "AND event_type LIKE 'letter.%'", complaint)
    assert [e["event_type"] for e in told] == ["letter.overtaken"]


def _said(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("late", [False, True], ids=["on-time", "late"])
async def test_the_progress_letter_says_where_the_complaint_stands(language: str, late: bool):
    received = received_on("uk_gdpr")  # London's day: 30 January, 31 in Brussels
    deadline = compute_deadline("uk_gdpr", received, appeal=True)
    letter = await as_sent(PURPOSE, "erasure", {"number": 3 if late else 1, "stage": "compliance", "late": late},
                           regime="uk_gdpr", language=language, country="GB", details={"appeal_of": APPEAL_OF},
                           due_date=deadline.due_date, extended_due_date=deadline.extended_due_date,
                           current_due_date=deadline.due_date)
    t = translations(language)
    remedies = LOADED.in_language(language).remedies_for("uk_gdpr", "GB")
    due = long_date(deadline.due_date, language)
    assert letter.subject == t.gettext("An update on your complaint (ref. %(ref)s)") % {
        "ref": short_reference(REQUEST_ID)}
    for part in [part.replace(" ,", ",").replace(" .", ".") for part in both(letter)]:
        assert _said(t.gettext("We received your complaint about our decision on request %(id)s on %(date)s. This "
                               "e-mail tells you where it stands.") % {
            "id": short_reference(APPEAL_OF), "date": long_date(received, language)}) in part
        assert t.gettext("We are still looking into it: it is now awaiting the decision of our compliance "
                         "team.") in part
        # When we write next: counted from the controller's day of receipt, the day the letters go by.
        next_day = received_on("gdpr") + timedelta(days=EVERY * (4 if late else 2))  # Brussels: 31 January
        assert t.gettext("If we have not told you the outcome by %(date)s, we will write to you again "
                         "then.") % {"date": long_date(next_day, language)} in part
        sorry = t.gettext("We aimed to tell you the outcome by %(date)s, and we have not yet done so. We are sorry "
                          "for the delay. We will tell you the outcome as soon as we can.") % {"date": due}
        aim = t.gettext("We aim to tell you the outcome by %(date)s.") % {"date": due}
        assert (sorry in part, aim in part) == (late, not late)
        # The Commissioner, as a complaint not yet decided names them; no further complaint to us.
        assert _said(remedies.appeal.complaint_without_appeal) in part and remedies.authority.name in part
        assert t.gettext("Your right to complain to us") not in part
        if late:
            assert t.gettext("You can also complain to %(authority)s about the delay (see below).") % {
                "authority": remedies.authority_title} in part
    if language == "en":
        text = _said(letter.text)
        assert "Complaint about: request" in text and "Information Commissioner's Office" in text


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_progress_letter_sent_by_hand_quotes_the_note_as_written(language: str):
    """Staff's note, in the letter as they wrote it (its HTML escaped: no markup of theirs reaches
    the complainant's mail client), and the next letter's day the workflow counted from it."""
    received = received_on("uk_gdpr")
    deadline = compute_deadline("uk_gdpr", received, appeal=True)
    note = "We asked <b>billing</b> to check again & will write by Friday."
    letter = await as_sent(PURPOSE, "erasure", {"number": 1, "stage": "review", "late": False, "note": note,
                                                "by_hand": True, "next_date": "2027-03-01"},
                           regime="uk_gdpr", language=language, country="GB", details={"appeal_of": APPEAL_OF},
                           due_date=deadline.due_date, extended_due_date=deadline.extended_due_date,
                           current_due_date=deadline.due_date)
    t = translations(language)
    assert "&lt;b&gt;billing&lt;/b&gt; to check again &amp; will" in letter.html and "<b>billing" not in letter.html
    for part in both(letter):
        assert t.gettext("From the member of our team who is handling your complaint:") in part and note in part
        assert t.gettext("If we have not told you the outcome by %(date)s, we will write to you again then.") % {
            "date": long_date(date(2027, 3, 1), language)} in part


def test_progress_days_are_a_complaints_alone_from_1_to_90_days():
    content = copy.deepcopy(LOADED.content)
    for days in (0, 91):
        content["remedies"]["uk_gdpr"]["appeal"]["progress_days"] = days
        with pytest.raises(PolicyError, match=r"remedies\.uk_gdpr\.appeal\.progress_days"):
            parse_policy(content)
    content["remedies"]["uk_gdpr"]["appeal"]["progress_days"] = 90
    assert parse_policy(content).policy.complaint_progress_days("uk_gdpr") == 90
    content = copy.deepcopy(LOADED.content)
    content["remedies"]["vcdpa"]["appeal"]["progress_days"] = 14
    with pytest.raises(PolicyError, match=r"remedies\.vcdpa\.appeal\.progress_days: an appeal under vcdpa"):
        parse_policy(content)
