"""The subject portal in each language the controller writes in (issue 16), over the real app,
worker, PostgreSQL and Temporal dev server: the language a page is written in (`?lang=`, the
`dsrflow_lang` cookie, `Accept-Language`, the policy's default), and no page in any language
showing a placeholder left unfilled. The console stays in the staff language. The request stored
in its page's language: tests/test_portal_request_language.py; the translators' words themselves:
tests/test_portal_wording.py.

The catalogs are being translated: the assertions hold whatever the translators' words (the page's
`lang`, the form's language, the cookie).
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.requests import Request

import api.public.portal as portal
from api.page_language import accepted_language
from api.pages import render
from api.problems import Problem
from api.public.intake import PURGED
from api.ratelimit import RateLimiter, _too_many
from dsrflow.crypto.hashing import token_hash
from tests.support import console_sign_in, stored_request, unique_email, verification_code, wait_for_letter

LANGUAGES = ("en", "nl", "fr", "de")
ROOT = Path(__file__).resolve().parent.parent
# What a page must never show: a placeholder or a template tag left unfilled, a missing value.
UNFILLED = ("%(", "%s", "%d", "{{", "}}", "{%", "%}", "None", "Undefined")


def page_language(html: str) -> str:
    match = re.search(r'<html lang="([^"]*)">', html)
    assert match, html[:200]
    return match.group(1)


def form_language(html: str) -> str:
    match = re.search(r'<input type="hidden" name="language" value="([^"]*)">', html)
    assert match, "the form sends no language"
    return match.group(1)


def assert_filled(html: str, where: str) -> None:
    body = html.split("<body", 1)[1]
    for mark in UNFILLED:
        assert mark not in body, f"{where}: {mark!r} on the page: ...{body[max(body.find(mark) - 120, 0):][:240]}..."


async def submit(http, language: str | None = None, **fields) -> str:
    """Send the portal's form as the page in `language` (or the client's) writes it."""
    form = await http.get("/portal", params={"lang": language} if language else None)
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    r = await http.post("/portal/requests", data={"submission": submission, "language": form_language(form.text),
                                                   **fields})
    assert r.status_code == 303, r.text
    return re.fullmatch(r"/portal/requests/([0-9a-f-]{36})/verify", r.headers["location"]).group(1)


# -- choosing the language -----------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("nl-BE,nl;q=0.9,en;q=0.8", "nl"),
    ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
    ("en;q=0.2, de-AT;q=0.9", "de"),          # by quality, not by order
    ("it, es;q=0.9, en-GB;q=0.4", "en"),      # the first one we write in
    ("de;q=0, nl;q=0.5", "nl"),               # q=0: not acceptable
    ("it, es", None), ("*", None), ("", None), (None, None), ("nl;q=abc", None), (",;,", None),
])
def test_accept_language_picks_the_best_supported_match(header, expected):
    assert accepted_language(header, list(LANGUAGES)) == expected


async def test_the_portal_answers_in_the_browsers_language(http):
    r = await http.get("/portal", headers={"Accept-Language": "nl-BE,nl;q=0.9,en;q=0.8"})
    assert r.status_code == 200
    assert page_language(r.text) == "nl" and form_language(r.text) == "nl"
    assert r.headers["content-language"] == "nl"
    assert '<strong lang="nl" aria-current="true">Nederlands</strong>' in r.text
    # Every language offered, named in itself, as a plain link (no script).
    for code, name in (("en", "English"), ("fr", "Français"), ("de", "Deutsch")):
        assert f'<a href="/portal?lang={code}" lang="{code}" hreflang="{code}">{name}</a>' in r.text
    assert "<script" not in r.text
    assert "set-cookie" not in r.headers  # nothing chosen, nothing remembered


async def test_a_chosen_language_is_remembered_for_the_next_pages(http):
    r = await http.get("/portal", params={"lang": "fr"}, headers={"Accept-Language": "de"})
    assert page_language(r.text) == "fr" and form_language(r.text) == "fr"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("dsrflow_lang=fr;"), cookie
    assert "Path=/;" in cookie and "SameSite=lax" in cookie and "HttpOnly" not in cookie

    # The next page, without a choice, stays French whatever the browser asks for.
    again = await http.get("/portal/status", params={"reference": "not a reference"}, headers={"Accept-Language": "de"})
    assert again.status_code == 422 and page_language(again.text) == "fr"
    # A link keeps the page's own query and changes only the language.
    assert '<a href="/portal/status?reference=not+a+reference&amp;lang=de"' in again.text
    missing = await http.get(f"/portal/requests/{uuid.uuid4()}")
    assert missing.status_code == 404 and page_language(missing.text) == "fr"
    # So does a letter's package link under the public API (its page was in the browser's language).
    link = await http.get(f"/v1/public/packages/{'0' * 64}", headers={"Accept": "text/html", "Accept-Language": "de"})
    assert link.status_code == 404 and page_language(link.text) == "fr"

    # Choosing again replaces the choice.
    r = await http.get("/portal", params={"lang": "de"})
    assert page_language(r.text) == "de" and r.headers["set-cookie"].startswith("dsrflow_lang=de;")
    assert page_language((await http.get("/portal")).text) == "de"


async def test_a_language_we_do_not_write_in_falls_back_without_an_error(http):
    r = await http.get("/portal", headers={"Accept-Language": "it-IT,it;q=0.9,es;q=0.8"})
    assert r.status_code == 200 and page_language(r.text) == "en"  # the policy's default
    r = await http.get("/portal", params={"lang": "it"}, headers={"Accept-Language": "de"})
    assert r.status_code == 200 and page_language(r.text) == "de"  # ignored: the browser's then
    assert "set-cookie" not in r.headers
    r = await http.get("/portal", params={"lang": "<script>"}, headers={"Cookie": "dsrflow_lang=xx"})
    assert r.status_code == 200 and page_language(r.text) == "en"


async def test_the_console_stays_in_the_staff_language(http):
    for path in ("/console/sign-in", "/console"):
        r = await http.get(path, headers={"Accept-Language": "fr", "Cookie": "dsrflow_lang=fr"}, params={"lang": "fr"},
                           follow_redirects=True)
        assert page_language(r.text) == "en" and r.headers["content-language"] == "en", path
        assert "dsrflow_lang" not in r.headers.get("set-cookie", "")


# -- every page, every language ------------------------------------------------------------------


async def _package(pool, settings, expires: datetime) -> str:
    """A package's link, on a request no workflow runs: a running one would take the row as its
    own package built earlier and give it a link of its own, and this token would open nothing."""
    rid = await stored_request(pool, settings, "pkg", "portability")
    token = secrets.token_hex(32)
    await pool.execute(
        """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at)
           VALUES ($1, $2, 'portability', '/nonexistent', 1536, 1, $3, $4)""",
        uuid.uuid4(), rid, token_hash(token), expires)
    return token


def _page_request(http, language: str, path: str = "/portal/requests", method: str = "POST") -> Request:
    """A request as the app sees it, for pages the test cannot provoke cheaply (the limits)."""
    return Request({"type": "http", "app": http._transport.app, "method": method, "path": path,
                    "query_string": f"lang={language}".encode(), "headers": [], "scheme": "http",
                    "server": ("test", 80), "client": ("127.0.0.1", 1), "root_path": ""})


@pytest.mark.parametrize("language", LANGUAGES)
async def test_no_page_shows_an_unfilled_placeholder(http, pool, settings, mail_sink, language):
    pages: dict[str, tuple[int, str]] = {}

    async def visit(name: str, response) -> None:
        pages[name] = (response.status_code, response.text)

    await visit("form", await http.get("/portal", params={"lang": language}))
    await visit("form errors", await http.post("/portal/requests", data={
        "type": "rectification", "email": "nobody", "country": "Belgium", "name": "a\nb", "language": language,
        "other_corrections": "no colon"}))
    for kind, extra in (("restriction", {}), ("objection", {}), ("rectification", {"correct_name": "Ada"})):
        await visit(f"{kind} errors", await http.post("/portal/requests", data={
            "type": kind, "email": unique_email("errors"), "language": language, **extra}))
    await visit("bad reference", await http.get("/portal/status", params={"reference": "x"}))

    rid = await submit(http, language, type="erasure", email=unique_email(f"pages-{language}"))
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    await visit("verify", await http.get(f"/portal/requests/{rid}/verify"))
    await visit("verify link", await http.get(f"/portal/requests/{rid}/verify", params={"token": "ab" * 32}))
    await visit("verify bad code", await http.post(f"/portal/requests/{rid}/verify", data={"code": "12"}))
    await visit("verify bad link", await http.post(f"/portal/requests/{rid}/verify", data={"token": "zz"}))
    await visit("verify wrong code", await http.post(f"/portal/requests/{rid}/verify", data={
        "code": "000000" if code != "000000" else "111111"}))
    locking = await submit(http, language, type="erasure", email=unique_email(f"locked-{language}"))
    not_it = "000000" if verification_code(await wait_for_letter(mail_sink, locking, "verification")) != "000000" \
        else "111111"
    for _ in range(4):
        await http.post(f"/portal/requests/{locking}/verify", data={"code": not_it})
    await visit("verify locked", await http.post(f"/portal/requests/{locking}/verify", data={"code": not_it}))
    await visit("status waiting", await http.get(f"/portal/requests/{rid}"))
    confirmed = await http.post(f"/portal/requests/{rid}/verify", data={"code": code})
    assert confirmed.status_code == 303
    await visit("status confirmed", await http.get(confirmed.headers["location"]))
    await visit("nothing to confirm", await http.get(f"/portal/requests/{rid}/verify"))
    await visit("no such request", await http.get(f"/portal/requests/{uuid.uuid4()}"))

    now = datetime.now(UTC)
    await visit("package", await http.get(f"/portal/packages/{await _package(pool, settings, now + timedelta(days=7))}"))
    expired = await _package(pool, settings, now - timedelta(minutes=1))
    await visit("package expired", await http.get(f"/portal/packages/{expired}"))
    await visit("package unknown", await http.get(f"/portal/packages/{secrets.token_hex(32)}"))
    # The letter's download link opened in a browser (outside /portal: the cookie is not sent there).
    await visit("download expired", await http.get(f"/v1/public/packages/{expired}", headers={
        "Accept": "text/html", "Accept-Language": language}))

    for problem in (_too_many(1), _too_many(42),
                    Problem(503, "Too many requests waiting",
                            "we are receiving more requests than usual; please try again in a few minutes",
                            retry_after=30)):
        page = render(_page_request(http, language), "portal/problem.html", {"problem": problem},
                      status_code=problem.status)
        pages[f"problem {problem.status} {problem.extra}"] = (page.status_code, bytes(page.body).decode())
        assert problem.title in portal.PROBLEM_WORDS
        assert problem.status == 429 or problem.detail is None or problem.detail in portal.PROBLEM_WORDS

    expected = {"form": 200, "form errors": 422, "bad reference": 422, "verify": 200, "verify link": 200,
                "verify bad code": 422, "verify bad link": 422, "verify wrong code": 400, "verify locked": 423,
                "no such request": 404,
                "package": 200, "package expired": 410, "package unknown": 404, "download expired": 410}
    for name, (status, html) in pages.items():
        assert status == expected.get(name, status), (name, status, html[-500:])
        assert page_language(html) == language, name
        assert_filled(html, f"{language} {name}")
    # Counts are written with the language's plural forms, not "(s)".
    assert all("(s)" not in html for _, html in pages.values())


def test_the_problems_the_portal_shows_are_messages_of_the_catalogs():
    """portal.PROBLEM_WORDS marks, for the catalogs, the words of the problems the portal's pages
    show that other modules raise: these must be those modules' words."""
    assert set(PURGED.values()) <= set(portal.PROBLEM_WORDS)
    assert _too_many(5).title in portal.PROBLEM_WORDS
    ceiling = Path(RateLimiter.check_unverified_ceiling.__code__.co_filename).read_text()
    intake = (ROOT / "api/public/intake.py").read_text()
    for words in portal.PROBLEM_WORDS:
        assert f'"{words}"' in intake or f'"{words}"' in ceiling or words in PURGED.values(), words


