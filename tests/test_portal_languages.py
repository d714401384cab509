"""The subject portal in each language the controller writes in (issue 16), over the real app,
worker, PostgreSQL and Temporal dev server: the language a page is written in (`?lang=`, the
`dsrflow_lang` cookie, `Accept-Language`, the policy's default), the request stored in it, a
language we do not write in refused naming the field, and no page in any language showing a
placeholder left unfilled. The console stays in the staff language.

The catalogs are being translated: the assertions hold whatever the translators' words (the page's
`lang`, the form's language, the cookie). The few that check the words themselves are marked
WORDING and skip, saying so, until the language's catalog translates the message they need.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from html import unescape
from pathlib import Path

import pytest
import yaml
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po
from starlette.requests import Request

import api.public.portal as portal
from api.pages import accepted_language, render
from api.problems import Problem
from api.public.intake import PURGED
from api.ratelimit import RateLimiter, _too_many
from dsrflow.crypto.hashing import token_hash
from dsrflow.i18n import catalog_path
from tests.support import api_client, staff_headers, unique_email, verification_code, wait_for_letter

LANGUAGES = ("en", "nl", "fr", "de")
TRANSLATED = ("nl", "fr", "de")
HEADING = "Ask about your personal data"  # the portal's main heading (portal/request_form.html)
ROOT = Path(__file__).resolve().parent.parent
# What a page must never show: a placeholder or a template tag left unfilled, a missing value.
UNFILLED = ("%(", "%s", "%d", "{{", "}}", "{%", "%}", "None", "Undefined")


@cache
def _catalog(language: str) -> Catalog | None:
    path = catalog_path(language)
    if not path.is_file():
        return None
    with path.open("rb") as source:
        return read_po(source, locale=language)


def catalog_has(language: str, msgid: str) -> bool:
    """Whether `language`'s catalog translates `msgid` (an entry with a translation, not fuzzy)."""
    catalog = _catalog(language)
    message = catalog.get(msgid) if catalog is not None else None
    if message is None or message.fuzzy:
        return False
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)


def translation(language: str, msgid: str) -> str:
    catalog = _catalog(language)
    assert catalog is not None
    message = catalog.get(msgid)
    assert message is not None
    return str(message.string)


def page_language(html: str) -> str:
    match = re.search(r'<html lang="([^"]*)">', html)
    assert match, html[:200]
    return match.group(1)


def form_language(html: str) -> str:
    match = re.search(r'<input type="hidden" name="language" value="([^"]*)">', html)
    assert match, "the form sends no language"
    return match.group(1)


def heading(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match
    return unescape(match.group(1)).strip()


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
    assert "Path=/portal" in cookie and "SameSite=lax" in cookie and "HttpOnly" not in cookie

    # The next page, without a choice, stays French whatever the browser asks for.
    again = await http.get("/portal/status", params={"reference": "not a reference"}, headers={"Accept-Language": "de"})
    assert again.status_code == 422 and page_language(again.text) == "fr"
    # A link keeps the page's own query and changes only the language.
    assert '<a href="/portal/status?reference=not+a+reference&amp;lang=de"' in again.text
    missing = await http.get(f"/portal/requests/{uuid.uuid4()}")
    assert missing.status_code == 404 and page_language(missing.text) == "fr"

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


# -- the request in the page's language ------------------------------------------------------------


async def test_a_request_from_the_french_portal_is_written_to_in_french(http, pool, mail_sink):
    rid = await submit(http, "fr", type="access", email=unique_email("fr"))
    assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1", rid) == "fr"
    view = await http.get(f"/v1/requests/{rid}", headers=await staff_headers(pool, "agent"))
    assert view.json()["language"] == "fr"
    letter = await wait_for_letter(mail_sink, rid, "verification")
    assert letter["Content-Language"] == "fr"

    page = await http.get(f"/portal/requests/{rid}/verify")  # the cookie: French
    assert page_language(page.text) == "fr"
    code = verification_code(letter)
    wrong = await http.post(f"/portal/requests/{rid}/verify", data={"code": "000000" if code != "000000" else "1" * 6})
    assert wrong.status_code == 400 and page_language(wrong.text) == "fr"
    # The page answering the post offers its languages as links to the page (not to the post).
    assert f'<a href="/portal/requests/{rid}/verify?lang=nl"' in wrong.text


async def test_a_request_without_a_choice_takes_the_browsers_language(http, pool):
    http.headers["Accept-Language"] = "de-DE,de;q=0.9"
    rid = await submit(http, type="access", email=unique_email("de"))
    assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1", rid) == "de"


@pytest.mark.parametrize("forged", ["it", "EN", "", "x" * 300, '"><b>nl'])
async def test_a_forged_language_is_refused_naming_the_field(http, pool, forged):
    email = unique_email("forged")
    page = await http.get("/portal", params={"lang": "nl"})
    submission = re.search(r'name="submission" value="([^"]+)"', page.text).group(1)
    r = await http.post("/portal/requests", data={"submission": submission, "type": "access", "email": email,
                                                   "language": forged})
    if forged == "":
        # No language at all is the policy's default, as for the API.
        assert r.status_code == 303
        rid = r.headers["location"].split("/")[3]
        assert await pool.fetchval("SELECT language FROM dsr_requests WHERE id = $1", rid) == "en"
        return
    assert r.status_code == 422
    assert '<a href="#language">' in r.text and 'id="language-error"' in r.text and 'id="language"' in r.text
    assert page_language(r.text) == "nl" and form_language(r.text) == "nl"  # the page's, not the forged one
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


@pytest.fixture
async def dutch_first(settings, lifecycle_policy, dev_server, task_queue, tmp_path):
    """The app under a policy that writes in Dutch (its default) and English only."""
    content = yaml.safe_load(lifecycle_policy.read_text())
    content["languages"] = {"supported": ["nl", "en"], "default": "nl", "staff": "en"}
    content["translations"] = {"nl": content["translations"]["nl"]}
    path = tmp_path / "dutch-first.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))  # its translation: the shipped file
    async with api_client(settings.model_copy(update={"policy_path": path}), dev_server.client, task_queue) as http:
        yield http


async def test_the_policy_says_which_languages_the_portal_offers(dutch_first, pool):
    r = await dutch_first.get("/portal", headers={"Accept-Language": "fr, de;q=0.9"})
    assert page_language(r.text) == "nl"  # the policy's default
    assert re.findall(r'hreflang="(\w+)"', r.text) == ["en"] and "Français" not in r.text
    r = await dutch_first.get("/portal", params={"lang": "fr"})
    assert page_language(r.text) == "nl" and "set-cookie" not in r.headers
    # A language the app knows but this controller does not write in: the policy refuses it.
    email = unique_email("unsupported")
    r = await dutch_first.post("/portal/requests", data={"type": "access", "email": email, "language": "fr"})
    assert r.status_code == 422 and 'id="language-error"' in r.text
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


# -- every page, every language ------------------------------------------------------------------


async def _package(pool, http, expires: datetime) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "portability", "subject": {"email": unique_email("pkg")}, "identity_attested": True})
    token = secrets.token_hex(32)
    await pool.execute(
        """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at)
           VALUES ($1, $2, 'portability', '/nonexistent', 1536, 1, $3, $4)""",
        uuid.uuid4(), r.json()["id"], token_hash(token), expires)
    return token


