"""Team work over the real app: assigning and taking a request, the queue's "mine" and
"unassigned", internal notes (audited with their hash, in the evidence pack, never in a letter),
saved views per member of staff, the roles and CSRF on every post, the same over REST; and /docs
without a CDN."""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import parse_qs, urlparse

from api.auth import create_token
from tests.support import console_sign_in, staff_headers
from tests.test_console_pages import open_request


async def _token_id(pool, label: str) -> str:
    return str(await pool.fetchval("SELECT id FROM staff_tokens WHERE label = $1 ORDER BY created_at DESC LIMIT 1",
                                   label))


def _queue_ids(html: str) -> set[str]:
    return set(re.findall(r'data-request-id="([0-9a-f-]{36})"', html))


async def test_take_assign_and_the_queue_of_mine_and_unassigned(http, pool):
    mine, theirs, nobodys = [await open_request(http, pool) for _ in range(3)]
    await create_token(pool, "agent", "Bea (support)")
    bea = await _token_id(pool, "Bea (support)")
    csrf = await console_sign_in(http, pool, "agent")

    taken = await http.post(f"/console/requests/{mine}/assignment", data={"csrf_token": csrf, "assignee": "me"})
    assert taken.status_code == 303 and taken.headers["location"].endswith("#team")
    page = await http.get(taken.headers["location"])
    assert "Assigned to <strong>console tests</strong> (you)" in page.text and "Assignment saved." in page.text
    handed = await http.post(f"/console/requests/{theirs}/assignment", data={"csrf_token": csrf, "assignee": bea})
    assert handed.status_code == 303
    assert "Assigned to <strong>Bea (support)</strong>" in (await http.get(f"/console/requests/{theirs}")).text

    assert _queue_ids((await http.get("/console/", params={"assignee": "me"})).text) == {mine}

    async def unassigned(rid: str) -> set[str]:
        """The unassigned queue, narrowed to the request's subject (other tests' requests fill
        more than a page of it)."""
        email = await pool.fetchval("SELECT subject_email FROM dsr_requests WHERE id = $1", uuid.UUID(rid))
        return _queue_ids((await http.get("/console/", params={"assignee": "unassigned", "subject": email})).text)

    assert nobodys in await unassigned(nobodys)
    assert mine not in await unassigned(mine) and theirs not in await unassigned(theirs)
    queue = (await http.get("/console/", params={"assignee": bea})).text
    assert _queue_ids(queue) == {theirs} and "Bea (support)" in queue

    bad = await http.post(f"/console/requests/{nobodys}/assignment", data={"csrf_token": csrf, "assignee": "nobody-at-all"})
    assert "choose a colleague from the list" in (await http.get(bad.headers["location"])).text
    no_csrf = await http.post(f"/console/requests/{nobodys}/assignment", data={"assignee": "me"})
    assert no_csrf.status_code == 403
    events = await pool.fetch("SELECT event_type, data FROM audit_events WHERE request_id = $1", theirs)
    assert [e["data"] for e in events if e["event_type"] == "staff.assigned"]

    # REST: take, then hand to nobody.
    headers = await staff_headers(pool, "agent")
    r = await http.put(f"/v1/requests/{nobodys}/assignee", headers=headers, json={"assignee": "me"})
    assert r.status_code == 200 and r.json()["assignee"]
    r = await http.put(f"/v1/requests/{nobodys}/assignee", headers=headers, json={"assignee": None})
    assert r.status_code == 200 and r.json() is None
    r = await http.put(f"/v1/requests/{nobodys}/assignee", headers=headers, json={"assignee": "x" * 36})
    assert r.status_code == 422


