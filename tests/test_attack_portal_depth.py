"""Attacks on the subject portal and the public endpoints that the other attack tests do not
make (tests/test_attack_*.py, tests/test_hostile_forms.py, tests/test_portal.py): an anonymous
caller with a reference seen on a letter or a processor's page, and an address to try with it.
The real app, PostgreSQL and Temporal (docs/security.md, "The subject's side, in depth")."""

from __future__ import annotations

import re
import uuid

from dsrflow.domain.references import short_reference
from policy.model import DEFAULT_POLICY
from tests.ratelimit_support import app_clients, assert_limited, stored_for, unique_ip
from tests.support import english_only, staff_headers, stored_request, unique_email
from tests.test_uk_complaint_portal import _refused
from tests.yaml_files import dump_yaml, read_yaml

# A right-to-left override left open, and an isolate: what follows reads in another order.
OVERRIDE, ISOLATE = "\u202e", "\u2067"


def _page_words(page: str) -> str:
    """A page's text as a stranger compares two of them: the form's fresh submission id aside."""
    return re.sub(r'name="submission" value="[^"]*"', "", page)


async def test_the_complaint_form_does_not_tell_whose_request_a_reference_is(settings, pool, dev_server, task_queue):
    """The complaint form, sent with its reasons left empty, answered the reference's owner's
    address without a word on the reference and any other address "We have no request ... of
    yours": a stranger holding a reference (from a letter, a processor's confirmation page) found
    who made it, with nothing stored and no e-mail to the subject. Now the reference is judged
    only once the rest of the form is right, and every address reads the same page."""
    owner = unique_email("complaint-owner")
    rid = await stored_request(pool, settings, "complaint-owner", email=owner)
    async with app_clients(settings, dev_server.client, task_queue) as call_from:
        stranger = call_from(unique_ip())
        pages = []
        for email in (owner, unique_email("complaint-guess")):
            r = await stranger.post("/portal/complaints", data={
                "about": short_reference(rid), "email": email, "complaint_reasons": ""})
            assert r.status_code == 422, r.text
            pages.append(_page_words(r.text).replace(email, "EMAIL"))
        assert pages[0] == pages[1]
        assert "Tell us what your complaint is about" in pages[1]
        # A complaint whose form is right otherwise still hears that the reference is wrong.
        r = await stranger.post("/portal/complaints", data={
            "about": short_reference(rid), "email": unique_email("complaint-guess"), "complaint_reasons": "Why?"})
        assert r.status_code == 422 and "We have no request" in r.text
    assert await stored_for(pool, owner) == 1


async def test_what_a_subject_writes_reaches_staff_in_the_order_it_was_written(settings, pool, dev_server,
                                                                                 task_queue):
    """A name, a correction and a complaint's reasons sent with Unicode's bidirectional overrides
    and isolates: stored as they were, one left open made what follows it on the line read
    backwards where staff read it (the console, the evidence pack: there, the address after the
    name), and compliance approved a correction as they read it, not as it would be written to the
    systems. They are kept without them now, as the privacy mailbox keeps a subject's mail; a
    direction mark a name in Hebrew carries stays."""
    email = unique_email("reordered")
    async with app_clients(settings, dev_server.client, task_queue) as call_from:
        subject = call_from(unique_ip())
        r = await subject.post("/portal/requests", data={"type": "access", "email": email,
                                                         "name": f"Ada {OVERRIDE}ecalevoL"})
        assert r.status_code == 303, r.text
        r = await subject.post("/v1/public/requests", json={"type": "access", "email": email,
                                                            "name": f"\u05d3\u05df\u200f {ISOLATE}Cohen"})
        assert r.status_code == 202, r.text
        # Staff who copy a name from the subject's mail into their form: kept the same way.
        r = await subject.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                               json={"type": "access", "subject": {"email": email, "name": f"Bob {ISOLATE}ykslaM"}})
        assert r.status_code == 201, r.text
        names = await pool.fetch("SELECT subject_name FROM dsr_requests WHERE subject_email = $1 ORDER BY received_at",
                                 email)
        assert [row["subject_name"] for row in names] == ["Ada ecalevoL", "\u05d3\u05df\u200f Cohen", "Bob ykslaM"]

        refused = await _refused(pool, settings, "uk_gdpr", email)
        r = await subject.post("/v1/public/requests", json={
            "type": "erasure", "email": email, "appeal_of": refused,
            "complaint_reasons": f"You kept {OVERRIDE}secioven ym.\nPlease look again."})
        assert r.status_code == 202, r.text
        reasons = await pool.fetchval("SELECT details->>'complaint_reasons' FROM dsr_requests WHERE id = $1::uuid",
                                      r.json()["id"])
        assert reasons == "You kept secioven ym.\nPlease look again."
    async with app_clients(settings, dev_server.client, task_queue, policy_path=DEFAULT_POLICY) as call_from:
        r = await call_from(unique_ip()).post("/v1/public/requests", json={
            "type": "rectification", "email": email, "corrections": {"phone": f"+32 {OVERRIDE}99 99 99 074"}})
        assert r.status_code == 202, r.text
        details = await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1::uuid", r.json()["id"])
        assert details["corrections"] == {"phone": "+32 99 99 99 074"}


