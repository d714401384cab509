"""Someone with a staff credential that should be worth less than it is: one read from a browser's
or a proxy's cache, a colleague's token an admin means to take away, an id spelt another way, a form
loaded before the token was revoked (docs/security.md, "Stale credentials, caches and the last
admin"). The real app, PostgreSQL and Temporal."""

from __future__ import annotations

import asyncio
import uuid

from dsrflow.stores.staff_tokens import issue_token, revoke_token
from tests.support import CSRF_FIELD, assert_problem, console_sign_in, staff_headers, unique_email

NO_ONE = "00000000-0000-4000-8000-00000000beef"


def spellings(token_id: str) -> list[str]:
    """What Python reads as the same UUID: braces and `urn:uuid:` asyncpg refused (500)."""
    return [f"{{{token_id}}}", f"urn:uuid:{token_id}", token_id.upper(), token_id.replace("-", "")]


async def test_no_staff_answer_is_kept_by_a_browser_or_a_proxy(http, pool):
    """The request with its subject's address, the evidence pack, the timeline, the token list and
    a refusal naming an id, fetched with a bearer token and with the console's cookie: each says
    `Cache-Control: no-store`. Before, only the console's HTML pages did: the JSON a shared
    machine's browser fetched stayed in its disk cache for the next person at it."""
    admin = await staff_headers(pool, "admin")
    email = unique_email("cached")
    opened = await http.post("/v1/requests", headers=admin, json={
        "type": "access", "subject": {"email": email, "name": "Ada Lovelace"}, "identity_attested": True})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]
    paths = [f"/v1/requests/{rid}", f"/v1/requests/{rid}/evidence", f"/v1/requests/{rid}/events",
             f"/v1/requests/{rid}/notes", f"/v1/requests?subject_email={email}", "/v1/tokens", f"/v1/requests/{NO_ONE}"]
    assert opened.headers["cache-control"] == "no-store"
    for path in paths:
        answer = await http.get(path, headers=admin)
        assert answer.status_code in (200, 404), (path, answer.text)
        assert answer.headers.get("cache-control") == "no-store", path

    await console_sign_in(http, pool, "admin")
    for path in paths:
        answer = await http.get(path)
        assert answer.headers.get("cache-control") == "no-store", path
    page = await http.get(f"/console/requests/{rid}")  # the console's pages said so already, and still do
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"


async def test_the_last_admin_token_is_not_revoked_over_the_api(http, pool):
    """An admin revokes their own token, the last admin token in force: nobody could then manage
    tokens over the API, and a stolen token could not be taken away but at the server. 409 naming
    the way out, the token still in force. Revoking one's own token beside another admin's is a
    rotation: it ends, and its console session with it."""
    # The admin tokens earlier tests of this worker left in force would make this one not the last.
    await pool.execute("UPDATE staff_tokens SET revoked_at = now() WHERE role = 'admin' AND revoked_at IS NULL")
    first, first_token = await issue_token(pool, "admin", "first admin")
    first_headers = {"Authorization": f"Bearer {first_token}"}

    alone = await http.delete(f"/v1/tokens/{first['id']}", headers=first_headers)

    body = assert_problem(alone, 409)
    assert "last admin token in force" in body["detail"] and "dsrflow token revoke" in body["detail"]
    assert (await http.get("/v1/tokens", headers=first_headers)).status_code == 200

    second, second_token = await issue_token(pool, "admin", "second admin")
    http.cookies.clear()
    form = await http.get("/console/sign-in")
    signed_in = await http.post("/console/sign-in", data={
        "token": first_token, "csrf_token": CSRF_FIELD.search(form.text).group(1)})
    assert signed_in.status_code == 303
    rotated = await http.delete(f"/v1/tokens/{first['id']}", headers=first_headers)
    assert rotated.status_code == 200 and rotated.json()["revoked_at"], rotated.text
    assert_problem(await http.get("/v1/tokens", headers=first_headers), 401)
    assert (await http.get("/console/")).status_code == 303  # the session signed in with it ended

    second_headers = {"Authorization": f"Bearer {second_token}"}
    assert_problem(await http.delete(f"/v1/tokens/{second['id']}", headers=second_headers), 409)
    agent, _ = await issue_token(pool, "agent", "not an admin")
    assert (await http.delete(f"/v1/tokens/{agent['id']}", headers=second_headers)).status_code == 200


