"""An attacker and a low-privilege member of staff at last session's new inputs (hCU): the note
a UK complaint's progress letter quotes (`tell-progress`), the subject's dispute statement
(`record-dispute`), an appeal's `explanation` on approval, the CCPA's opt-out question a policy
gives (`remedies.ccpa.sale_opt_out`). Each attack is one a user could make:
blank, padded, oversized and reordered text; markup, template syntax and mail headers in what
the letter, the timeline and the evidence pack show; calls without a token, with a forged one, an
agent's, a console post without its CSRF token; the same statement twice at once. The app
in-process (ASGI), PostgreSQL; letters as the letter activity renders them. The races against a
running workflow are in tests/test_attack_new_inputs_races.py. docs/security.md, "Last session's
new inputs"."""

from __future__ import annotations

import asyncio
import re

import pytest

from dsrflow.domain.audit import append_event
from policy.model import PolicyError, parse_policy
from tests.evidence_pages import readable
from tests.letters_as_sent import APPEAL_OF, LANGUAGES, as_sent, both, erasure_with_kept
from tests.refused_requests import stored_refusal
from tests.support import CSRF_FIELD, assert_problem, console_sign_in, staff_headers, stored_request, unique_email
from tests.test_ccpa_sale_opt_out import ASKED, LINK, _content

# Text that shows nothing, each long enough for the fields' ten characters: spaces, line breaks and
# tabs, zero-width spaces, ideographic and no-break spaces, a Hangul filler, combining marks alone.
BLANKS = (" " * 12, "\n" * 12, " \n\t" * 5, "\u200b" * 12, "\u3000" * 12, "\u00a0" * 12, "\u3164" * 12,
          "\u0301" * 12, "\u200b \u200d\ufeff" * 4)
PADDED = "ok" + " " * 10  # two characters that said "twelve"
REORDERED = "We agree in full \u202eton did ew\u202c with the refusal."
# What a hostile subject or a careless paste may put in text a letter, a page and a pack show (and
# what the audit chain's canonical JSON must hash as stored: an emoji, a decomposed accent).
HOSTILE = ("<script>alert(1)</script> {{ 7*7 }} {% for x in range(9) %}X{% endfor %} ${7*7} %(name)s "
           "\U0001F600 Cafe\u0301 "
           "\r\nBcc: mallory@evil.example\r\nSubject: Your account is closed\r\n\r\nPay at https://evil.example")
_FIELDS = (("tell-progress", "note"), ("approve", "explanation"), ("record-dispute", "statement"))


async def _targets(pool, settings, label: str) -> dict[str, str]:
    """A UK complaint awaiting approval (progress and approval are its), a refused CCPA correction."""
    email = unique_email(label)
    refused = await stored_refusal(pool, settings, email, "uk_gdpr", type="erasure")
    complaint = await stored_request(pool, settings, label, "erasure", regime="uk_gdpr", email=email, appeal_of=refused)
    correction = await stored_request(pool, settings, f"{label}-c", "rectification", regime="ccpa",
                                      corrections={"birth_date": "1984-03-12"})
    await pool.execute("UPDATE dsr_requests SET status = 'awaiting_approval' WHERE id = $1::uuid", complaint)
    await pool.execute("UPDATE dsr_requests SET status = 'denied' WHERE id = $1::uuid", correction)
    return {"tell-progress": complaint, "approve": complaint, "record-dispute": correction}


async def _disputes(pool, rid: str) -> list[str]:
    return [r["statement"] for r in await pool.fetch(
        "SELECT data->>'statement' AS statement FROM audit_events WHERE request_id = $1::uuid "
        "AND event_type = 'dispute.recorded' ORDER BY seq", rid)]


async def test_blank_padded_reordered_or_oversized_text_is_refused_naming_its_field(app_http, pool, settings):
    """Each is refused (422 naming the field) before anything is asked of the workflow or stored:
    blank text reached the letter as an empty quotation under "From the member of our team..." or
    "Why we decided this", and the timeline as a statement with no words; "ok" and ten spaces
    passed the ten characters; a right-to-left override made a dispute read otherwise than it was
    recorded. (Fails before: 201 for each blank statement, the engine asked for the others.)"""
    targets = await _targets(pool, settings, "hcu-blank")
    compliance = await staff_headers(pool, "compliance")
    for action, field in _FIELDS:
        url = f"/v1/requests/{targets[action]}/{action}"
        for text, why in ([(blank, "") for blank in BLANKS] + [(PADDED, "at least 10 characters"),
                                                              (REORDERED, "reorder text"),
                                                              ("x" * 4001, "at most")]):
            problem = assert_problem(await app_http.post(url, headers=compliance, json={field: text}), 422)
            assert problem["errors"][0]["field"] == field and why in problem["detail"], (action, text, problem)
    assert await _disputes(pool, targets["record-dispute"]) == []
    # Broken Unicode (a lone surrogate PostgreSQL's jsonb would refuse) and a body of megabytes.
    for action, field in _FIELDS:
        url = f"/v1/requests/{targets[action]}/{action}"
        for body, status in ('{"' + field + '": "half a pair \\ud800 of surrogates"}', 422), (
                '{"' + field + '": "' + "x" * 3_000_000 + '"}', 413):
            answer = await app_http.post(url, content=body, headers={**compliance, "Content-Type": "application/json"})
            assert answer.status_code == status, (action, answer.text[:300])
    assert await _disputes(pool, targets["record-dispute"]) == []


