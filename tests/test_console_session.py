"""Console sessions: signing in with a staff token, the session cookie's attributes, CSRF on every
cookie-authenticated change, sign-out, and revocation ending the sessions of a token."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import Form, Request

from api.app import build_app, serve_with
from api.auth import Staff, require_console_role
from api.pages import render
from api.state import AppState
from dsrflow.infra.production import codec_cors_origins
from dsrflow.stores.staff_tokens import create_token, issue_token, revoke_token
from tests.policy_once import policy_of
from tests.support import assert_problem

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def probed_app(settings):
    """The app with console pages of the test's own, built once for the module (tests/apps.py)."""
    app = build_app(codec_cors_origins(settings))

    # Console pages as the console's own are built: the public dependency and the base layout,
    # whose sign-out form carries the session's CSRF token.
    @app.get("/console/probe")
    async def compliance_page(request: Request, staff: Staff = require_console_role("compliance")):
        return render(request, "console/base.html")

    @app.get("/console/probe-agent")
    async def agent_page(request: Request, staff: Staff = require_console_role("agent")):
        return render(request, "console/base.html")

    @app.post("/console/probe-form")
    async def agent_form(note: Annotated[str, Form()], staff: Staff = require_console_role("agent")):
        return {"note": note, "role": staff.role}

    return app


@pytest.fixture
async def app(probed_app, settings, pool):
    """The probed app serving this test with resources of its own (and a new rate limiter)."""
    state = AppState(settings, policy=policy_of(settings), pool=pool)
    serve_with(probed_app, state)
    yield probed_app
    await state.close()


