"""`GET /`, the address `make run` prints: a browser is led to the console's sign-in, whose page
links the portal and the API's docs; an API client gets an index whose every link answers."""

from __future__ import annotations

import pytest

from api.pages import prefers_html
from tests.support import api_client

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.fixture(scope="module")
async def http(settings):
    async with api_client(settings, None, "unused") as client:
        yield client


async def test_a_browser_is_led_to_the_console_sign_in(http):
    root = await http.get("/", headers={"Accept": BROWSER})
    assert root.status_code == 303 and root.headers["location"] == "/console/sign-in"
    sign_in = await http.get(root.headers["location"], headers={"Accept": BROWSER})
    assert sign_in.status_code == 200
    for link in ('href="/portal"', 'href="/docs"', 'action="/console/sign-in"'):
        assert link in sign_in.text, link


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"])
async def test_an_api_client_gets_an_index_whose_links_answer(http, accept):
    root = await http.get("/", headers={"Accept": accept} if accept else {})
    assert root.status_code == 200 and root.headers["content-type"] == "application/json"
    links = root.json()["links"]
    assert set(links) == {"api", "openapi", "docs", "portal", "console", "health"}
    assert (await http.get(links["api"])).json() == root.json()
    assert (await http.get(links["openapi"])).json()["info"]["title"] == "dsrflow"
    for name in ("docs", "portal"):
        assert (await http.get(links[name])).status_code == 200, name
    assert (await http.get(links["console"])).headers["location"].startswith("/console/sign-in")
    assert (await http.get(links["health"])).status_code in (200, 503)  # 503: says which component is down


def test_html_is_preferred_only_when_named_ahead_of_json():
    assert prefers_html(BROWSER)
    assert prefers_html("text/html")
    assert not prefers_html(None) and not prefers_html("") and not prefers_html("*/*")
    assert not prefers_html("application/json;q=1, text/html;q=0.9")
    assert not prefers_html("text/html;q=0")
    assert not prefers_html("text/html;q=oops")