async def test_two_admins_revoking_each_other_at_once_leave_one(pool):
    """The last two admins revoke each other in the same instant (the API's revocation, called
    as `DELETE /v1/tokens/{id}` calls it once each has been let in): each saw the other in force,
    and both were revoked. One revocation is done, the other refused."""
    await pool.execute("UPDATE staff_tokens SET revoked_at = now() WHERE role = 'admin' AND revoked_at IS NULL")
    (one, _), (two, _) = [await issue_token(pool, "admin", name) for name in ("one", "two")]

    outcomes = await asyncio.gather(
        revoke_token(pool, two["id"], actor=f"admin:{one['id'][:8]}", keep_an_admin=True),
        revoke_token(pool, one["id"], actor=f"admin:{two['id'][:8]}", keep_an_admin=True),
        return_exceptions=True)

    assert sorted(type(o).__name__ for o in outcomes) == ["LastAdmin", "dict"], outcomes
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE role = 'admin' AND revoked_at IS NULL") == 1


async def test_an_id_spelt_another_way_names_the_same_thing_or_nothing(http, pool):
    """Braces, `urn:uuid:`, upper case and bare digits, as Python reads a UUID, in a token to
    revoke, an assignee, a saved view to delete and an inbox message: each answered 500 (asyncpg
    refused what Python had accepted), and an assignee in upper case assigned the request anew to
    whom it was assigned already, a second audit event. Now each is the UUID it spells, or no
    such thing (404)."""
    admin = await staff_headers(pool, "admin")
    agent_row, agent_token = await issue_token(pool, "agent", "spelt otherwise")
    agent = {"Authorization": f"Bearer {agent_token}"}
    opened = await http.post("/v1/requests", headers=agent, json={
        "type": "access", "subject": {"email": unique_email("spelt")}, "identity_attested": True})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]

    for spelt in spellings(agent_row["id"]):
        assigned = await http.put(f"/v1/requests/{rid}/assignee", headers=agent, json={"assignee": spelt})
        assert assigned.status_code == 200, (spelt, assigned.text)
        assert assigned.json()["assignee"] == agent_row["id"]
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                               "AND event_type = 'staff.assigned'", rid) == 1

    csrf = await console_sign_in(http, pool, "agent")
    for spelt in spellings(NO_ONE):
        assert (await http.post(f"/console/views/{spelt}/delete", data={"csrf_token": csrf})).status_code == 404
        assert (await http.get(f"/console/inbox/{spelt}")).status_code == 404
        dismissed = await http.post(f"/console/inbox/{spelt}/dismiss",
                                    data={"csrf_token": csrf, "reason": "Not a request"})
        assert dismissed.status_code == 404 and "There is no message" in dismissed.text
        assert_problem(await http.delete(f"/v1/tokens/{spelt}", headers=admin), 404)

    revoked = await http.delete(f"/v1/tokens/{spellings(agent_row['id'])[0]}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["id"] == agent_row["id"], revoked.text
    assert_problem(await http.get("/v1/requests", headers=agent), 401)


async def test_a_form_loaded_before_the_token_was_revoked_acts_on_nothing(http, pool):
    """A compliance officer's token is revoked while their request page is open. The deny form
    they loaded, sent afterwards, leads to the sign-in page; signed in again with a new token, the
    same form's CSRF token belongs to the ended session and is refused. The request is never
    denied. Held already (sessions end with their token, CSRF tokens are bound to the session)."""
    opened = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": unique_email("stale-form")}, "identity_attested": True})
    rid = opened.json()["id"]
    row, token = await issue_token(pool, "compliance", "leaving")
    http.cookies.clear()
    form = await http.get("/console/sign-in")
    await http.post("/console/sign-in", data={"token": token, "csrf_token": CSRF_FIELD.search(form.text).group(1)})
    stale_csrf = CSRF_FIELD.search((await http.get(f"/console/requests/{rid}")).text).group(1)
    deny = {"csrf_token": stale_csrf, "reason_code": "excessive", "explanation": "Fourth request this month"}

    await revoke_token(pool, row["id"], actor="admin:test")

    after_revocation = await http.post(f"/console/requests/{rid}/deny", data=deny)
    assert after_revocation.status_code == 303
    assert after_revocation.headers["location"] == "/console/sign-in?next=/console/"
    await console_sign_in(http, pool, "compliance")
    replayed = await http.post(f"/console/requests/{rid}/deny", data=deny)
    assert replayed.status_code == 403 and "stale" in replayed.text
    events = await pool.fetch("SELECT event_type FROM audit_events WHERE request_id = $1::uuid", uuid.UUID(rid))
    assert "status.denied" not in [e["event_type"] for e in events]
