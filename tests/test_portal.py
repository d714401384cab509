"""The subject portal over the real app, worker and Temporal dev server: the request form, its
errors, verification by code and by the e-mail's link, the status page and the package page."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from html import unescape

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.verification import VerificationActivities
from dsrflow.crypto.hashing import token_hash
from dsrflow.domain.references import short_reference
from schemas.verification import Challenge, IssueChallenge
from tests.support import (
    api_client,
    letters_for,
    stored_request,
    unique_email,
    verification_code,
    verification_link,
    wait_for_letter,
)
from workers.dsr_worker import activity_context, build_worker


async def submit(http, **fields) -> str:
    """Send the form; return the request id from the redirect to its verification page."""
    form = await http.get("/portal")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    r = await http.post("/portal/requests", data={"submission": submission, **fields})
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"/portal/requests/([0-9a-f-]{36})/verify", r.headers["location"])
    assert match, r.headers["location"]
    return match.group(1)


async def test_form_is_labelled_and_needs_no_script(http):
    r = await http.get("/portal")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "<script" not in html
    # Every text input has a label pointing at it.
    for field in ("email", "name", "country", "correct_name", "other_corrections", "reference"):
        assert f'<label for="{field}">' in html, field
        assert f'id="{field}"' in html
    assert html.count('type="radio" name="type"') == 6
    assert r.headers["cache-control"] == "no-store"


async def test_submit_then_verify_by_code(http, pool, mail_sink):
    email = unique_email("portal")
    rid = await submit(http, type="access", email=email, country="fr", name="Ada Portal")

    row = await pool.fetchrow("SELECT * FROM dsr_requests WHERE id = $1", rid)
    assert (row["subject_email"], row["country"], row["channel"], row["origin"]) == (email, "FR", "web", "subject")
    page = await http.get(f"/portal/requests/{rid}/verify")
    assert page.status_code == 200
    assert email not in page.text  # the page never shows the address

    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    wrong = "000000" if code != "000000" else "111111"
    r = await http.post(f"/portal/requests/{rid}/verify", data={"code": wrong})
    assert r.status_code == 400
    assert "That code is not right. You have 4 attempts left." in r.text

    r = await http.post(f"/portal/requests/{rid}/verify", data={"code": f"{code[:3]} {code[3:]}"})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/portal/requests/{rid}"
    status = await http.get(r.headers["location"])
    assert "you have confirmed that the request is yours" in status.text
    assert short_reference(rid) in status.text
    # Once: a reload (or a bookmark) shows the status alone.
    again = await http.get(r.headers["location"])
    assert again.status_code == 200 and "you have confirmed" not in again.text
    # The code sent again (a second tab, the back button) says there is nothing left to confirm.
    twice = await http.post(f"/portal/requests/{rid}/verify", data={"code": code})
    assert twice.status_code == 409 and "There is nothing to confirm for this request." in twice.text
    assert "access to your personal data" in status.text
    assert email not in status.text and "Ada Portal" not in status.text


async def test_the_confirmation_cookie_is_secure_behind_a_tls_proxy(settings, pool, dev_server, task_queue, mail_sink):
    """Behind a TLS proxy the API is reached over http and its public URL is https: the console's
    cookies were Secure then, the portal's confirmation cookie was not (it read the scheme alone)."""
    proxied = settings.model_copy(update={"public_url": "https://privacy.example.com"})
    async with (build_worker(dev_server.client, proxied, pool, task_queue=task_queue),
                api_client(proxied, dev_server.client, task_queue) as http):
        rid = await submit(http, type="access", email=unique_email("proxied"))
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        confirmed = await http.post(f"/portal/requests/{rid}/verify", data={"code": code})
    assert confirmed.status_code == 303, confirmed.text
    cookie = next(v for k, v in confirmed.headers.multi_items() if k == "set-cookie" and "confirmed" in v)
    assert "secure" in cookie.lower() and "httponly" in cookie.lower(), cookie


