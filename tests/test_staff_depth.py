"""A careless or low-privilege member of staff, where tests/test_attack_staff_depth.py left off: a
resend retried over REST, a note submitted twice (on the console, over REST), one request's
provisional dates read alone, and an outcome message from a crafted link (docs/api.md, docs/console.md). The real app (in process),
PostgreSQL and Temporal."""

from __future__ import annotations

import asyncio
import re

from tests.support import assert_problem, console_sign_in, live_view, staff_headers, unique_email

SUBMISSION = re.compile(r'name="submission" value="([^"]+)"')


async def _notes_kept(pool, rid: str) -> tuple[int, int]:
    """The request's notes and their audit events, counted."""
    return (await pool.fetchval("SELECT count(*) FROM request_notes WHERE request_id = $1::uuid", rid),
            await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                                "AND event_type = 'staff.note_added'", rid))


async def test_a_resend_retried_over_rest_sends_no_second_code(http, pool):
    """A script's `POST /v1/requests/{id}/resend-verification`, retried (a timeout, a client that
    repeats), sent a code each time, and the one the subject had just received stopped working: the
    console's form names the round its page showed, the REST call could not. Now it may send the
    `round` it read: a code sent since is refused (409, the round now), nothing sent."""
    agent = await staff_headers(pool, "agent")
    rid = (await http.post("/v1/requests", headers=agent, json={
        "type": "access", "subject": {"email": unique_email("rest-resent")}})).json()["id"]
    seen = (await live_view(http, agent, rid, until=lambda v: (v.get("verification") or {}).get("round")))
    shown = seen["verification"]["round"]

    first = await http.post(f"/v1/requests/{rid}/resend-verification", headers=agent, json={"round": shown})
    assert first.status_code == 200, first.text
    again = await http.post(f"/v1/requests/{rid}/resend-verification", headers=agent, json={"round": shown})

    refused = assert_problem(again, 409)
    assert "no other was sent" in refused["detail"] and refused["round"] == shown + 1, refused
    now = await live_view(http, agent, rid)
    assert now["verification"]["round"] == shown + 1, now["verification"]


async def test_a_note_submitted_twice_is_kept_once(http, pool):
    """An agent's note posted twice from one page (a double click, the browser resubmitting it)
    was kept twice, two audit events. Now the form carries a one-time key: the same page's posts,
    even at once, keep one note; the page that comes back carries a new key, so the same words
    noted again on purpose are a second note. The outcome shows on the page it comes back to. The
    same page sent back with other words (edited after going back) was kept as nothing, without a
    word: now the page says it was not kept."""
    rid = (await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("noted-twice")}, "identity_attested": True})).json()["id"]
    csrf = await console_sign_in(http, pool, "agent")
    page = (await http.get(f"/console/requests/{rid}")).text
    form = {"csrf_token": csrf, "submission": SUBMISSION.search(page).group(1), "note": "Called the subject."}

    posts = await asyncio.gather(*(http.post(f"/console/requests/{rid}/notes", data=form) for _ in range(2)))
    assert [p.status_code for p in posts] == [303, 303], [p.text for p in posts]
    resubmitted = await http.post(f"/console/requests/{rid}/notes", data=form)
    assert resubmitted.status_code == 303
    back = (await http.get(resubmitted.headers["location"])).text
    assert "Note added" in back

    assert await _notes_kept(pool, rid) == (1, 1)
    edited = await http.post(f"/console/requests/{rid}/notes", data={**form, "note": "Called her twice."})
    assert edited.status_code == 303
    assert "this one was not" in (await http.get(edited.headers["location"])).text
    assert await _notes_kept(pool, rid) == (1, 1)
    again = {**form, "submission": SUBMISSION.search(back).group(1)}
    assert again["submission"] != form["submission"]
    assert (await http.post(f"/console/requests/{rid}/notes", data=again)).status_code == 303
    assert await _notes_kept(pool, rid) == (2, 2)


async def test_a_note_retried_over_rest_is_kept_once(http, pool):
    """`POST /v1/requests/{id}/notes`, retried (an answer that never came, a client that repeats),
    kept the note each time, an audit event each: the console's form carries a one-time key, the
    REST call could not. Now it may send an `Idempotency-Key`: the same key, even twice at once,
    keeps one note and answers the same (201, its id); the key again with other words is 409,
    nothing kept; another key is another note, and so is a key the console's form could hold."""
    agent = await staff_headers(pool, "agent")
    rid = (await http.post("/v1/requests", headers=agent, json={
        "type": "access", "subject": {"email": unique_email("rest-noted")}})).json()["id"]
    keyed, note = {**agent, "Idempotency-Key": "ticket-4711-call"}, {"note": "Called the subject."}

    posts = await asyncio.gather(*(http.post(f"/v1/requests/{rid}/notes", headers=keyed, json=note) for _ in range(2)))
    posts.append(await http.post(f"/v1/requests/{rid}/notes", headers=keyed, json=note))
    assert [p.status_code for p in posts] == [201] * 3, [p.text for p in posts]
    assert len({p.json()["id"] for p in posts}) == 1
    assert await _notes_kept(pool, rid) == (1, 1)

    reused = await http.post(f"/v1/requests/{rid}/notes", headers=keyed, json={"note": "Called her twice."})
    assert "this one was not" in assert_problem(reused, 409)["detail"]
    assert await _notes_kept(pool, rid) == (1, 1)
    for other in ("ticket-4712-call", "A" * 22):  # the second as the console's submissions look
        fresh = await http.post(f"/v1/requests/{rid}/notes", headers={**agent, "Idempotency-Key": other}, json=note)
        assert fresh.status_code == 201 and fresh.json()["id"] != posts[0].json()["id"], fresh.text
    assert await _notes_kept(pool, rid) == (3, 3)


async def test_one_uk_request_read_alone_says_its_dates_are_provisional(http, pool):
    """`GET /v1/requests/{id}` gave a UK GDPR request awaiting verification the dates counted
    from receipt with nothing saying they move once the subject verifies: the queue's items said
    `due_dates_provisional`, the request read alone did not. Now it does (and false otherwise)."""
    agent = await staff_headers(pool, "agent")
    opened = {}
    for regime, country in (("uk_gdpr", "GB"), ("gdpr", "BE")):
        answer = await http.post("/v1/requests", headers=agent, json={
            "type": "access", "regime": regime, "country": country, "subject": {"email": unique_email(regime)}})
        assert answer.status_code == 201, answer.text
        opened[regime] = answer.json()["id"]
    for regime, provisional in (("uk_gdpr", True), ("gdpr", False)):
        view = await live_view(http, agent, opened[regime], until=lambda v: v["status"] == "awaiting_verification")
        assert view["due_dates_provisional"] is provisional, (regime, view)


async def test_an_outcome_from_a_crafted_link_is_not_shown(http, pool):
    """A link anyone could make (`/console/requests/<id>?done=deny`) showed "Request denied; the
    letter with the reasons and remedies is sent." on a request nobody had denied, to whoever
    followed it: a colleague took it for answered. Each outcome's words were ours, but not true.
    Now an outcome shows only signed for its request (a real action's redirect is: the note test)."""
    rid = (await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("crafted-done")}})).json()["id"]
    await console_sign_in(http, pool, "agent")
    crafted = await http.get(f"/console/requests/{rid}?done=deny&team_done=unassigned&note_done=1")
    assert crafted.status_code == 200, crafted.text
    for told in ("Request denied", "assigned to nobody now", "Note added"):
        assert told not in crafted.text, told