async def test_the_consoles_dispute_form_refuses_blank_and_reordered_statements(app_http, pool, settings):
    """The console's form says why on the panel and records nothing (fails before: recorded)."""
    rid = (await _targets(pool, settings, "hcu-form"))["record-dispute"]
    await console_sign_in(app_http, pool, "compliance")
    for text, said in (("\u200b" * 12, "show nothing"), (REORDERED, "reorder text")):
        page = (await app_http.get(f"/console/requests/{rid}")).text
        panel = page.split('id="accuracy-dispute"')[1]
        form = {"csrf_token": CSRF_FIELD.search(page).group(1), "statement": text,
                "submission": re.search(r'name="submission" value="([^"]+)"', panel).group(1)}
        answer = await app_http.post(f"/console/requests/{rid}/record-dispute", data=form)
        assert answer.status_code == 303, answer.text
        assert said in readable((await app_http.get(answer.headers["location"])).text)
    assert await _disputes(pool, rid) == []


async def test_the_consoles_progress_and_approval_forms_refuse_text_that_shows_nothing(app_http, pool, settings):
    """Compliance's forms strip spaces, not zero-width ones: a note or reasons of those are refused
    on the page, naming the field, before the workflow is asked (fails before: it was asked)."""
    complaint = (await _targets(pool, settings, "hcu-forms"))["approve"]
    csrf = await console_sign_in(app_http, pool, "compliance")
    for action, field in _FIELDS[:2]:
        page = await app_http.post(f"/console/requests/{complaint}/{action}",
                                   data={"csrf_token": csrf, field: "\u200b" * 12})
        assert page.status_code == 422, (action, page.status_code, page.text[:300])
        assert f"{field}: must say something" in readable(page.text), action


async def test_strangers_forged_tokens_and_an_agent_reach_none_of_them(app_http, pool, settings):
    """No token, a forged one, a subject's portal link token as a bearer: 401; an agent: 403; the
    console's form without its CSRF token, or from an agent's session: refused, nothing recorded.
    A request id that is no request: 404, as another's would be to someone who may not act."""
    targets = await _targets(pool, settings, "hcu-who")
    agent = await staff_headers(pool, "agent")
    for action, field in _FIELDS:
        url = f"/v1/requests/{targets[action]}/{action}"
        body = {field: "A statement of sufficient length."}
        for headers in ({}, {"Authorization": "Bearer dsr_forged"}, {"Authorization": "Bearer " + "ab" * 32}):
            assert (await app_http.post(url, json=body, headers=headers)).status_code == 401, (action, headers)
        assert (await app_http.post(url, json=body, headers=agent)).status_code == 403, action
    missing = await app_http.post("/v1/requests/00000000-0000-4000-8000-000000000000/record-dispute",
                                  json={"statement": "A statement of sufficient length."},
                                  headers=await staff_headers(pool, "compliance"))
    assert missing.status_code == 404, missing.text

    rid = targets["record-dispute"]
    await console_sign_in(app_http, pool, "compliance")
    page = (await app_http.get(f"/console/requests/{rid}")).text
    submission = re.search(r'name="submission" value="([^"]+)"', page.split('id="accuracy-dispute"')[1]).group(1)
    forged = {"statement": "Recorded by a hostile page.", "submission": submission}
    for headers in ({}, {"Sec-Fetch-Site": "cross-site", "Origin": "https://hostile.example"}):
        refused = await app_http.post(f"/console/requests/{rid}/record-dispute", data=forged, headers=headers)
        assert refused.status_code == 403, refused.text
    csrf = await console_sign_in(app_http, pool, "agent")
    refused = await app_http.post(f"/console/requests/{rid}/record-dispute", data={**forged, "csrf_token": csrf})
    assert refused.status_code == 403, refused.text
    assert await _disputes(pool, rid) == []
    # What a compliance member recorded an agent does not read: the trail is compliance's.
    said = "The statement an agent is not shown."
    assert (await app_http.post(f"/v1/requests/{rid}/record-dispute", json={"statement": said},
                                headers=await staff_headers(pool, "compliance"))).status_code == 201
    assert said not in (await app_http.get(f"/console/requests/{rid}")).text
    for read in ("events", "evidence", "evidence.html"):
        assert (await app_http.get(f"/v1/requests/{rid}/{read}", headers=agent)).status_code == 403, read
    # The progress and approval forms, which an agent's page does not offer, posted by hand; and
    # from compliance's session without the form's CSRF token, or from another site's page.
    complaint = targets["approve"]
    for action, field in _FIELDS[:2]:
        refused = await app_http.post(f"/console/requests/{complaint}/{action}",
                                      data={"csrf_token": csrf, field: "A note of sufficient length."})
        assert refused.status_code == 403, (action, refused.text[:300])
    await console_sign_in(app_http, pool, "compliance")
    for action, field in _FIELDS[:2]:
        for headers in ({}, {"Sec-Fetch-Site": "cross-site", "Origin": "https://hostile.example"}):
            refused = await app_http.post(f"/console/requests/{complaint}/{action}", headers=headers,
                                          data={field: "A note of sufficient length."})
            assert refused.status_code == 403, (action, headers, refused.text[:300])


