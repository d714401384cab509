"""A granted appeal's (a UK complaint's) outcome gives the reasons for the decision: the VCDPA (Va.
Code § 59.1-577(C)), the CTDPA (Conn. Gen. Stat. § 42-518(d)) and the CPA (C.R.S. §
6-1-1306(3)(a)) have the controller tell the consumer of any action taken "including a written
explanation of the reasons for the decisions", as a DPO reads DPA 2018 s. 164A for a complaint.
A denial's letter carried compliance's explanation; an approval's response letter said what was
done and no reason. Now compliance write the reasons when they approve an appeal (`explanation`,
required there, refused elsewhere: api/staff_actions.py `approval_unfit`), the response letter
quotes them under "Why we decided this", and the audit trail keeps them beside the internal note.
Cheap: the letters as the activity renders them (tests/letters_as_sent.py), the API without the
engine (its refusals come first), the workflow on the fast stack (tests/workflow_stack.py)."""

from __future__ import annotations

import html
import re

import pytest

from api.read_models.event_lines import describe_event
from dsrflow.domain.audit import append_event
from dsrflow.i18n import translations
from schemas.workflow import ApproveInput
from tests.letters_as_sent import APPEAL_OF, as_sent, both
from tests.refused_requests import stored_refusal
from tests.support import assert_problem, console_sign_in, staff_headers, stored_request, unique_email
from tests.workflow_fakes import RequestSpec
from tests.workflow_stack import FastStack, stack_fixture  # noqa: F401 (the fixture)
from workflows.dsr import DataSubjectRequestWorkflow as DSR

REASONS = "Your account closed on 3 March, so the <records> we kept for its dispute & claims are no longer needed."
GRANTED = {"report": {"results": []}}


@pytest.mark.parametrize("regime", ["vcdpa", "uk_gdpr"])
@pytest.mark.parametrize("language", ["en", "de"])
async def test_a_granted_appeals_letter_quotes_its_reasons_escaped(regime: str, language: str):
    letter = await as_sent("response", "erasure", {**GRANTED, "approval_explanation": REASONS}, regime=regime,
                           language=language, country="US" if regime == "vcdpa" else "GB",
                           details={"appeal_of": APPEAL_OF})
    heading = translations(language).gettext("Why we decided this")
    assert heading != "Why we decided this" or language == "en"
    for part in both(letter):  # the plain text and the HTML as read, after what was done
        assert REASONS in part and part.index(heading) < part.index(REASONS), part
    # As written, in the HTML escaped: no markup of staff's reaches the subject's mail client.
    assert "&lt;records&gt; we kept for its dispute &amp; claims" in letter.html
    assert "<records>" not in letter.html
    assert re.search(rf"{heading}\n-+\n\n{re.escape(REASONS)}\n", letter.text)


async def test_a_response_without_reasons_has_no_such_section():
    """Any other request's response (and an appeal approved before the field existed) reads as before."""
    for details in ({}, {"appeal_of": APPEAL_OF}):
        letter = await as_sent("response", "erasure", GRANTED, regime="vcdpa", country="US", details=details)
        assert "Why we decided this" not in letter.text and "Why we decided this" not in letter.html


