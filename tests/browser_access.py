"""What a page of the subject's portal must be for everyone (tests/test_browser_portal_access.py),
checked in the browser showing it: `assert_usable` reads the page as the accessibility tree and the
layout give it, `watched` collects what went wrong in the browser, and `tab_to` moves the focus
with the keyboard alone, checking that each element it lands on shows it. And what the portal's
browser tests share: its languages, the controller's privacy address, a field by its label in a
language (`field`), the verify page a sent form leads to (`REQUEST_ID`), and a site with a worker
for a module (the `portal_site` fixture)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from dsrflow.i18n import translations
from policy.model import DEFAULT_POLICY
from tests.policy_once import policy_at
from tests.test_browser import served_site

PHONE = {"width": 360, "height": 740}
CONTROLLER = "Connexeon"
LANGUAGES = ("en", "nl", "fr", "de")
PRIVACY_EMAIL = policy_at(DEFAULT_POLICY).policy.controller.privacy_email
REQUEST_ID = re.compile(r"/portal/requests/([0-9a-f-]{36})/verify$")


@pytest.fixture(scope="module", name="portal_site")
async def portal_site_fixture(settings, pool, dev_server) -> AsyncIterator[str]:
    """The whole app and a worker for the module: a refusal's letter, a complaint's, a lock's codes."""
    async with served_site(settings, pool, dev_server.client, f"portal-{uuid.uuid4().hex[:8]}") as url:
        yield url


def field(page: Page, language: str, label: str):
    return page.get_by_label(translations(language).gettext(label), exact=True)


# What the page says of itself, as the browser's accessibility tree would: read in the page.
_AUDIT = """() => {
  const text = el => (el.textContent || '').replace(/\\s+/g, ' ').trim();
  const ids = el => (el.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean);
  const controls = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')];
  const unlabelled = controls.filter(c => {
    const label = c.id && document.querySelector(`label[for="${CSS.escape(c.id)}"]`);
    return !(label && text(label)) && !(c.getAttribute('aria-label') || '').trim();
  }).map(c => c.outerHTML.slice(0, 160));
  const nameless = [...document.querySelectorAll('button, a[href]')].filter(b => !text(b) && !b.getAttribute('aria-label'))
    .map(b => b.outerHTML.slice(0, 160));
  const alerts = [...document.querySelectorAll('[role=alert]')].map(text).join(' | ');
  const active = document.activeElement;
  const heard = [text(active === document.body ? document.createElement('x') : active),
                 ...ids(active).map(id => document.getElementById(id)).filter(Boolean).map(text)].join(' | ');
  const errors = [...document.querySelectorAll('.error')].map(e => {
    const said = text(e).replace(/^[^:]*:\\s*/, m => e.querySelector('.visually-hidden') ? '' : m);
    const base = e.id ? e.id.replace(/-error$/, '') : null;
    const field = base && base !== e.id ? document.getElementById(base) : null;
    const inside = field ? (field.matches('input, select, textarea') ? [field]
                            : [...field.querySelectorAll('input:not([type=hidden]), select, textarea')]) : [];
    const describing = [...document.querySelectorAll('[aria-describedby]')].filter(el => ids(el).includes(e.id));
    return {id: e.id, said, field: field ? field.tagName.toLowerCase() : null,
            untied: inside.filter(c => !ids(c).includes(e.id) || c.getAttribute('aria-invalid') !== 'true')
                          .map(c => c.id || c.name),
            describedBy: describing.length, announced: alerts.includes(said) || heard.includes(said)};
  });
  const invalid = document.querySelector('[aria-invalid=true]');
  return {
    lang: document.documentElement.lang, title: document.title,
    h1: [...document.querySelectorAll('h1')].map(text),
    current: [...document.querySelectorAll('#language [aria-current]')].map(e => e.getAttribute('lang')),
    unlabelled, nameless, errors,
    focus: active === document.body ? 'body' : active.outerHTML.slice(0, 160),
    focusOnRefusal: !!active && (active.matches('.error-summary') || active === invalid),
    width: document.documentElement.scrollWidth, viewport: window.innerWidth,
    wide: [...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .map(el => el.outerHTML.slice(0, 120)).slice(0, 5),
  };
}"""