async def test_notes_are_audited_kept_in_the_evidence_and_never_sent(http, pool, mail_sink):
    rid = await open_request(http, pool)
    csrf = await console_sign_in(http, pool, "agent")
    text = "Called the subject: the second address <b>is hers</b> too."
    r = await http.post(f"/console/requests/{rid}/notes", data={"csrf_token": csrf, "note": text})
    assert r.status_code == 303 and r.headers["location"].endswith("#notes")
    page = (await http.get(r.headers["location"])).text
    assert "Called the subject: the second address &lt;b&gt;is hers&lt;/b&gt; too." in page
    empty = await http.post(f"/console/requests/{rid}/notes", data={"csrf_token": csrf, "note": "   "})
    assert "write the note first" in (await http.get(empty.headers["location"])).text
    # A refusal comes back in the address, signed: anyone else's link puts no words of its own in
    # the console's alert box (a phishing aid inside a page staff trust).
    for forged in (f"/console/requests/{rid}?team_error=Session+expired:+re-enter+your+token+at+evil.example",
                   f"/console/requests/{rid}?deferred_error=Session+expired:+evil.example&deferred_error_sig=00",
                   "/console/?view_error=Session+expired:+evil.example"):
        assert "evil.example" not in (await http.get(forged)).text
    nul = await http.post(f"/console/requests/{rid}/notes", data={"csrf_token": csrf, "note": "bad\x00byte"})
    assert "must not contain control characters" in (await http.get(nul.headers["location"])).text

    event = await pool.fetchrow("SELECT data, actor FROM audit_events WHERE request_id = $1 "
                                "AND event_type = 'staff.note_added'", rid)
    assert event["data"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert text not in str(event["data"])  # the text lives beside the chain, vouched for by its hash

    compliance = await staff_headers(pool, "compliance")
    evidence = await http.get(f"/v1/requests/{rid}/evidence", headers=compliance)
    assert [n["body"] for n in evidence.json()["notes"]] == [text]
    assert "is hers" in (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text
    r = await http.post(f"/v1/requests/{rid}/notes", headers=compliance, json={"note": "nul\u0000"})
    assert r.status_code == 422
    r = await http.post(f"/v1/requests/{rid}/notes", headers=compliance, json={"note": "Second look: fine."})
    assert r.status_code == 201
    listed = await http.get(f"/v1/requests/{rid}/notes", headers=await staff_headers(pool, "agent"))
    assert [n["body"] for n in listed.json()] == [text, "Second look: fine."]
    letters = await pool.fetch("SELECT body_text FROM sent_letters WHERE request_id = $1", rid)
    assert letters and not any("is hers" in (lt["body_text"] or "") for lt in letters)


async def test_saved_views_belong_to_their_member_of_staff(http, pool):
    csrf = await console_sign_in(http, pool, "agent")
    query = "status=in_progress&type=erasure&assignee=me&cursor=abc"
    r = await http.post("/console/views", data={"csrf_token": csrf, "name": "My erasures", "query": query})
    assert r.status_code == 303
    assert parse_qs(urlparse(r.headers["location"]).query) == {
        "status": ["in_progress"], "type": ["erasure"], "assignee": ["me"]}
    queue = (await http.get("/console/")).text
    assert ">My erasures</a>" in queue
    view_id = re.search(r'/console/views/([0-9a-f-]{36})/delete', queue).group(1)

    other_csrf = await console_sign_in(http, pool, "compliance")
    assert "My erasures" not in (await http.get("/console/")).text
    stolen = await http.post(f"/console/views/{view_id}/delete", data={"csrf_token": other_csrf})
    assert stolen.status_code == 404
    nameless = await http.post("/console/views", data={"csrf_token": other_csrf, "name": " ", "query": ""})
    assert "name the view" in (await http.get(nameless.headers["location"])).text


async def test_docs_load_nothing_from_another_origin(http):
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    assert not re.findall(r"https?://", docs.text), "the page names an external URL"
    for asset in re.findall(r'(?:src|href)="(/static/swagger-ui/[^"]+)"', docs.text):
        assert (await http.get(asset)).status_code == 200, asset
    assert (await http.get("/redoc")).status_code == 404



async def test_an_assignee_that_is_not_a_token_id_is_refused_by_name(http, pool):
    """36 hex digits and dashes in the wrong places are not a token id: 422 naming the parameter,
    not a 500 (found by the API fuzz test)."""
    headers = await staff_headers(pool, "agent")
    for bad in ("0" * 36, "-" * 36, "a" * 35 + "-", "nobody"):
        r = await http.get("/v1/requests", params={"assignee": bad}, headers=headers)
        assert r.status_code == 422 and "assignee" in r.text, (bad, r.text)
    fine = await http.get("/v1/requests", params={"assignee": str(uuid.uuid4())}, headers=headers)
    assert fine.status_code == 200 and fine.json()["items"] == []