@pytest.fixture
async def browser(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def cookie_header(response: httpx.Response, name: str) -> str:
    found = [v for v in response.headers.get_list("set-cookie") if v.startswith(f"{name}=")]
    assert found, response.headers
    return found[0]


async def sign_in(browser, token: str, next_path: str | None = None) -> httpx.Response:
    page = await browser.get("/console/sign-in", params={"next": next_path} if next_path else None)
    assert page.status_code == 200, page.text
    csrf = CSRF_INPUT.search(page.text).group(1)
    return await browser.post("/console/sign-in", data={"token": token, "csrf_token": csrf,
                                                        "next": next_path or ""})


async def page_csrf(browser) -> str:
    page = await browser.get("/console/probe-agent")
    assert page.status_code == 200, page.text
    return CSRF_INPUT.search(page.text).group(1)


def hold(email: str) -> dict:
    return {"email": email, "reason": "Dispute about invoice 2026/17",
            "review_date": (date.today() + timedelta(days=90)).isoformat()}


async def holds_on(pool, email: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM legal_holds WHERE subject_email = $1", email)


async def test_sign_in_sets_a_strict_httponly_session_cookie(browser, pool):
    page = await browser.get("/console/sign-in")
    assert page.headers["content-type"].startswith("text/html")
    assert '<label for="token">' in page.text and 'type="password"' in page.text

    r = await sign_in(browser, await create_token(pool, "compliance"), "/console/probe?status=open")

    assert r.status_code == 303 and r.headers["location"] == "/console/probe?status=open"
    cookie = cookie_header(r, "dsrflow_session").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert (await browser.get("/console/probe")).status_code == 200


async def test_session_cookie_is_secure_over_https(app, pool):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://test") as browser:
        r = await sign_in(browser, await create_token(pool, "agent"))
    assert r.status_code == 303
    assert "secure" in cookie_header(r, "dsrflow_session").lower()


async def test_unknown_token_is_refused_on_the_page(browser):
    r = await sign_in(browser, "dsr_not-a-token-we-issued")

    assert r.status_code == 401
    assert "unknown or has been revoked" in r.text and 'aria-invalid="true"' in r.text
    assert "dsrflow_session" not in browser.cookies


async def test_sign_in_form_needs_its_csrf_token(browser, pool):
    """Another site cannot sign this browser in with the attacker's token."""
    token = await create_token(pool, "admin")
    await browser.get("/console/sign-in")

    forged = await browser.post("/console/sign-in", data={"token": token, "csrf_token": "0" * 64})

    assert forged.status_code == 403 and "expired" in forged.text
    assert "dsrflow_session" not in browser.cookies


@pytest.mark.parametrize("next_path", ["//evil.example/phish", "https://evil.example/", "/\\evil.example"])
async def test_next_never_leaves_the_site(browser, pool, next_path):
    r = await sign_in(browser, await create_token(pool, "agent"), next_path)
    assert r.headers["location"] == "/console/"


async def test_console_page_without_session_redirects_to_sign_in(browser):
    r = await browser.get("/console/probe", params={"q": "x"})
    assert r.status_code == 303 and r.headers["location"] == "/console/sign-in?next=/console/probe%3Fq%3Dx"

    htmx = await browser.get("/console/probe", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"].startswith("/console/sign-in?next=")


async def test_console_page_for_a_higher_role_is_an_html_403(browser, pool):
    await sign_in(browser, await create_token(pool, "agent"))
    r = await browser.get("/console/probe")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "needs the compliance role" in r.text


async def test_session_cookie_authenticates_the_api(browser, pool):
    assert_problem(await browser.get("/v1/requests"), 401)
    await sign_in(browser, await create_token(pool, "agent"))
    assert (await browser.get("/v1/requests", params={"limit": 1})).status_code == 200


async def test_metrics_take_a_bearer_token_not_the_session(browser, pool):
    """docs/api.md: `/metrics` answers the metrics token or an admin's token sent as a bearer, as
    Prometheus sends it; unlike the other staff endpoints, not a signed-in admin's session."""
    admin = await create_token(pool, "admin")
    await sign_in(browser, admin)
    assert "Bearer" in assert_problem(await browser.get("/metrics"), 401)["detail"]
    assert (await browser.get("/metrics", headers={"Authorization": f"Bearer {admin}"})).status_code == 200


async def test_cookie_authenticated_changes_need_the_csrf_token(browser, pool):
    await sign_in(browser, await create_token(pool, "compliance"))
    email = f"csrf.{uuid.uuid4().hex[:8]}@example.com"

    missing = await browser.post("/v1/legal-holds", json=hold(email))
    wrong = await browser.post("/v1/legal-holds", json=hold(email), headers={"X-CSRF-Token": "0" * 64})

    assert "csrf" in assert_problem(missing, 403)["detail"]
    assert_problem(wrong, 403)
    assert await holds_on(pool, email) == 0
    placed = await browser.post("/v1/legal-holds", json=hold(email), headers={"X-CSRF-Token": await page_csrf(browser)})
    assert placed.status_code == 201, placed.text
    assert await holds_on(pool, email) == 1


async def test_a_console_form_with_fields_passes_its_csrf_token_in_the_form(browser, pool):
    await sign_in(browser, await create_token(pool, "agent"))
    csrf = await page_csrf(browser)

    refused = await browser.post("/console/probe-form", data={"note": "hello"})
    accepted = await browser.post("/console/probe-form", data={"note": "hello", "csrf_token": csrf})

    assert refused.status_code == 403 and "stale" in refused.text
    assert accepted.status_code == 200 and accepted.json() == {"note": "hello", "role": "agent"}


async def test_bearer_calls_need_no_csrf_token(app, pool):
    email = f"bearer.{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as api:
        r = await api.post("/v1/legal-holds", json=hold(email),
                           headers={"Authorization": f"Bearer {await create_token(pool, 'compliance')}"})
    assert r.status_code == 201, r.text


async def test_a_session_cannot_exceed_its_role(browser, pool):
    await sign_in(browser, await create_token(pool, "agent"))
    r = await browser.post("/v1/legal-holds", json=hold("agent@example.com"),
                           headers={"X-CSRF-Token": await page_csrf(browser)})
    assert "needs the compliance role" in assert_problem(r, 403)["detail"]


async def test_sign_out_needs_csrf_and_ends_the_session(browser, pool):
    await sign_in(browser, await create_token(pool, "compliance"))
    session = browser.cookies["dsrflow_session"]
    csrf = await page_csrf(browser)

    refused = await browser.post("/console/sign-out")
    assert refused.status_code == 403
    assert (await browser.get("/console/probe")).status_code == 200

    out = await browser.post("/console/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert "dsrflow_session" not in browser.cookies
    # The old cookie value, replayed, is worth nothing: the session ended server-side.
    browser.cookies.set("dsrflow_session", session)
    assert_problem(await browser.get("/v1/requests"), 401)


async def test_revoking_the_token_ends_its_sessions(browser, pool):
    row, token = await issue_token(pool, "compliance")
    token_id = row["id"]
    await sign_in(browser, token)

    await revoke_token(pool, token_id, actor="admin:test")

    assert_problem(await browser.get("/v1/requests"), 401)
    assert (await browser.get("/console/probe")).status_code == 303
    assert await pool.fetchval("SELECT count(*) FROM staff_sessions WHERE token_id = $1 AND ended_at IS NULL",
                               uuid.UUID(token_id)) == 0


async def test_expired_session_is_refused(browser, pool):
    await sign_in(browser, await create_token(pool, "agent"))
    await pool.execute("UPDATE staff_sessions SET expires_at = now() - interval '1 second' WHERE id_hash = encode(sha256($1::bytea), 'hex')",
                       browser.cookies["dsrflow_session"].encode())
    assert_problem(await browser.get("/v1/requests"), 401)


async def _idle_for(pool, browser, minutes: int) -> None:
    await pool.execute("UPDATE staff_sessions SET last_used_at = now() - make_interval(mins => $2) "
                       "WHERE id_hash = encode(sha256($1::bytea), 'hex')",
                       browser.cookies["dsrflow_session"].encode(), minutes)


async def test_a_session_left_idle_for_half_an_hour_ends(browser, pool):
    await sign_in(browser, await create_token(pool, "agent"))
    await _idle_for(pool, browser, 29)
    assert (await browser.get("/console/probe-agent")).status_code == 200  # used: its idle clock restarts
    await _idle_for(pool, browser, 31)
    assert (await browser.get("/console/probe-agent")).status_code == 303
    assert_problem(await browser.get("/v1/requests"), 401)


async def test_a_page_polling_itself_does_not_keep_its_session_alive(browser, pool):
    await sign_in(browser, await create_token(pool, "agent"))
    await _idle_for(pool, browser, 29)
    poll = {"HX-Request": "true"}
    assert (await browser.get("/console/probe-agent", headers=poll)).status_code == 200
    await pool.execute("UPDATE staff_sessions SET last_used_at = last_used_at - interval '2 minutes' "
                       "WHERE id_hash = encode(sha256($1::bytea), 'hex')", browser.cookies["dsrflow_session"].encode())
    ended = await browser.get("/console/probe-agent", headers=poll)
    # htmx turns this into a full page load of the sign-in page
    assert ended.status_code == 401 and ended.headers["HX-Redirect"].startswith("/console/sign-in")
