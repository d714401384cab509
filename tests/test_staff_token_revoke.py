"""Revoking a staff token from the console's Tokens page (api/console/tokens.py), and which admin
token counts as the last one in force now that tokens expire (dsrflow/stores/staff_tokens.py
`revoke_token`). In-process: the app without the workflow engine."""

from __future__ import annotations

import re
from datetime import timedelta

from dsrflow.stores.staff_tokens import issue_token
from tests.support import assert_problem, console_sign_in_with


async def _only_admin(pool, label: str) -> tuple[dict, str]:
    """An admin token alone in force (earlier tests of this worker leave theirs)."""
    await pool.execute("UPDATE staff_tokens SET revoked_at = now() WHERE role = 'admin' AND revoked_at IS NULL")
    return await issue_token(pool, "admin", label)


async def test_an_admin_revokes_a_token_from_its_row_and_it_stops_at_once(app_http, pool):
    _, admin = await issue_token(pool, "admin", "revoking admin")
    agent, agent_token = await issue_token(pool, "agent", "leaver's laptop")
    bearer = {"Authorization": f"Bearer {agent_token}"}
    assert (await app_http.get("/v1/requests", headers=bearer)).status_code == 200
    csrf = await console_sign_in_with(app_http, admin, "/console/tokens")

    answer = await app_http.post(f"/console/tokens/{agent['id']}/revoke", data={"csrf_token": csrf})

    assert answer.status_code == 200
    assert "Token revoked:" in answer.text and "leaver&#39;s laptop" in answer.text
    assert f'action="/console/tokens/{agent["id"]}/revoke"' not in answer.text  # its row is gone
    assert_problem(await app_http.get("/v1/requests", headers=bearer), 401)
    event = await pool.fetchrow("SELECT actor, data FROM audit_events WHERE event_key = $1",
                                f"token:{agent['id']}:revoked")
    assert event is not None and event["actor"].startswith("admin:")
    # A form without the page's CSRF token revokes nothing.
    other, other_token = await issue_token(pool, "agent", "kept")
    forged = await app_http.post(f"/console/tokens/{other['id']}/revoke", data={})
    assert forged.status_code == 403
    assert (await app_http.get("/v1/requests", headers={"Authorization": f"Bearer {other_token}"})).status_code == 200
    assert (await app_http.post("/console/tokens/00000000-0000-0000-0000-000000000000/revoke",
                           data={"csrf_token": csrf})).status_code == 404


async def test_the_last_admin_token_in_force_is_not_revoked_from_the_console(app_http, pool):
    admin, token = await _only_admin(pool, "the only admin")
    csrf = await console_sign_in_with(app_http, token, "/console/tokens")

    refused = await app_http.post(f"/console/tokens/{admin['id']}/revoke", data={"csrf_token": csrf})

    assert refused.status_code == 409
    assert re.search(r"Not revoked: .*is the last\s+admin token in force", refused.text)
    assert (await app_http.get("/console/tokens")).status_code == 200  # still signed in, still in force

    # Beside a second admin, revoking one's own token is a rotation: it signs one out.
    await issue_token(pool, "admin", "the next admin")
    rotated = await app_http.post(f"/console/tokens/{admin['id']}/revoke", data={"csrf_token": csrf})
    assert rotated.status_code == 303 and rotated.headers["location"] == "/console/sign-in"
    assert (await app_http.get("/console/tokens")).status_code == 303


async def test_an_expired_admin_token_does_not_count_as_one_in_force(app_http, pool):
    """Before tokens expired, any admin token not revoked could manage tokens; now one past its
    expiry opens nothing. It must not count as the admin left when the last live one is revoked
    (nobody could then manage tokens but at the server), and revoking it is never refused."""
    live, live_token = await _only_admin(pool, "the live admin")
    expired, _ = await issue_token(pool, "admin", "an expired admin", lifetime=timedelta(days=1))
    await pool.execute("UPDATE staff_tokens SET expires_at = now() - interval '1 day' WHERE id = $1", expired["id"])
    bearer = {"Authorization": f"Bearer {live_token}"}

    assert_problem(await app_http.delete(f"/v1/tokens/{live['id']}", headers=bearer), 409)
    assert (await app_http.get("/v1/tokens", headers=bearer)).status_code == 200
    revoked = await app_http.delete(f"/v1/tokens/{expired['id']}", headers=bearer)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
