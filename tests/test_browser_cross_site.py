"""A hostile page, served from another loopback origin, auto-submits a request form to the portal
in a real browser (Debian's Chromium): the browser says the post is cross-site, the portal shows
its refusal in the visitor's language and stores nothing; the same visitor's own post from the
portal's page is served. The attack over HTTP, with every header variant:
tests/test_attack_cross_site.py. Same setup as tests/test_browser.py."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.fanout_stack import loopback_socket, serve
from tests.ratelimit_support import stored_for
from tests.support import unique_email
from tests.test_browser import CHROMIUM, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@contextlib.asynccontextmanager
async def hostile_site(target: str, email: str) -> AsyncIterator[str]:
    """A page on 127.0.0.2 (another site than the portal's 127.0.0.1) whose script submits a
    request form for `email` to `target` as soon as it loads."""
    page = f"""<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="{html.escape(target)}/portal/requests">
<input name="type" value="access"><input name="email" value="{html.escape(email)}"><input name="language" value="en">
</form><script>document.getElementById("f").submit()</script>"""

    async def hostile(_request) -> HTMLResponse:
        return HTMLResponse(page)

    sock, port = loopback_socket("127.0.0.2")
    server, task = await serve(Starlette(routes=[Route("/", hostile)]), sock)
    try:
        yield f"http://127.0.0.2:{port}/"
    finally:
        server.should_exit = True
        await task


async def test_a_hostile_pages_form_is_refused_in_the_visitors_language(browser, site, pool):  # noqa: F811
    email = unique_email("hostile")
    visitor = await (await browser.new_context(locale="de-DE")).new_page()
    async with hostile_site(site, email) as hostile:
        await visitor.goto(hostile)
        await expect(visitor).to_have_url(f"{site}/portal/requests")
    await expect(visitor.get_by_role("heading", level=1)).to_have_text("Von einer anderen Website gesendet")
    await expect(visitor.get_by_role("alert")).to_contain_text("weil Ihr Browser es von einer Seite einer anderen")
    await expect(visitor.locator("html")).to_have_attribute("lang", "de")
    assert await stored_for(pool, email) == 0

    # The visitor's own request, from the portal's page (German labels): served.
    await visitor.goto(f"{site}/portal")
    await visitor.locator("input[name=type][value=access]").check()
    await visitor.locator("#email").fill(email)
    await visitor.locator("form[action='/portal/requests'] button[type=submit]").click()
    await expect(visitor).to_have_url(re.compile(rf"{re.escape(site)}/portal/requests/[0-9a-f-]{{36}}/verify"))
    assert await stored_for(pool, email) == 1