async def test_too_many_wrong_codes_leave_the_button_for_a_new_code(http, pool, mail_sink):
    rid = await submit(http, type="erasure", email=unique_email("locked"))
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        assert (await http.post(f"/portal/requests/{rid}/verify", data={"code": wrong})).status_code == 400
    locked = await http.post(f"/portal/requests/{rid}/verify", data={"code": wrong})
    assert locked.status_code == 423
    assert "that was the last attempt" in locked.text and "Or ask for a new code below." in locked.text
    assert "The link in our latest e-mail still works" in locked.text  # a lock is on the code alone
    # No code box that would refuse every code now; besides the e-mail's link, the button works.
    assert 'name="code"' not in locked.text
    assert f'<form method="post" action="/portal/requests/{rid}/resend">' in locked.text
    # Even the right code is refused now, and the page says so with the same button.
    again = await http.post(f"/portal/requests/{rid}/verify", data={"code": code})
    assert again.status_code == 423 and "Or ask for a new code below." in again.text and 'name="code"' not in again.text

    resent = await http.post(f"/portal/requests/{rid}/resend")
    assert resent.status_code == 200 and "We have sent you a new code and link." in resent.text
    for _ in range(300):
        if len(letters_for(mail_sink, rid, "verification")) == 2:
            break
        await asyncio.sleep(0.1)
    new = verification_code(letters_for(mail_sink, rid, "verification")[-1])
    confirmed = await http.post(f"/portal/requests/{rid}/verify", data={"code": new})
    assert confirmed.status_code == 303, confirmed.text


async def test_link_shows_a_button_and_only_the_button_verifies(http, pool, mail_sink):
    rid = await submit(http, type="erasure", email=unique_email("link"))
    link = verification_link(await wait_for_letter(mail_sink, rid, "verification"))
    path = link.split("://", 1)[1].split("/", 1)[1]
    token = link.rsplit("token=", 1)[1]

    page = await http.get(f"/{path}")
    assert page.status_code == 200
    assert "Yes, I made this request" in page.text
    assert page.headers["referrer-policy"] == "same-origin"
    assert await pool.fetchval("SELECT status FROM dsr_requests WHERE id = $1", rid) == "awaiting_verification"

    r = await http.post(f"/portal/requests/{rid}/verify", data={"token": token})
    assert r.status_code == 303, r.text
    status = await http.get(f"/portal/requests/{rid}")
    assert "We are working on your request." in status.text or "answered" in status.text
    again = await http.get(f"/{path}")
    assert "There is nothing to confirm for this request." in again.text


async def test_errors_name_each_field_and_store_nothing(http, pool):
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    r = await http.post("/portal/requests", data={"email": "not-an-address", "country": "Belgium"})
    assert r.status_code == 422
    for message in ("Choose what you are asking us to do.", "Enter your e-mail address",
                    "Choose your country from the list"):
        assert message in r.text
    assert 'aria-invalid="true"' in r.text
    assert 'value="not-an-address"' in r.text  # what was typed is kept

    r = await http.post("/portal/requests", data={"type": "rectification", "email": unique_email("rect"),
                                                   "other_corrections": "no colon here"})
    assert r.status_code == 422
    assert "Write each other correction on its own line" in r.text
    r = await http.post("/portal/requests", data={"type": "restriction", "email": unique_email("restr")})
    assert r.status_code == 422
    assert "restriction needs at least one Art. 18(1) ground" in r.text
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before


async def test_type_details_reach_the_request(http, pool):
    # This policy has no systems, so nothing is rectifiable: the form says so and stores nothing
    # (tests/test_rectification_security.py submits corrections under the full policy).
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    r = await http.post("/portal/requests", data={"type": "rectification", "email": unique_email("details"),
                                                   "correct_name": "Ada Lovelace"})
    assert r.status_code == 422 and "nothing can be corrected on request here" in r.text
    # Said once, of no field: the name box's key is no word of the subject's ("name: aucune ...").
    r = await http.post("/portal/requests?lang=fr", data={
        "type": "rectification", "email": unique_email("details"), "language": "fr", "correct_name": "Ada Lovelace",
        "other_corrections": "téléphone : +32 470 99 99 99"})
    error = unescape(re.search(r'id="corrections-error"><span[^>]*>[^<]*</span> ([^<]*)</p>', r.text).group(1))
    assert r.status_code == 422 and error == "aucune donnée ne peut être rectifiée ici sur demande", error
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before

    rid = await submit(http, type="restriction", email=unique_email("details"),
                       restriction_grounds=["accuracy_contested", "objection_pending"])
    details = await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1", rid)
    assert details == {"restriction_grounds": ["accuracy_contested", "objection_pending"]}