async def test_the_same_statement_twice_at_once_is_recorded_once(app_http, pool, settings):
    """Two calls at the same instant under one key: one event, both answered 201; under one key
    with other words, one recorded and the other refused 409 naming the recorded one's rule."""
    rid = (await _targets(pool, settings, "hcu-race"))["record-dispute"]
    url = f"/v1/requests/{rid}/record-dispute"
    keyed = {**await staff_headers(pool, "compliance"), "Idempotency-Key": "race-1"}
    same = await asyncio.gather(*(app_http.post(url, json={"statement": "The same words, sent twice."},
                                                headers=keyed) for _ in range(2)))
    assert [r.status_code for r in same] == [201, 201], [r.text for r in same]
    keyed["Idempotency-Key"] = "race-2"
    words = ("First words of the subject.", "Other words of the subject.")
    other = await asyncio.gather(*(app_http.post(url, json={"statement": said}, headers=keyed) for said in words))
    assert sorted(r.status_code for r in other) == [201, 409], [r.text for r in other]
    won = words[[r.status_code for r in other].index(201)]
    assert await _disputes(pool, rid) == ["The same words, sent twice.", won]

    # A correction refused at the instant the statement comes: recorded against the refusal, or
    # refused (409) as not yet decided; never recorded against a correction still running.
    running = await stored_request(pool, settings, "hcu-race-running", "rectification", regime="ccpa",
                                   corrections={"birth_date": "1984-03-12"})
    await pool.execute("UPDATE dsr_requests SET status = 'in_progress' WHERE id = $1::uuid", running)
    _, answer = await asyncio.gather(
        pool.execute("UPDATE dsr_requests SET status = 'denied' WHERE id = $1::uuid", running),
        app_http.post(f"/v1/requests/{running}/record-dispute", json={"statement": "Recorded as it is refused."},
                      headers=keyed))
    assert answer.status_code in (201, 409), answer.text
    assert len(await _disputes(pool, running)) == (answer.status_code == 201)