# Whether the focused element shows it: an outline at least 2 px wide, on screen.
_FOCUS_SHOWN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {shown: false, what: 'body'};
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  const outlined = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const onScreen = box.width > 0 && box.height > 0 && box.right > 0 && box.left < window.innerWidth;
  return {shown: el.matches(':focus-visible') && outlined && onScreen, what: el.outerHTML.slice(0, 160)};
}"""


def watched(page: Page) -> list[str]:
    """What went wrong in the browser on `page` from now on: console errors (CSP violations among
    them), script errors, requests that failed, and resources answered with an error. The pages
    themselves may answer 4xx (a problem page, a refused form): those are what is shown."""
    seen: list[str] = []

    def console(message) -> None:
        if message.type != "error":
            return
        # Chromium logs a document's own 4xx status as a failed load: that status is the page.
        if message.text.startswith("Failed to load resource") and message.location.get("url") == page.url:
            return
        seen.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda error: seen.append(f"script error: {error}"))
    # A request the browser cancels as the page moves on (net::ERR_ABORTED) has not failed.
    page.on("requestfailed", lambda request: seen.append(f"failed: {request.url} {request.failure}")
            if request.resource_type != "document" and "ERR_ABORTED" not in (request.failure or "") else None)
    page.on("response", lambda response: seen.append(f"{response.status}: {response.url}")
            if response.status >= 400 and response.request.resource_type != "document" else None)
    return seen


async def phone(browser: Browser, **options) -> tuple[Page, list[str]]:
    """A new 360 px wide page, and what goes wrong on it (`watched`)."""
    page = await (await browser.new_context(viewport=PHONE, **options)).new_page()
    return page, watched(page)


async def assert_usable(page: Page, seen: list[str], language: str, heading: str, *, refused: bool = False) -> dict:
    """The page's checks (the module's docstring); `heading`, in English, is its h1 in `language`.
    `refused`: the page answers a submit it refused, so the focus must be on what to correct."""
    words = translations(language).gettext(heading)
    await expect(page.get_by_role("heading", level=1)).to_have_text(words)
    if refused:
        # The browser moves the focus (autofocus) at a rendering step after the load, which a
        # loaded machine may not have reached yet: wait for it, then judge where it went. Polled
        # with evaluate: wait_for_function evaluates a string, which the page's CSP refuses.
        for _ in range(50):
            if await page.evaluate("() => document.activeElement !== document.body"):
                break
            await asyncio.sleep(0.1)
    page_said = await page.evaluate(_AUDIT)
    where = f"{page.url} ({language})"
    found = []
    if page_said["lang"] != language:
        found.append(f"lang {page_said['lang']}")
    if page_said["current"] not in ([language], []):  # the language links name the one shown
        found.append(f"current language {page_said['current']}")
    if page_said["h1"] != [words]:
        found.append(f"h1 {page_said['h1']}")
    if not (page_said["title"].startswith(f"{words} · ") and CONTROLLER in page_said["title"]):
        found.append(f"title {page_said['title']!r}")
    found += [f"unlabelled {c}" for c in page_said["unlabelled"]]
    found += [f"no name {c}" for c in page_said["nameless"]]
    for error in page_said["errors"]:
        if error["field"] and not (error["describedBy"] and error["untied"] == []):
            found.append(f"error not tied to its field: {error}")
        if not error["announced"]:
            found.append(f"error not announced: {error}")
    if refused and not page_said["errors"]:
        found.append("no error shown")
    if refused and not page_said["focusOnRefusal"]:
        found.append(f"focus after the refusal on {page_said['focus']}")
    if page_said["width"] > page_said["viewport"] or page_said["wide"]:
        found.append(f"wider than the screen ({page_said['width']} px): {page_said['wide']}")
    found += seen
    seen.clear()
    assert found == [], (where, found)
    return page_said


async def tab_to(page: Page, selector: str, *, limit: int = 40) -> None:
    """Press Tab until the focus is on `selector`; every element it lands on on the way shows its
    focus."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUS_SHOWN)
        assert focused["shown"], f"focus not visible on {focused['what']}"
        if await page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} not reached with the keyboard")


async def type_in(page: Page, selector: str, value: str) -> None:
    """Tab to the field `selector` and type `value` in it."""
    await tab_to(page, selector)
    await page.keyboard.type(value)


def errors_of(page_said: dict) -> list[str]:
    """The ids of the errors `assert_usable` found on the page, in the page's order."""
    return [error["id"] for error in page_said["errors"]]