def _page_request(http, language: str, path: str = "/portal/requests", method: str = "POST") -> Request:
    """A request as the app sees it, for pages the test cannot provoke cheaply (the limits)."""
    return Request({"type": "http", "app": http._transport.app, "method": method, "path": path,
                    "query_string": f"lang={language}".encode(), "headers": [], "scheme": "http",
                    "server": ("test", 80), "client": ("127.0.0.1", 1), "root_path": ""})


@pytest.mark.parametrize("language", LANGUAGES)
async def test_no_page_shows_an_unfilled_placeholder(http, pool, mail_sink, language):
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
    await visit("package", await http.get(f"/portal/packages/{await _package(pool, http, now + timedelta(days=7))}"))
    expired = await _package(pool, http, now - timedelta(minutes=1))
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


# -- the words (WORDING: these run once each language's catalog translates them) --------------------


def _portal_messages() -> dict[str, set[str]]:
    """Every message of the portal's templates and Python code (a plural by its singular, as the
    catalogs key it) -> its placeholders."""
    found: dict[str, set[str]] = {}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}
    jinja = {"extensions": "jinja2.ext.i18n", "trimmed": "true"}
    files = [(path, "jinja2.ext:babel_extract", jinja)
             for path in [*sorted((ROOT / "api/templates/portal").glob("*.html")),
                          ROOT / "api/templates/_request_form.html"]]
    files += [(ROOT / name, "python", {}) for name in ("api/public/portal.py", "api/request_form.py")]
    for path, method, options in files:
        for _, messages, _, _ in extract_from_file(method, str(path), keywords=keywords, options=options):
            forms = [form for form in (messages if isinstance(messages, tuple) else (messages,)) if form]
            if forms:
                found[forms[0]] = {name for form in forms for name in re.findall(r"%\((\w+)\)", form)}
    return found


def test_the_portal_has_messages_to_translate():
    messages = _portal_messages()
    assert HEADING in messages and "Send my request" in messages
    assert messages["You have %(num)d attempt left."] == {"num"}
    assert all(not message.startswith(" ") and "\n" not in message for message in messages)  # trimmed


def _once_translated(language: str):
    """WORDING: `language` as a test parameter that skips until its catalog translates the portal's
    main heading (the portal's messages merged into the catalogs and translated)."""
    return pytest.param(language, marks=pytest.mark.skipif(
        not catalog_has(language, HEADING), reason=f"WORDING: the {language} catalog does not translate "
        f"the portal yet ({HEADING!r})"))


@pytest.mark.parametrize("language", [_once_translated(language) for language in TRANSLATED])
def test_wording_each_portal_message_is_translated_with_its_placeholders(language):
    catalog = _catalog(language)
    assert catalog is not None
    for msgid, placeholders in _portal_messages().items():
        entry = catalog.get(msgid)
        assert entry is not None and catalog_has(language, msgid), f"{language}: not translated: {msgid!r}"
        for string in entry.string if isinstance(entry.string, tuple) else (entry.string,):
            assert set(re.findall(r"%\((\w+)\)", string)) == placeholders, (language, msgid, string)


# The portal's main heading, as each language is expected to say it (its key word).
MAIN_HEADING = {"nl": "gegevens", "fr": "données", "de": "Daten"}


@pytest.mark.parametrize("language", [_once_translated(language) for language in TRANSLATED])
async def test_wording_the_main_heading_is_in_the_pages_language(http, language):
    r = await http.get("/portal", params={"lang": language})
    words = translation(language, HEADING)
    assert heading(r.text) == words != HEADING
    assert MAIN_HEADING[language] in words
    assert f"<title>{words} · " in unescape(r.text)