async def test_hostile_text_reads_as_written_in_the_timeline_and_the_evidence_pack(app_http, pool, settings):
    """Markup, template syntax and header lines in a statement, an explanation and a progress note
    are shown as text (escaped; `{{ 7*7 }}` never 49) in the console's timeline and the evidence
    pack's HTML, and kept as written in its JSON (the audit chain's events)."""
    targets = await _targets(pool, settings, "hcu-shown")
    compliance = await staff_headers(pool, "compliance")
    r = await app_http.post(f"/v1/requests/{targets['record-dispute']}/record-dispute", headers=compliance,
                            json={"statement": HOSTILE})
    assert r.status_code == 201, r.text
    complaint = targets["approve"]
    async with pool.acquire() as conn:  # as the workflow records them (activities' event records)
        for event_type, field in (("approval.granted", "explanation"), ("complaint.progress_told", "note")):
            await append_event(conn, event_key=f"{complaint}:hcu:{event_type}", request_id=complaint,
                               event_type=event_type, actor="compliance:test", data={field: HOSTILE})
    for rid, times in ((targets["record-dispute"], 1), (complaint, 2)):
        await console_sign_in(app_http, pool, "compliance")
        pages = [(await app_http.get(f"/console/requests/{rid}")).text,
                 (await app_http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text]
        for page in pages:
            assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
            shown = readable(page)
            assert shown.count("{{ 7*7 }} {% for x in range(9) %}X{% endfor %} ${7*7} %(name)s") >= times, shown
            assert "XXXXXXXXX" not in shown
        pack = (await app_http.get(f"/v1/requests/{rid}/evidence", headers=compliance)).json()
        kept = [e for e in pack["audit"]["events"] if HOSTILE in (e["data"] or {}).values()]
        assert len(kept) == times, pack["audit"]["events"]
        assert pack["audit"]["verification"]["ok"] is True, pack["audit"]["verification"]  # the chain still holds


@pytest.mark.parametrize("language", LANGUAGES)
async def test_hostile_text_in_a_letter_adds_no_header_line_or_markup(language: str):
    """The progress letter's note and the response's reasons, in each language, with markup,
    template syntax and a forged header block: the subject line stays the letter's own, one line;
    the text quotes it on one line (no "Bcc:" or "Subject:" line of its own), the HTML escaped,
    the template syntax as typed. A note in another language than the letter's is quoted as written."""
    progress = await as_sent("complaint_progress", "erasure", {"number": 1, "stage": "compliance", "late": False,
                                                               "note": HOSTILE, "by_hand": True, "next_date": None},
                             regime="uk_gdpr", language=language, country="GB", details={"appeal_of": APPEAL_OF})
    granted = await as_sent("response", "erasure", {"report": {"results": []}, "approval_explanation": HOSTILE},
                            regime="uk_gdpr", language=language, country="GB", details={"appeal_of": APPEAL_OF})
    folded = " ".join(HOSTILE.split())
    for letter in (progress, granted):
        assert "\n" not in letter.subject and "\r" not in letter.subject and "evil" not in letter.subject
        assert not re.search(r"^\s*(Bcc|Subject):", letter.text, re.MULTILINE), letter.text
        assert "<script>" not in letter.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in letter.html
        for part in both(letter):
            assert folded in part and "XXXXXXXXX" not in part, part


_SELLING = {"sells_or_shares": True}


@pytest.mark.parametrize(("asked", "where"), [
    ({"link": "javascript:alert(1)"}, r"sale_opt_out\.link: URL scheme should be 'http' or 'https'"),
    ({"link": "data:text/html,<b>opt out</b>"}, r"sale_opt_out\.link: URL scheme"),
    ({"heading": " " * 12}, r"sale_opt_out\.heading: .*show nothing"),
    ({"heading": "Opt out\r\nBcc: mallory@evil.example"}, r"sale_opt_out\.heading: .*one line"),
    ({"text": "We sell \u202eton od ew\u202c your data; opt out at"}, r"sale_opt_out\.text: .*reorder text"),
    ({"text": "\u200b" * 12}, r"sale_opt_out\.text: .*show nothing"),
])
def test_the_sale_opt_out_question_the_policy_gives_is_refused_blank_broken_or_reordered(asked, where):
    """The CCPA's opt-out question (`remedies.ccpa.sale_opt_out`) is read by the subject under our
    letterhead: a link that is no web address, a blank or reordered heading or text, a heading
    with a line break (a forged line of the plain text) stop the policy loading, naming the key.
    (Fails before but for the links: a heading of spaces headed an empty section.)"""
    heading, text = ASKED["en"]
    with pytest.raises(PolicyError, match=where):
        parse_policy(_content(**_SELLING, sale_opt_out={"heading": heading, "text": text, "link": LINK, **asked}))


async def test_the_sale_opt_out_link_with_markup_is_an_escaped_address_in_the_letter():
    """A link holding quotes and markup loads percent-encoded: the letter's HTML links to it and
    runs nothing; a translation's heading is held to the same rule as the policy's."""
    heading, text = ASKED["en"]
    hostile = 'https://evil.example/"><script>alert(1)</script>'
    loaded = parse_policy(_content(**_SELLING, sale_opt_out={"heading": heading, "text": text, "link": hostile}))
    letter = await as_sent("response", "erasure", erasure_with_kept(), regime="ccpa", country="US", loaded=loaded)
    assert "<script>" not in letter.html and 'href="https://evil.example/%22%3E%3Cscript%3E' in letter.html
    content = _content(**_SELLING, sale_opt_out={"heading": heading, "text": text, "link": "https://a.example/"})
    content["translations"]["nl"]["remedies"]["ccpa"]["sale_opt_out"]["heading"] = "\u3000" * 12
    with pytest.raises(PolicyError, match=r"sale_opt_out\.heading"):
        parse_policy(content)