@pytest.mark.parametrize(("path", "language", "title"), [
    ("/portal/nope", "fr", "Page introuvable"),
    ("/v1/public/pakages/a1b2", "nl", "Pagina niet gevonden"),  # a link mistyped
    ("/portal/packages", "de", "Seite nicht gefunden"),  # /portal/requests leads to the form now
    ("/portal/nope", "en", "Page not found"),
])
async def test_an_address_no_page_answers_is_a_portal_page_in_the_browsers_language(http, path, language, title):
    """It answered a browser with the API's JSON ({"title": "Not Found"}): a subject read code."""
    page = await http.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
                                         "Accept-Language": language})
    assert page.status_code in (404, 405) and page.headers["content-type"].startswith("text/html")
    assert page_language(page.text) == language and f"<h1>{title}</h1>" in page.text
    assert 'href="/portal"' in page.text
    # An API client gets the problem as it always did.
    api = await http.get(path)
    assert api.status_code in (404, 405) and api.headers["content-type"] == "application/problem+json"


async def test_an_address_no_console_page_answers_is_a_console_page(http, pool):
    page = await http.get("/console/nope", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "<h1>Page not found</h1>" in page.text
    assert 'href="/console/"' in page.text and "Signed in as" not in page.text
    assert "There is no page of the console at this address." in page.text
    # Signed in, the console's header says so, with its links, as on any of its pages.
    await console_sign_in(http, pool, "agent")
    signed_in = await http.get("/console/nope", headers={"Accept": "text/html"})
    assert signed_in.status_code == 404 and "Signed in as agent" in signed_in.text
    assert (await http.get("/v1/nope", headers={"Accept": "text/html"})).headers["content-type"] == \
        "application/problem+json"  # the staff API is JSON, for a browser too
