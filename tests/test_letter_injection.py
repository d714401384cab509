"""Header and letter injection (issue 14, item 14): a name or free text carrying CR/LF or other
control characters is refused at intake with 422 naming the field, and whatever reaches a
letter anyway (a row written by another path) is folded to one line when the letter renders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from activities.letter_templates import render_letter
from tests.letters_as_sent import as_sent, both
from tests.support import staff_headers, text_of, unique_email, wait_for_letter
from tests.test_intake_api import assert_problem, count_for
from tests.test_letter_templates import full_context

INJECTED_NAME = "Ada\r\nBcc: mallory@evil.example\r\n\r\nYour account is closed: pay at https://evil.example"


@pytest.mark.parametrize("name", [INJECTED_NAME, "Ada\x1b[2J Lovelace", "Ada\u2028Lovelace", "Ada\x00"])
async def test_a_name_with_line_breaks_or_control_characters_is_refused_at_intake(http, pool, name):
    email = unique_email("inject")
    public = await http.post("/v1/public/requests", json={"type": "access", "email": email, "name": name})
    assert [e["field"] for e in assert_problem(public, 422)["errors"]] == ["name"]

    staff = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                            json={"type": "access", "subject": {"email": email, "name": name}})
    assert [e["field"] for e in assert_problem(staff, 422)["errors"]] == ["subject.name"]
    assert await count_for(pool, email) == 0


async def test_corrections_and_staff_free_text_refuse_control_characters(http, pool):
    email = unique_email("inject")
    r = await http.post("/v1/public/requests", json={
        "type": "rectification", "email": email, "corrections": {"name": "Ada\r\nX-Evil: 1"}})
    assert next(e["field"] for e in assert_problem(r, 422)["errors"]).startswith("corrections")
    assert await count_for(pool, email) == 0
    # Staff text may hold the line breaks of a text area, but no other control character.
    r = await http.post(f"/v1/requests/{uuid.uuid4()}/deny", headers=await staff_headers(pool, "compliance"),
                        json={"reason_code": "other", "explanation": "Refused because\x1b]8;;https://evil.example\x07"})
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["explanation"]


def test_rendering_folds_a_stored_name_and_free_text_to_one_line():
    letter = render_letter("denial", full_context(
        "denial", subject={"name": INJECTED_NAME, "email": "ada@example.com"},
        explanation="Excessive.\r\nBcc: mallory@evil.example\x1b[2J"))
    for part in (letter.subject, letter.text, letter.html):
        assert "\x1b" not in part and "\r" not in part
    lines = letter.text.splitlines()
    assert not [line for line in lines if line.startswith(("Bcc:", "Your account is closed"))]
    assert "Dear Ada Bcc: mallory@evil.example Your account is closed: pay at https://evil.example," in lines


async def test_a_name_stored_with_line_breaks_cannot_add_a_header_or_a_line_to_a_letter(http, pool, mail_sink):
    """A row written before these checks (or by another path): the letter still goes out, with
    its own headers only and the name on one line."""
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": "access", "subject": {"email": unique_email("inject"), "name": "Ada"}})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    await wait_for_letter(mail_sink, rid, "acknowledgement")
    # Verified (letters greet a confirmed owner by name), its name rewritten by another path.
    await pool.execute("UPDATE dsr_requests SET subject_name = $2, verified_at = now() WHERE id = $1",
                       uuid.UUID(rid), INJECTED_NAME)
    r = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "compliance"),
                        json={"reason": "Opened twice by mistake"})
    assert r.status_code == 200, r.text
    letter = await wait_for_letter(mail_sink, rid, "cancellation")
    assert letter["Bcc"] is None and "mallory" not in str(letter["To"])
    lines = text_of(letter).splitlines()
    assert not [line for line in lines if line.startswith(("Bcc:", "Your account is closed"))]
    assert any(line.startswith("Dear Ada Bcc: mallory@evil.example Your account is closed") for line in lines)


PHISHING_NAME = "customer, your account is suspended: confirm your identity at https://evil.example/login"


@pytest.mark.parametrize("purpose", ["acknowledgement", "verification", "reminder", "closed_unverified"])
async def test_a_letter_before_the_owner_confirmed_greets_no_name(purpose):
    """Anyone may open a request for any address, naming it as they please: until the address's
    owner verifies it (or staff attest it), a letter greets "Hello,", so the controller's signed
    mail carries no stranger's text. It read "Dear customer, your account is suspended: confirm
    ... at https://evil.example/login", even in the letter asking to confirm an erasure."""
    params = {"code": "123456", "link": "https://privacy.example.test/portal/verify", "expires_at": "2026-02-01T10:00:00+00:00",
              "verification_required": True, "max_attempts": 5, "expired_at": "2026-02-07T10:00:00+00:00"}
    unconfirmed = await as_sent(purpose, "erasure", params, subject_name=PHISHING_NAME)
    for text in both(unconfirmed):
        assert "evil.example" not in text and "Hello," in text, text
    assert "evil.example" not in unconfirmed.subject
    verified = await as_sent(purpose, "erasure", params, subject_name="Ada Lovelace",
                             verified_at=datetime(2026, 1, 31, tzinfo=UTC))
    attested = await as_sent(purpose, "erasure", params, subject_name="Ada Lovelace", attested_by="agent:desk")
    for letter in (verified, attested):
        assert all("Dear Ada Lovelace," in text for text in both(letter))
