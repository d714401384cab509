"""A stolen admin token cannot outlast its revocation (dsrflow/stores/staff_tokens.py): a token
created with a token lives no longer than it, and revoking a token can take every token descending
from it (REST `?with_descendants=true`, the console's second button, `dsrflow token revoke
--with-descendants`), never leaving no admin token in force over REST or the console. In-process:
the app without the workflow engine, the CLI through typer's runner."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as cli
from dsrflow.stores.staff_tokens import CreatorNotInForce, issue_token
from tests.pools import fetch_rows_now
from tests.support import assert_problem, console_sign_in, console_sign_in_with, settings_env


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _created_with(app_http: httpx.AsyncClient, creator: str, role: str, label: str, **body) -> tuple[str, str]:
    made = await app_http.post("/v1/tokens", json={"role": role, "label": label, **body}, headers=_bearer(creator))
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["token"]


async def test_a_token_created_with_a_token_cannot_outlive_it(app_http, pool):
    """Over REST: more days than the creator has left is a 422 naming the limit and the date;
    as many is made, recording its creator; left out, the default ends with the creator."""
    creator, token = await issue_token(pool, "admin", "lineage cap admin", lifetime=timedelta(days=30))
    limit = f"{creator['expires_at'].astimezone(UTC):%Y-%m-%d %H:%M} UTC"

    refused = await app_http.post("/v1/tokens", json={"role": "admin", "label": "lineage too long",
                                                      "expires_in_days": 31}, headers=_bearer(token))

    body = assert_problem(refused, 422)
    assert f"yours expires on {limit}, so at most 29 days" in body["detail"], body
    assert body["max_days"] == 29 and body["errors"][0]["field"] == "expires_in_days"
    assert "dsrflow token create" in body["detail"]
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE label = 'lineage too long'") == 0

    made = await app_http.post("/v1/tokens", json={"role": "agent", "label": "lineage 29 days", "expires_in_days": 29},
                               headers=_bearer(token))
    assert made.status_code == 201 and made.json()["created_by"] == creator["id"], made.text
    default = await app_http.post("/v1/tokens", json={"role": "agent", "label": "lineage default"},
                                  headers=_bearer(token))
    assert default.status_code == 201, default.text
    assert datetime.fromisoformat(default.json()["expires_at"]) == creator["expires_at"]  # not 90 days
    listed = {t["id"]: t for t in (await app_http.get("/v1/tokens", headers=_bearer(token))).json()["tokens"]}
    assert listed[made.json()["id"]]["created_by"] == creator["id"] and listed[creator["id"]]["descendants"] == 2

    # A creator that never expires (made before tokens did): the usual ten years at most.
    _, forever = await issue_token(pool, "admin", "lineage never-expiring admin")
    assert (await app_http.post("/v1/tokens", json={"role": "agent", "expires_in_days": 3650},
                                headers=_bearer(forever))).status_code == 201


async def test_the_consoles_form_offers_no_more_than_the_admins_own_token(app_http, pool):
    _, token = await issue_token(pool, "admin", "lineage console admin", lifetime=timedelta(days=10, hours=1))
    csrf = await console_sign_in_with(app_http, token)
    page = (await app_http.get("/console/tokens")).text
    assert re.search(r'id="expires_in_days"[^>]*max="10"', page) and "No longer than your own token" in page

    refused = await app_http.post("/console/tokens", data={"csrf_token": csrf, "role": "agent",
                                                           "label": "lineage console long", "expires_in_days": "11"})

    assert refused.status_code == 422
    assert re.search(r"A token created with your token cannot outlive it: yours expires on \d{4}-\d\d-\d\d \d\d:\d\d "
                     r"UTC, so at most 10 days", refused.text), refused.text
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE label = 'lineage console long'") == 0
    made = await app_http.post("/console/tokens", data={"csrf_token": csrf, "role": "agent",
                                                        "label": "lineage console ok", "expires_in_days": "10"})
    assert made.status_code == 200 and "Token created" in made.text
    row = await pool.fetchrow("SELECT t.created_by, c.label FROM staff_tokens t JOIN staff_tokens c "
                              "ON c.id = t.created_by WHERE t.label = 'lineage console ok'")
    assert row["label"] == "lineage console admin"
    assert re.search(r'<td class="created-by">lineage console admin\s*<span class="mono">'
                     + str(row["created_by"])[:8], made.text)


async def test_the_consoles_form_says_what_an_admin_whose_token_ends_soon_gets(app_http, pool):
    """Signed in with a token that has 10 days left, the form's hint says 10 days unless chosen
    (the number filled in), not DSRFLOW_TOKEN_DAYS' 90, which it would not give. With less than a
    day left, it says none can be created here and why, and offers no form to fill. Before, the
    hint read "1 to 10; 90 unless you choose", and "1 to 0" with a field and button that could
    send nothing valid."""
    _, ten_days = await issue_token(pool, "admin", "lineage hint ten days", lifetime=timedelta(days=10, hours=1))
    await console_sign_in_with(app_http, ten_days)
    page = " ".join((await app_http.get("/console/tokens")).text.split())
    assert "1 to 10; 10 unless you choose." in page, page
    _, hours = await issue_token(pool, "admin", "lineage hint hours", lifetime=timedelta(hours=20))
    await console_sign_in_with(app_http, hours)
    page = " ".join((await app_http.get("/console/tokens")).text.split())
    assert "None can be created here: your own token expires" in page and "1 to 0" not in page
    assert re.search(r'<button type="submit" disabled>Create the token</button>', page)


async def test_a_stolen_tokens_offspring_three_levels_down_is_revoked_with_it(app_http, pool):
    """The thief's admin token made an admin token, which made another, which made an agent's:
    revoking the stolen one with its descendants stops all four at once, each audited, their
    sessions ended; tokens the thief did not make stay. Agents and compliance can do none of it."""
    _, admin = await issue_token(pool, "admin", "lineage rightful admin")
    stolen, stolen_token = await issue_token(pool, "admin", "lineage stolen admin")
    second, second_token = await _created_with(app_http, stolen_token, "admin", "lineage thief 1")
    third, third_token = await _created_with(app_http, second_token, "admin", "lineage thief 2")
    fourth, fourth_token = await _created_with(app_http, third_token, "agent", "lineage thief 3")
    kept, kept_token = await _created_with(app_http, admin, "agent", "lineage kept")
    for role in ("agent", "compliance"):
        _, low = await issue_token(pool, role, f"lineage {role}")
        assert_problem(await app_http.delete(f"/v1/tokens/{stolen['id']}?with_descendants=true",
                                             headers=_bearer(low)), 403)
        csrf = await console_sign_in(app_http, pool, role)
        forged = await app_http.post(f"/console/tokens/{stolen['id']}/revoke",
                                     data={"csrf_token": csrf, "descendants": "yes"})
        assert forged.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE revoked_at IS NOT NULL AND id = ANY($1)",
                               [stolen["id"], second, third, fourth]) == 0
    listed = {t["id"]: t for t in (await app_http.get("/v1/tokens", headers=_bearer(admin))).json()["tokens"]}
    assert listed[stolen["id"]]["descendants"] == 3 and listed[third]["created_by"] == second
    await console_sign_in_with(app_http, fourth_token)  # a console session of the deepest one

    answer = await app_http.delete(f"/v1/tokens/{stolen['id']}?with_descendants=true", headers=_bearer(admin))

    assert answer.status_code == 200, answer.text
    assert {d["id"] for d in answer.json()["descendants_revoked"]} == {second, third, fourth}
    for token in (stolen_token, second_token, third_token, fourth_token):
        assert_problem(await app_http.get("/v1/requests", headers=_bearer(token)), 401)
    assert (await app_http.get("/v1/requests", headers=_bearer(kept_token))).status_code == 200
    assert kept not in {d["id"] for d in answer.json()["descendants_revoked"]}
    events = {r["data"]["token_id"]: r for r in await pool.fetch(
        "SELECT actor, data FROM audit_events WHERE event_type = 'staff.token_revoked' AND data->>'token_id' = ANY($1)",
        [stolen["id"], second, third, fourth])}
    assert set(events) == {stolen["id"], second, third, fourth}
    assert all(events[d]["data"]["descendant_of"] == stolen["id"] for d in (second, third, fourth))
    assert events[fourth]["data"]["sessions_ended"] == 1
    assert (await app_http.get("/console/")).status_code == 303  # the deepest one's session ended


async def test_a_cascade_that_would_leave_no_admin_in_force_is_refused_saying_which(app_http, pool):
    """The only admin tokens in force are a token and the admin token it made: revoking it with
    its descendants is refused over REST and the console, naming both; nothing is revoked.
    Revoking it alone is not (the other stays), nor the cascade at the server."""
    await pool.execute("UPDATE staff_tokens SET revoked_at = now() WHERE role = 'admin' AND revoked_at IS NULL")
    root, root_token = await issue_token(pool, "admin", "lineage last root")
    child, child_token = await _created_with(app_http, root_token, "admin", "lineage last child")

    refused = await app_http.delete(f"/v1/tokens/{root['id']}?with_descendants=true", headers=_bearer(child_token))

    body = assert_problem(refused, 409)
    assert body["admin_tokens"] == [root["id"], child]
    assert f"would take the admin tokens {root['id']}, {child}" in body["detail"]
    csrf = await console_sign_in_with(app_http, child_token)
    page = await app_http.post(f"/console/tokens/{root['id']}/revoke", data={"csrf_token": csrf, "descendants": "yes"})
    assert page.status_code == 409
    assert re.search(r"Not revoked: revoking .*with\s+the tokens it created would leave no admin token in force",
                     page.text, re.S) and child in page.text
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE revoked_at IS NOT NULL AND id = ANY($1)",
                               [root["id"], child]) == 0
    alone = await app_http.post(f"/console/tokens/{root['id']}/revoke", data={"csrf_token": csrf})
    assert alone.status_code == 200 and "Token revoked:" in alone.text


def test_the_cli_revokes_with_descendants_and_lists_who_created_each(settings):
    env = settings_env(settings)
    runner = CliRunner()
    url = settings.effective_database_url

    async def made() -> tuple[dict, dict, dict]:
        from dsrflow.infra.db import create_pool

        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            root, _ = await issue_token(pool, "admin", "lineage cli root", lifetime=timedelta(days=30))
            child, _ = await issue_token(pool, "admin", "lineage cli child", lifetime=timedelta(days=20),
                                         created_by=root["id"])
            grandchild, _ = await issue_token(pool, "agent", "lineage cli grandchild", lifetime=timedelta(days=10),
                                              created_by=child["id"])
            return root, child, grandchild
        finally:
            await pool.close()

    root, child, grandchild = asyncio.run(made())
    listed = runner.invoke(cli, ["token", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = {line.rsplit("  ", 1)[-1]: line for line in listed.stdout.splitlines()}
    assert f"by {root['id'][:8]}" in lines["lineage cli child"] and "by -" in lines["lineage cli root"]

    revoked = runner.invoke(cli, ["token", "revoke", root["id"], "--with-descendants"], env=env)

    assert revoked.exit_code == 0, revoked.output
    assert [line.split()[1] for line in revoked.stdout.splitlines()] == [root["id"], child["id"], grandchild["id"]]
    rows = fetch_rows_now(url, "SELECT revoked_at FROM staff_tokens WHERE id = ANY($1)",
                          [root["id"], child["id"], grandchild["id"]])
    assert len(rows) == 3 and all(r["revoked_at"] for r in rows)
    # At the server no creator caps a token, and none is recorded.
    longest = runner.invoke(cli, ["token", "create", "--role", "admin", "--label", "lineage cli long",
                                  "--expires-in", "3650d"], env=env)
    assert longest.exit_code == 0, longest.output
    assert fetch_rows_now(url, "SELECT created_by FROM staff_tokens WHERE label = 'lineage cli long'")[0][0] is None


async def test_a_token_revoked_while_it_creates_one_creates_nothing(pool):
    """A creation waits for a revocation in progress and then finds its creator revoked: the
    thief's token, revoked with its descendants, cannot slip one more in between."""
    creator, _ = await issue_token(pool, "admin", "lineage racing admin")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('staff_tokens:revoke'))")  # a revocation under way
        creating = asyncio.ensure_future(issue_token(pool, "admin", "lineage slipped in", lifetime=timedelta(days=1),
                                                     created_by=creator["id"]))
        await asyncio.sleep(0.2)
        assert not creating.done()  # it waits for the revocation
        await conn.execute("UPDATE staff_tokens SET revoked_at = now() WHERE id = $1", creator["id"])
    with pytest.raises(CreatorNotInForce):
        await creating
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE label = 'lineage slipped in'") == 0