async def test_the_portals_code_and_new_code_posts_count_before_looking_the_request_up(settings, pool, dev_server,
                                                                                       task_queue):
    """The portal's code form and its "Send me a new code" looked the request up before counting
    the client: posts to ids that name no request were answered 404 without end, each a lookup,
    where the API's verify counts first. Now each counts first, and past its limit is a 429 page."""
    unknown = uuid.uuid4()
    async with app_clients(settings, dev_server.client, task_queue, rate_verify_per_ip="2/hour",
                           rate_resend_per_ip="2/hour") as call_from:
        stranger = call_from(unique_ip())
        for path, form in ((f"/portal/requests/{unknown}/verify", {"code": "123456"}),
                           (f"/portal/requests/{str(unknown).upper()}/resend", {})):
            answers = [await stranger.post(path, data=form) for _ in range(3)]
            assert [a.status_code for a in answers[:2]] == [404, 404], answers[0].text
            assert_limited(answers[2], 3600)
            assert answers[2].headers["content-type"].startswith("text/html")


async def test_an_appeal_the_policy_refuses_tells_no_one_whose_request_it_names(settings, pool, dev_server, task_queue,
                                                                                lifecycle_policy, tmp_path):
    """A complaint (or an appeal) over the API, in a language the controller does not write in:
    the owner's address passed the appeal's check and was refused for the language, any other
    for the appeal, and neither stored anything nor mailed the subject: a silent answer to "did
    this address make that refused request?". The policy's refusal now comes first, the same for
    every address."""
    owner = unique_email("appeal-owner")
    refused = await _refused(pool, settings, "uk_gdpr", owner)
    english = tmp_path / "english-only.yaml"
    english.write_text(dump_yaml(english_only(read_yaml(lifecycle_policy)), sort_keys=False))
    async with app_clients(settings, dev_server.client, task_queue, policy_path=english) as call_from:
        stranger = call_from(unique_ip())
        answers = []
        for email in (owner, unique_email("appeal-guess")):
            r = await stranger.post("/v1/public/requests", json={
                "type": "erasure", "email": email, "appeal_of": short_reference(refused),
                "complaint_reasons": "Why?", "language": "de"})
            answers.append((r.status_code, [error["field"] for error in r.json().get("errors", [])]))
        assert answers == [(422, ["language"])] * 2
    assert await stored_for(pool, owner) == 1


# Path segments and query values a stranger tries (percent-encoded as sent): NUL, CR/LF, a right-to-left
# override, bytes that are not UTF-8, climbing out, other spellings of an id, a long one.
HOSTILE_VALUES = ("%00", "a%00b", "%0d%0aSet-Cookie:%20x=1", "%E2%80%AE", "%FF", "..%2F..%2F", "//evil.example",
                  "{00000000-0000-4000-8000-000000000000}", "urn:uuid:00000000-0000-4000-8000-000000000000",
                  "KD7QX3M9TB%00", "f" * 63 + "%00", "x" * 5000)


async def test_the_portals_pages_answer_hostile_ids_and_queries_without_a_crash(settings, pool, dev_server,
                                                                               task_queue):
    """The portal's pages are left out of the OpenAPI document, so tests/test_api_fuzz.py never
    tries them: each GET, with each hostile value as its id, token or query, answers below 500,
    sets no header of the value's, and a page it serves is not kept by a browser or a proxy."""
    rid = await stored_request(pool, settings, "hostile-gets")
    async with app_clients(settings, dev_server.client, task_queue, rate_lookup_per_ip="100000/hour",
                           rate_link_per_ip="100000/hour") as call_from:
        stranger = call_from(unique_ip())
        for value in HOSTILE_VALUES:
            for path in (f"/portal/requests/{value}", f"/portal/requests/{value}/verify",
                         f"/portal/requests/{rid}/verify?token={value}", f"/portal/status?reference={value}",
                         f"/portal/complaints?about={value}", f"/portal/packages/{value}",
                         f"/v1/public/packages/{value}", f"/portal/requests/{rid}?lang={value}"):
                for accept in ("text/html", "*/*"):
                    r = await stranger.get(path, headers={"Accept": accept})
                    assert r.status_code < 500, (path[:80], r.status_code)
                    assert "x" not in r.cookies, path[:80]
                    if r.status_code == 200:
                        assert r.headers["cache-control"] == "no-store", path[:80]
