"""Staff tokens expire (dsrflow/stores/staff_tokens.py): a token past its `expires_at` is refused
on REST and at the console's sign-in, saying when it expired and whom to ask; the console's
sessions opened with it end then too. New tokens get DSRFLOW_TOKEN_DAYS unless their creator
chose (`dsrflow token create --expires-in`, `POST /v1/tokens` `expires_in_days`). In-process: the
app without the workflow engine, the CLI through typer's runner."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from typer.testing import CliRunner

from cli.main import app as cli
from dsrflow.stores.staff_tokens import create_token, issue_token
from tests.pools import fetch_rows_now
from tests.support import CSRF_FIELD, assert_problem, settings_env


async def _expire(pool, token_id: str, ago: timedelta = timedelta(minutes=5)) -> datetime:
    return await pool.fetchval("UPDATE staff_tokens SET expires_at = now() - $2::interval WHERE id = $1 "
                               "RETURNING expires_at", token_id, ago)


async def _sign_in(app_http: httpx.AsyncClient, token: str) -> httpx.Response:
    app_http.cookies.clear()
    form = await app_http.get("/console/sign-in")
    return await app_http.post("/console/sign-in", data={"token": token, "csrf_token": CSRF_FIELD.search(form.text).group(1)})


async def test_an_expired_token_is_refused_saying_when_and_whom_to_ask(app_http, pool):
    row, token = await issue_token(pool, "agent", "expiry rest test", lifetime=timedelta(days=1))
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await app_http.get("/v1/requests", headers=bearer)).status_code == 200
    expired = await _expire(pool, row["id"])

    refused = await app_http.get("/v1/requests", headers=bearer)

    body = assert_problem(refused, 401)
    assert body["title"] == "Token expired"
    assert f"expired on {expired.astimezone(UTC):%Y-%m-%d %H:%M} UTC" in body["detail"]
    assert "ask an admin for a new one" in body["detail"]
    assert datetime.fromisoformat(body["expired_at"]) == expired
    # An unknown token is still answered as before.
    unknown = assert_problem(await app_http.get("/v1/requests", headers={"Authorization": "Bearer dsr_nope"}), 401)
    assert unknown["detail"] == "the token is unknown or revoked"


async def test_a_console_session_ends_when_its_token_expires(app_http, pool):
    """A session lasts no longer than its token: the cookie and the stored session end at the
    token's expiry; once it passes, the next page is the sign-in, which says the token expired."""
    row, token = await issue_token(pool, "agent", "expiry console test", lifetime=timedelta(hours=1))
    signed = await _sign_in(app_http, token)
    assert signed.status_code == 303, signed.text
    cookie = next(v for v in signed.headers.get_list("set-cookie") if v.startswith("dsrflow_session="))
    assert 3500 <= int(re.search(r"Max-Age=(\d+)", cookie).group(1)) <= 3600, cookie
    session_ends = await pool.fetchval("SELECT max(expires_at) FROM staff_sessions WHERE token_id = $1", row["id"])
    assert session_ends <= row["expires_at"]
    assert (await app_http.get("/console/")).status_code == 200

    expired = await _expire(pool, row["id"])

    page = await app_http.get("/console/")
    assert page.status_code == 303 and page.headers["location"].startswith("/console/sign-in"), page.text
    again = await _sign_in(app_http, token)
    assert again.status_code == 401
    assert f"That token expired on {expired.astimezone(UTC):%Y-%m-%d %H:%M} UTC: ask an admin for a new one." in again.text


async def test_new_tokens_expire_after_the_days_chosen_or_the_default_over_rest(app_http, pool, settings):
    admin = {"Authorization": f"Bearer {await create_token(pool, 'admin', 'expiry rest admin')}"}
    chosen = await app_http.post("/v1/tokens", json={"role": "agent", "label": "expiry 7 days", "expires_in_days": 7},
                            headers=admin)
    default = await app_http.post("/v1/tokens", json={"role": "agent", "label": "expiry default"}, headers=admin)
    assert chosen.status_code == default.status_code == 201, (chosen.text, default.text)
    now = datetime.now(UTC)
    assert abs(datetime.fromisoformat(chosen.json()["expires_at"]) - (now + timedelta(days=7))) < timedelta(minutes=1)
    assert abs(datetime.fromisoformat(default.json()["expires_at"])
               - (now + timedelta(days=settings.token_days))) < timedelta(minutes=1)
    listed = {t["id"]: t for t in (await app_http.get("/v1/tokens", headers=admin)).json()["tokens"]}
    assert listed[chosen.json()["id"]]["expires_at"] == chosen.json()["expires_at"]
    assert (await app_http.post("/v1/tokens", json={"role": "agent", "expires_in_days": 0}, headers=admin)).status_code == 422


def test_the_cli_gives_a_token_the_lifetime_asked_for_and_lists_expiries(settings):
    env = settings_env(settings)
    runner = CliRunner()
    made = runner.invoke(cli, ["token", "create", "--role", "agent", "--label", "cli expiry 2w", "--expires-in", "2w"],
                         env=env)
    assert made.exit_code == 0, made.output
    default = runner.invoke(cli, ["token", "create", "--role", "agent", "--label", "cli expiry default"], env=env)
    assert default.exit_code == 0, default.output
    soon = runner.invoke(cli, ["token", "create", "--role", "agent", "--label", "cli expiry soon", "--expires-in", "3d"],
                         env=env)
    assert soon.exit_code == 0, soon.output
    rows = {r["label"]: r["expires_at"] for r in fetch_rows_now(
        settings.effective_database_url, "SELECT label, expires_at FROM staff_tokens WHERE label LIKE 'cli expiry %'")}
    now = datetime.now(UTC)
    assert abs(rows["cli expiry 2w"] - (now + timedelta(weeks=2))) < timedelta(minutes=1)
    assert abs(rows["cli expiry default"] - (now + timedelta(days=settings.token_days))) < timedelta(minutes=1)

    wrong = runner.invoke(cli, ["token", "create", "--role", "agent", "--expires-in", "90x"], env=env)
    assert wrong.exit_code == 2 and "--expires-in: expected a lifetime such as 90d" in wrong.stderr, wrong.output

    fetch_rows_now(settings.effective_database_url,
                   "INSERT INTO staff_tokens (id, token_hash, role, label) VALUES "
                   "(gen_random_uuid(), md5(random()::text), 'agent', 'cli expiry never') RETURNING id")
    listed = runner.invoke(cli, ["token", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    lines = {line.rsplit("  ", 1)[-1]: line for line in listed.stdout.splitlines()}
    assert "expires never!" in lines["cli expiry never"]
    assert "active" in lines["cli expiry default"] and "expires 20" in lines["cli expiry default"]
    assert "expires soon" in lines["cli expiry soon"]
