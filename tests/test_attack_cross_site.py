"""A hostile page makes its visitors' browsers post to the portal and the public API: each visitor
a client of its own, so the per-client limits stop nothing. Every public post a browser says
comes from another site's page is refused (403) before it is counted or stored; our own pages,
a bookmark and clients that are no browser are served (docs/security.md, "Posts from another
site's page"). The real app, PostgreSQL and Temporal; a real browser in
tests/test_browser_cross_site.py."""

from __future__ import annotations

import httpx
from fastapi.routing import iter_route_contexts

from api.app import create_app
from tests.ratelimit_support import PROBLEM, app_clients, stored_for, unique_ip
from tests.support import unique_email

# What a browser sends when a page of another site posts (a current browser; one that predates
# Sec-Fetch-Site, with only Origin), and the reason the API names for each.
HOSTILE = (
    ({"Sec-Fetch-Site": "cross-site", "Origin": "https://hostile.example"}, "Sec-Fetch-Site: cross-site"),
    # Another subdomain of our site (a customer's, a vendor's): refused too (api/public/cross_site.py).
    ({"Sec-Fetch-Site": "same-site", "Origin": "https://other.127.0.0.1.example"}, "Sec-Fetch-Site: same-site"),
    ({"Origin": "https://hostile.example"}, "Origin: https://hostile.example is not this site's"),
    ({"Origin": "null"}, "Origin: null is not this site's"),  # a sandboxed frame, a data: page
    ({"Origin": "http://test:8080"}, "Origin: http://test:8080 is not this site's"),  # our host, another port
)
# What our own pages, a bookmark, and a client that is no browser send: served.
OURS = (
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://test"},
    {"Sec-Fetch-Site": "none"},
    {"Origin": "http://test"},  # the request's own scheme and host
    {"Origin": "http://127.0.0.1:8000"},  # DSRFLOW_PUBLIC_URL (behind a proxy, the request's own differs)
    {},  # curl, an API client
)


def _form(email: str) -> dict[str, str]:
    return {"type": "access", "email": email, "language": "en"}


async def test_a_hostile_pages_posts_are_refused_and_neither_stored_nor_counted(settings, pool, dev_server,
                                                                                task_queue):
    """Each hostile post, to the portal's form and to the API (as JSON, and as the text/plain a
    cross-site form may send without asking), is refused: a page in the visitor's language from
    the portal, problem+json naming the reason from the API; nothing stored. With a limit of one
    submission an hour per client, the same client's own post is served afterwards: nothing
    refused was counted. Our own pages, a bookmark and an API client are each served."""
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="1/hour") as call_from:
        victim = call_from(unique_ip())
        email = unique_email("crosssite")
        for headers, reason in HOSTILE:
            page = await victim.post("/portal/requests", data=_form(email),
                                     headers={**headers, "Accept-Language": "nl-BE,nl;q=0.9"})
            assert page.status_code == 403, (headers, page.text[:300])
            assert page.headers["content-type"].startswith("text/html") and '<html lang="nl"' in page.text
            assert "Verzonden vanaf een andere website" in page.text
            assert "uw browser het heeft verzonden vanaf een pagina van een andere website" in page.text
            json = f'{{"type": "access", "email": "{email}"}}'
            for content_type in ("application/json", "text/plain"):
                api = await victim.post("/v1/public/requests", content=json,
                                        headers={**headers, "Content-Type": content_type})
                assert api.status_code == 403 and api.headers["content-type"].startswith(PROBLEM), api.text
                assert api.json()["reason"] == reason and api.json()["title"] == "Sent from another website"
        assert await stored_for(pool, email) == 0

        ours = await victim.post("/portal/requests", data=_form(email), headers=OURS[0])
        assert ours.status_code == 303, ours.text[:300]
        assert await stored_for(pool, email) == 1
        for headers in OURS[1:]:
            other = unique_email("crosssite")
            served = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": other},
                                                      headers=headers)
            assert served.status_code == 202, (headers, served.text)
            assert await stored_for(pool, other) == 1


async def test_every_public_post_refuses_a_hostile_page(settings, pool, dev_server, task_queue):
    """Every POST route anyone may call without signing in (the portal's and /v1/public's, as the
    app lists them: a route added later is covered, or this fails) answers a cross-site post 403
    before it looks anything up, even for a request and a link that exist nowhere."""
    app = create_app(settings.model_copy(update={"task_queue": task_queue}), temporal_client=dev_server.client)
    public_posts = [route.path for route in iter_route_contexts(app.routes) if "POST" in (route.methods or ())
                    and route.path.startswith(("/portal", "/v1/public"))]
    assert len(public_posts) >= 6, public_posts
    values = {"{request_id}": "00000000-0000-4000-8000-000000000000", "{token}": "ab" * 32}
    transport = httpx.ASGITransport(app=app, client=(unique_ip(), 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for path in public_posts:
            for name, value in values.items():
                path = path.replace(name, value)
            assert "{" not in path, path
            refused = await http.post(path, data={"code": "123456"}, headers=dict(HOSTILE[0][0]))
            assert refused.status_code == 403, (path, refused.text[:300])
    await app.state.dsr.close()