async def test_an_appeal_is_approved_with_its_reasons_and_nothing_else_with_them(app_http, pool, settings):
    """Refused before the workflow is asked (422 naming `explanation`): an appeal's approval without
    reasons, and reasons sent with another request's approval, which no letter would quote."""
    email = unique_email("appeal-reasons")
    refused = await stored_refusal(pool, settings, email, "vcdpa", type="erasure")
    appeal = await stored_request(pool, settings, "appeal-reasons", "erasure", regime="vcdpa", email=email,
                                  appeal_of=refused)
    other = await stored_request(pool, settings, "approve-other", "erasure", regime="vcdpa")
    compliance = await staff_headers(pool, "compliance")
    for body in (None, {"note": "Checked with legal"}):
        problem = assert_problem(await app_http.post(f"/v1/requests/{appeal}/approve", headers=compliance,
                                                     json=body), 422)
        assert problem["errors"] == [{"field": "explanation", "message": problem["errors"][0]["message"]}]
        assert "explanation: is required to grant an appeal" in problem["detail"]
    # Bounded as a denial's explanation is: 10 to 4,000 characters, no control character but line breaks.
    for said, why in (("ok", "at least 10 characters"), ("x" * 4001, "at most 4000 characters"),
                      ("Granted\x1b[31m in full", "control characters")):
        bad = assert_problem(await app_http.post(f"/v1/requests/{appeal}/approve", headers=compliance,
                                                 json={"explanation": said}), 422)
        assert bad["errors"][0]["field"] == "explanation" and why in bad["detail"], bad
    extra = assert_problem(await app_http.post(f"/v1/requests/{other}/approve", headers=compliance,
                                               json={"explanation": REASONS}), 422)
    assert extra["errors"] == [{"field": "explanation", "message": extra["errors"][0]["message"]}]
    assert "only for an appeal or a UK complaint" in extra["detail"]

    # The console's approve form asks for them, and says the same (its field left blank is left out).
    await pool.execute("UPDATE dsr_requests SET status = 'awaiting_approval' WHERE id = $1::uuid", appeal)
    csrf = await console_sign_in(app_http, pool, "compliance")
    page = await app_http.post(f"/console/requests/{appeal}/approve", data={"csrf_token": csrf, "explanation": " "})
    assert page.status_code == 422
    assert "explanation: is required to grant an appeal" in page.text
    assert 'id="approve-explanation" name="explanation"' in page.text and "Why you grant the appeal" in page.text
    await pool.execute("UPDATE dsr_requests SET status = 'awaiting_approval' WHERE id = $1::uuid", other)
    plain = await app_http.get(f"/console/requests/{other}")
    assert 'id="approve-note"' in plain.text and "approve-explanation" not in plain.text  # its form as before

    # Granted, as the workflow records it (the workflow test below): the evidence pack names the
    # reasons told to the subject apart from the note, in its decisions and its audit trail.
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{appeal}:approval", event_type="approval.granted", actor="compliance:bo",
                           request_id=appeal, data={"note": "Legal agrees", "explanation": REASONS})
    pack = (await app_http.get(f"/v1/requests/{appeal}/evidence", headers=compliance)).json()
    assert (pack["decisions"]["approval"]["note"], pack["decisions"]["approval"]["explanation"]) == (
        "Legal agrees", REASONS)
    shown = (await app_http.get(f"/v1/requests/{appeal}/evidence.html", headers=compliance)).text
    assert f"the reasons told to the subject in the response letter: “{html.escape(REASONS, quote=False)}”" in shown
    assert f"Release approved (reasons told to the subject: {html.escape(REASONS, quote=False)})" in shown


async def test_the_workflow_carries_an_appeals_reasons_to_its_letter_and_its_record(stack: FastStack):
    appeal = await stack.open(RequestSpec(regime="vcdpa", complaint=True, approval_required=True))
    plain = await stack.open(RequestSpec(regime="vcdpa", approval_required=True))
    for request in (appeal, plain):
        await request.until(lambda s: s.status == "awaiting_approval")
    await appeal.handle.execute_update(DSR.approve, ApproveInput(note="Legal agrees", explanation=REASONS,
                                                                 actor="compliance:bo"))
    await plain.handle.execute_update(DSR.approve, ApproveInput(note="Checked", actor="compliance:bo"))
    for request in (appeal, plain):
        assert (await request.result()).status == "completed"

    def response(request_id: str) -> dict:
        (job,) = [j for j in stack.fakes.letters if j.request_id == request_id and j.purpose == "response"]
        return job.params

    def granted(request_id: str) -> dict:
        (event,) = [e for e in stack.fakes.events if e.request_id == request_id and e.event_type == "approval.granted"]
        return event.data

    assert response(appeal.id)["approval_explanation"] == REASONS
    assert "approval_explanation" not in response(plain.id)
    assert granted(appeal.id) == {"note": "Legal agrees", "explanation": REASONS}
    assert granted(plain.id) == {"note": "Checked"}  # as every approval recorded before
    # The timeline (console and evidence pack) shows the reasons told, never the note.
    line = describe_event({"event_type": "approval.granted", "data": granted(appeal.id)})
    assert line == f"Release approved (reasons told to the subject: {REASONS})"
    assert describe_event({"event_type": "approval.granted", "data": granted(plain.id)}) == "Release approved"
