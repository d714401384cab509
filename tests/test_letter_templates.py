"""Letter rendering: every purpose renders from a full context, strictly, escaped where HTML."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from jinja2.exceptions import UndefinedError

from activities.letter_templates import (
    TEMPLATE_DIR,
    RenderedLetter,
    longdate,
    longdatetime,
    render_letter,
)
from dsrflow.domain.references import short_reference
from schemas.vocabulary import PURPOSES, SUBJECT_PURPOSES
from tests.letter_contexts import (
    AUTHORITY,
    EVIL_NAME,
    EXTRA,
    REQUEST_ID,
    SUBJECT_EMAIL,
    base_context,
    full_context,
)


def test_every_purpose_has_three_templates():
    assert set(EXTRA) == set(PURPOSES)
    for purpose in PURPOSES:
        for suffix in ("subject.j2", "txt.j2", "html.j2"):
            assert (TEMPLATE_DIR / f"{purpose}.{suffix}").is_file(), (purpose, suffix)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_renders_with_single_line_subject_and_request_id(purpose):
    letter = render_letter(purpose, full_context(purpose))
    assert isinstance(letter, RenderedLetter)
    assert letter.subject.strip() == letter.subject
    assert letter.subject
    assert "\n" not in letter.subject and "\r" not in letter.subject
    # The subject reads (and quotes) the short reference; staff and processors get the full id.
    reference = short_reference(REQUEST_ID) if purpose in SUBJECT_PURPOSES else REQUEST_ID
    assert reference in letter.text
    assert reference in letter.html
    assert letter.html.startswith("<!DOCTYPE html>")
    assert '<html lang="en"' in letter.html
    assert letter.text.endswith("\n") and not letter.text.endswith("\n\n")
    assert "\n\n\n" not in letter.text


@pytest.mark.parametrize("purpose", SUBJECT_PURPOSES)
def test_subject_letters_name_controller_contact_and_escape_html(purpose):
    letter = render_letter(purpose, full_context(purpose))
    for part in (letter.text, letter.html):
        assert "privacy@onetagger.com" in part
        assert "Connexeon BV" in part
        assert "0867496536" in part
    # The name is escaped in HTML, verbatim in the plain text.
    assert "<script>" not in letter.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in letter.html
    assert f"Dear {EVIL_NAME}," in letter.text
    # The subject's name never goes into the subject line.
    assert "script" not in letter.subject


def test_greeting_without_a_name():
    ctx = full_context("acknowledgement")
    ctx["subject"]["name"] = None
    letter = render_letter("acknowledgement", ctx)
    assert letter.text.startswith("Hello,\n")
    assert "None" not in letter.text and "None" not in letter.html


def test_link_is_attribute_escaped_in_html():
    letter = render_letter("verification", full_context("verification"))
    assert 'href="https://privacy.onetagger.com/verify?token=abc&amp;x=1"' in letter.html
    assert "https://privacy.onetagger.com/verify?token=abc&x=1" in letter.text


@pytest.mark.parametrize("kind", ["due_in_7_days", "due_in_2_days", "overdue", "needs_attention"])
def test_staff_alert_has_id_but_no_subject_identity(kind):
    days_left = {"due_in_7_days": 7, "due_in_2_days": 2, "overdue": -3, "needs_attention": 12}[kind]
    letter = render_letter("staff_alert", full_context("staff_alert", kind=kind, days_left=days_left))
    assert letter.subject.startswith(f"[dsrflow] Request {short_reference(REQUEST_ID)} ")
    for part in (letter.subject, letter.text, letter.html):
        assert SUBJECT_EMAIL not in part
        assert "<script" not in part and "&lt;script" not in part and "alert(" not in part
        assert "jane" not in part.lower()
    assert REQUEST_ID in letter.text and REQUEST_ID in letter.html
    assert "Billing connector awaits a manual step." in letter.text


def test_a_staff_alerts_detail_loses_any_address_a_third_party_put_in_it():
    """A processor's or a relay's words in the detail may quote the subject's address: the alert
    carries none, and the detail is cut to a paragraph (attacker audit)."""
    detail = f"the processor answered: unknown subject {SUBJECT_EMAIL}. " + "x" * 5000
    letter = render_letter("staff_alert", full_context("staff_alert", kind="needs_attention", days_left=3,
                                                       detail=detail))
    assert "unknown subject <address>" in letter.text and "unknown subject &lt;address&gt;" in letter.html
    assert SUBJECT_EMAIL not in letter.text and SUBJECT_EMAIL not in letter.html
    assert "x" * 2001 not in letter.text


def test_staff_alert_subject_lines():
    def subject(kind, days_left):
        return render_letter("staff_alert", full_context("staff_alert", kind=kind, days_left=days_left)).subject

    assert subject("due_in_7_days", 7) == "[dsrflow] Request 9WPSS9NUBP due in 7 days"
    assert subject("due_in_2_days", 2) == "[dsrflow] Request 9WPSS9NUBP due in 2 days"
    assert subject("due_in_2_days", 1) == "[dsrflow] Request 9WPSS9NUBP due in 1 day"
    assert subject("overdue", -1) == "[dsrflow] Request 9WPSS9NUBP overdue"
    assert subject("needs_attention", 5) == "[dsrflow] Request 9WPSS9NUBP needs attention"


def test_staff_alert_does_not_need_subject_in_context():
    ctx = full_context("staff_alert")
    del ctx["subject"]
    del ctx["portal_url"]
    letter = render_letter("staff_alert", ctx)
    assert REQUEST_ID in letter.text


def test_staff_alert_rejects_unknown_kind():
    with pytest.raises(ValueError, match="due_in_30_days"):
        render_letter("staff_alert", full_context("staff_alert", kind="due_in_30_days"))


@pytest.mark.parametrize(
    "reason_code", ["manifestly_unfounded", "excessive", "identity_not_established", "other"]
)
def test_denial_gives_reasons_authority_and_judicial_remedy(reason_code):
    letter = render_letter("denial", full_context("denial", reason_code=reason_code))
    for part in (letter.text, letter.html):
        assert AUTHORITY["name"] in part
        assert AUTHORITY["address"] in part
        assert AUTHORITY["website"] in part
        assert "judicial remedy" in part
        assert "lodge a complaint" in part
        assert "Court of First Instance" in part
        assert "Manifestly excessive request" in part
        assert "fifth identical request" in part
    if reason_code == "identity_not_established":
        assert "https://privacy.onetagger.com/requests" in letter.text.split("\n--\n")[0]


def test_denial_rejects_unknown_reason_code():
    with pytest.raises(ValueError, match="because_we_said_so"):
        render_letter("denial", full_context("denial", reason_code="because_we_said_so"))


def test_extension_states_reason_and_new_date():
    letter = render_letter("extension", full_context("extension"))
    for part in (letter.text, letter.html):
        assert "including archived billing data" in part
        assert "30 April 2026" in part
        assert "2 March 2026" in part
        assert "two further months" in part
        assert "Article 12(3)" in part


def test_acknowledgement_with_and_without_verification():
    with_code = render_letter("acknowledgement", full_context("acknowledgement"))
    without = render_letter("acknowledgement", full_context("acknowledgement", verification_required=False))
    for part in (with_code.text, with_code.html):
        assert "31 January 2026" in part
        assert "2 March 2026" in part
        assert "one month" in part
        assert "two further months" in part
        assert "separate e-mail" in part
    assert "separate e-mail" not in without.text
    assert "separate e-mail" not in without.html


def test_acknowledgement_other_regime_makes_no_gdpr_month_claim():
    ctx = full_context("acknowledgement")
    ctx["request"]["regime"] = "ccpa"
    letter = render_letter("acknowledgement", ctx)
    assert "one month" not in letter.text
    assert "2 March 2026" in letter.text


@pytest.mark.parametrize("purpose", ["verification", "reminder"])
def test_code_letters(purpose):
    ctx = full_context(purpose)
    letter = render_letter(purpose, ctx)
    for part in (letter.text, letter.html):
        assert ctx["code"] in part
        assert "7 February 2026, 15:05 CET (UTC+1)" in part  # 14:05 UTC, in Brussels
        assert "5 incorrect attempts" in part
    assert ctx["link"] in letter.text
    assert ctx["code"] not in letter.subject
    if purpose == "reminder":
        for part in (letter.text, letter.html):
            assert "not yet been able to confirm your identity" in part
            assert "no longer work" in part
            assert "close it" in part


def test_closed_unverified():
    letter = render_letter("closed_unverified", full_context("closed_unverified"))
    for part in (letter.text, letter.html):
        assert "closed" in part
        assert "7 February 2026, 15:05 CET (UTC+1)" in part  # 14:05 UTC, in Brussels
        assert "https://privacy.onetagger.com/requests" in part
        assert "not disclosed, changed or deleted" in part


def test_response_erasure_lists_erased_and_kept():
    letter = render_letter("response", full_context("response"))
    for part in (letter.text, letter.html):
        assert "What we erased" in part
        assert "contact details" in part and "marketing preferences" in part
        assert "What we kept, and why" in part
        # Records kept: the letter does not open by calling the request completed (Art. 12(4)).
        assert "We have now completed your request." not in part
        assert "We have now completed your request, except for the data named under “What we kept, and why” below." in part
        assert "Art. 17(3)(b)" in part
        assert "Belgian VAT Code Art. 60 §4" in part
        assert "31 December 2033" in part
        assert "restricted" in part
        assert "no personal data about you" not in part
        assert "Download your data" not in part
        # Rights reminder with contact details, no complaint paragraph needed here.
        assert "Your rights" in part


def test_response_without_any_data_found():
    ctx = full_context("response")
    ctx["outcome"].update(actions=[], kept=[])
    letter = render_letter("response", ctx)
    for part in (letter.text, letter.html):
        assert "We found no personal data about you in our systems." in part
        assert "What we kept" not in part


def test_response_access_with_package_link():
    ctx = full_context("response")
    ctx["request"].update(type="access", type_label="access (Art. 15 GDPR)")
    ctx["outcome"].update(
        actions=[{"system": "crm", "category": "account", "action": "exported", "records": 2}],
        kept=[],
        package_link="https://privacy.onetagger.com/v1/public/packages/tok123",
        package_expires_at=datetime(2026, 3, 9, 23, 59, tzinfo=UTC),
    )
    letter = render_letter("response", ctx)
    for part in (letter.text, letter.html):
        assert "https://privacy.onetagger.com/v1/public/packages/tok123" in part
        # 23:59 UTC on 9 March is the 10th in Brussels, the controller's timezone.
        assert "10 March 2026, 00:59 CET (UTC+1)" in part
        assert "What we found" in part
        assert "What we kept" not in part
        assert "Art. 19" not in part


def test_missing_top_level_key_raises():
    ctx = full_context("extension")
    del ctx["reason"]
    with pytest.raises(UndefinedError, match="reason"):
        render_letter("extension", ctx)


@pytest.mark.parametrize(
    ("purpose", "path"),
    [
        ("acknowledgement", ("request", "current_due_date")),
        ("denial", ("remedies", "judicial")),
        ("response", ("outcome", "kept")),
        ("verification", ("controller", "privacy_email")),
        ("staff_alert", ("request", "type_label")),
    ],
)
def test_missing_nested_key_raises_instead_of_blank(purpose, path):
    ctx = full_context(purpose)
    del ctx[path[0]][path[1]]
    with pytest.raises(UndefinedError):
        render_letter(purpose, ctx)


def test_unknown_purpose_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="apology"):
        render_letter("apology", base_context())


def test_date_filters():
    assert longdate(date(2026, 3, 2)) == "2 March 2026"
    assert longdate(date(2025, 12, 31)) == "31 December 2025"
    assert longdate(datetime(2026, 3, 2, 23, 30, tzinfo=UTC), timezone="UTC") == "2 March 2026"
    assert longdate(datetime(2026, 3, 2, 23, 30, tzinfo=UTC), timezone="Europe/Brussels") == "3 March 2026"
    assert longdatetime(datetime(2026, 3, 2, 14, 5, tzinfo=UTC), "en", "UTC") == "2 March 2026, 14:05 UTC"
    assert longdatetime(datetime(2026, 3, 2, 14, 5), "en", "Europe/Brussels") == "2 March 2026, 15:05 CET (UTC+1)"
    with pytest.raises(TypeError):
        longdate("2026-03-02")
    with pytest.raises(TypeError, match="timezone"):  # a moment's date depends on where it is read
        longdate(datetime(2026, 3, 2, 23, 30, tzinfo=UTC))


def test_staff_alert_kinds_follow_the_policy_warning_days():
    """A policy warning 10 and 3 days ahead gets those alerts (and no longer the default 7)."""
    ten = render_letter("staff_alert", full_context("staff_alert", kind="due_in_10_days", days_left=10,
                                                    warning_days=(10, 3)))
    assert ten.subject == "[dsrflow] Request 9WPSS9NUBP due in 10 days"
    assert "can be extended" in ten.text  # the Art. 12(3) reminder applies to every warning
    with pytest.raises(ValueError, match="due_in_7_days"):
        render_letter("staff_alert", full_context("staff_alert", kind="due_in_7_days", warning_days=(10, 3)))


def test_staff_alert_for_a_request_whose_registration_failed():
    """A step failing before the deadlines exist still reaches staff, saying so."""
    ctx = full_context("staff_alert", kind="needs_attention", days_left=None,
                       detail="the step prepare_request failed: ValueError: unknown country")
    ctx["request"] = {**ctx["request"], "due_date": None, "extended_due_date": None, "current_due_date": None}
    letter = render_letter("staff_alert", ctx)
    for part in (letter.text, letter.html):
        assert "not yet computed" in part and "prepare_request failed" in part
        assert "Days left" not in part and "None" not in part