async def test_same_form_sent_twice_opens_one_request(http, pool):
    email = unique_email("twice")
    form = await http.get("/portal")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    data = {"submission": submission, "type": "access", "email": email}
    first = await http.post("/portal/requests", data=data)
    second = await http.post("/portal/requests", data=data)
    assert first.headers["location"] == second.headers["location"]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 1


async def test_answers_do_not_reveal_whether_an_address_has_requests(http, pool):
    known = unique_email("known")
    await submit(http, type="access", email=known)
    pages = []
    for email in (known, unique_email("unknown")):
        rid = await submit(http, type="access", email=email)
        page = await http.get(f"/portal/requests/{rid}/verify")
        pages.append(page.text.replace(rid, "RID").replace(short_reference(rid), "REF"))
    assert pages[0] == pages[1]


async def test_status_lookup_by_reference(http, pool):
    rid = await submit(http, type="access", email=unique_email("lookup"))
    r = await http.get("/portal/status", params={"reference": f" {rid} "})
    assert r.status_code == 303 and r.headers["location"] == f"/portal/requests/{rid}"
    missing = await http.get(f"/portal/requests/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "We have no request with this reference" in missing.text


async def test_package_page_wraps_the_download_link(http, pool, settings):
    rid = await stored_request(pool, settings, "pkg")  # no workflow: it would give the row a link of its own
    token, expired = secrets.token_hex(32), secrets.token_hex(32)
    for tok, expires in ((token, datetime.now(UTC) + timedelta(days=7)),
                         (expired, datetime.now(UTC) - timedelta(minutes=1))):
        await pool.execute(
            """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at)
               VALUES ($1, $2, 'access', '/nonexistent', 20480, 42, $3, $4)""",
            uuid.uuid4(), rid, token_hash(tok), expires)

    page = await http.get(f"/portal/packages/{token}")
    assert page.status_code == 200
    assert "42 records" in page.text and "20.0 KB" in page.text
    # The download is the page's button (a POST), never the page itself: a mail scanner opening
    # the letter's link records no download in the subject's name.
    assert f'<form method="post" action="/portal/packages/{token}">' in page.text
    assert await pool.fetchval("SELECT downloaded_at FROM packages WHERE token_hash = $1", token_hash(token)) is None
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND "
                               "event_type = 'package.downloaded'", uuid.UUID(rid)) == 0

    # An older letter's link to the public API, opened by a browser or a mail scanner, leads to
    # the same page and records nothing; a program asking the API gets the file.
    opened = await http.get(f"/v1/public/packages/{token}", headers={"Accept": "text/html,*/*"})
    assert opened.status_code == 303 and opened.headers["location"] == f"/portal/packages/{token}"
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND "
                               "event_type = 'package.downloaded'", uuid.UUID(rid)) == 0

    gone = await http.get(f"/portal/packages/{expired}")
    assert gone.status_code == 410 and "This download link has expired; ask us for a new one." in gone.text
    # The letter's own link, opened in a browser, says so on a page too; the API still answers JSON.
    browser = await http.get(f"/v1/public/packages/{expired}", headers={"Accept": "text/html,*/*"})
    assert browser.status_code == 410 and browser.headers["content-type"].startswith("text/html")
    api = await http.get(f"/v1/public/packages/{expired}")
    assert api.status_code == 410 and api.headers["content-type"].startswith("application/problem+json")
    unknown = await http.get(f"/portal/packages/{secrets.token_hex(32)}")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")