async def test_a_cycle_in_created_by_revokes_and_lists_each_token_once(app_http, pool):
    """No path of the app writes a cycle (a creator is a token that exists already, and
    `created_by` is never updated), but a row edited by hand can: a token then descends from
    itself. Revoking it with its descendants takes each token once, not itself again as its own
    descendant, and the list still answers. Before, the revocation named the token among its own
    descendants, and listing it (GET /v1/tokens, the Tokens page, `dsrflow token list`) looped
    for ever."""
    _, admin = await issue_token(pool, "admin", "lineage cycle admin")
    first, _ = await issue_token(pool, "agent", "lineage cycle first")
    second, _ = await issue_token(pool, "agent", "lineage cycle second", lifetime=timedelta(days=1),
                                  created_by=first["id"])
    await pool.execute("UPDATE staff_tokens SET created_by = $2 WHERE id = $1", first["id"], second["id"])

    answer = await app_http.delete(f"/v1/tokens/{first['id']}?with_descendants=true", headers=_bearer(admin))

    assert answer.status_code == 200, answer.text
    assert [d["id"] for d in answer.json()["descendants_revoked"]] == [second["id"]]
    listed = await asyncio.wait_for(app_http.get("/v1/tokens?include_revoked=true", headers=_bearer(admin)), 10)
    counts = {t["id"]: t["descendants"] for t in listed.json()["tokens"]}
    assert (counts[first["id"]], counts[second["id"]]) == (0, 0)  # both revoked now