async def test_a_download_cut_off_is_not_recorded_as_the_subjects(http, pool, settings):
    """The package's file cannot be read (purged meanwhile, the storage down): the subject gets no
    package, and the evidence does not say they downloaded it. Before, the download was recorded
    before a byte was read (crash audit)."""
    rid = await stored_request(pool, settings, "cut-off")
    token = secrets.token_hex(32)
    await pool.execute(
        """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at)
           VALUES ($1, $2, 'access', 'packages/missing.zip.enc', 20480, 42, $3, now() + interval '7 days')""",
        uuid.uuid4(), rid, token_hash(token))
    try:
        answer = await http.post(f"/portal/packages/{token}")
        assert answer.status_code != 200 or not answer.content.startswith(b"PK"), "a package was sent"
    except Exception:  # noqa: BLE001 - the stream broke off: what a subject's browser sees too
        pass
    assert await pool.fetchval("SELECT downloaded_at FROM packages WHERE token_hash = $1", token_hash(token)) is None
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 AND "
                               "event_type = 'package.downloaded'", uuid.UUID(rid)) == 0


def refusing_new_codes(settings, pool):
    """The real `issue_verification`, behind a relay that refuses every code after the first."""
    real = VerificationActivities(activity_context(settings, pool))

    @activity.defn(name="issue_verification")
    async def issue_verification(issue: IssueChallenge) -> Challenge:
        if issue.round > 1:
            raise ValueError("550 5.1.1 the relay refuses this recipient")
        return await real.issue_verification(issue)

    return issue_verification


async def test_a_new_code_the_relay_refuses_says_the_earlier_one_still_works(settings, pool, dev_server, task_queue,
                                                                              mail_sink):
    """The subject's "Send me a new code" while the relay refuses the new e-mail: the page says so
    and that nothing changed, and the code they have still confirms the request (before, every
    later attempt waited for ever, and the request closed unverified)."""
    async with (build_worker(dev_server.client, settings, pool, task_queue=task_queue,
                             activity_overrides=[refusing_new_codes(settings, pool)]),
                api_client(settings, dev_server.client, task_queue) as http):
        rid = await submit(http, type="erasure", email=unique_email("refused-resend"))
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))

        resent = await http.post(f"/portal/requests/{rid}/resend")

        assert resent.status_code == 409
        assert "We could not send a new code for this request just now." in resent.text
        assert "The code and link we sent you earlier still work." in resent.text
        assert "If an e-mail with a new code reaches you after all, that code works too." in resent.text
        confirmed = await asyncio.wait_for(http.post(f"/portal/requests/{rid}/verify", data={"code": code}), 30)
        assert confirmed.status_code == 303, confirmed.text


def losing_new_codes(settings, pool):
    """The real `issue_verification`, whose new codes go out but whose answer never reaches the
    workflow: what the workflow sees of a relay that accepts after the resend stopped waiting."""
    real = VerificationActivities(activity_context(settings, pool))

    @activity.defn(name="issue_verification")
    async def issue_verification(issue: IssueChallenge) -> Challenge:
        challenge = await real.issue_verification(issue)
        if issue.round > 1:
            raise ApplicationError("the relay answered after the step gave up", non_retryable=True)
        return challenge

    return issue_verification


async def test_a_new_code_e_mailed_after_its_resend_gave_up_confirms_the_request(settings, pool, dev_server,
                                                                                 task_queue, mail_sink):
    """The resend is refused, yet its e-mail went: the code in it (the subject's newest) confirms
    the request, as the page said it would."""
    async with (build_worker(dev_server.client, settings, pool, task_queue=task_queue,
                             activity_overrides=[losing_new_codes(settings, pool)]),
                api_client(settings, dev_server.client, task_queue) as http):
        rid = await submit(http, type="erasure", email=unique_email("late-code"))
        await wait_for_letter(mail_sink, rid, "verification")

        resent = await http.post(f"/portal/requests/{rid}/resend")

        assert resent.status_code == 409
        assert "If an e-mail with a new code reaches you after all, that code works too." in resent.text
        codes = [verification_code(m) for m in letters_for(mail_sink, rid, "verification")]
        assert len(codes) == 2 and codes[0] != codes[1]
        assert await pool.fetchval("SELECT state FROM mail_outbox WHERE mail_key = $1",
                                   f"letter:{rid}:verification:2") == "sent"
        confirmed = await asyncio.wait_for(http.post(f"/portal/requests/{rid}/verify", data={"code": codes[1]}), 30)
        assert confirmed.status_code == 303, confirmed.text
