"""How long a refused client is told to wait (api/ratelimit.py `wait_words`): a day's limit read
"try again in 86400 second(s)" in the API's problem detail and "Please wait 86400 seconds" on the
portal. Now it is said in the unit people count, rounded up, in the page's language; the
`Retry-After` header stays in seconds, for programs."""

from __future__ import annotations

import uuid

from api.ratelimit import wait_words
from tests.ratelimit_support import app_clients, assert_limited, unique_ip


def test_a_wait_is_said_in_the_largest_unit_it_holds_twice_rounded_up():
    said = {seconds: wait_words(seconds) for seconds in (1, 90, 120, 121, 3600, 7201, 86400, 7 * 86400)}
    assert said == {1: "1 second", 90: "90 seconds", 120: "2 minutes", 121: "3 minutes", 3600: "60 minutes",
                    7201: "3 hours", 86400: "24 hours", 7 * 86400: "7 days"}
    assert [wait_words(86400, language) for language in ("nl", "de")] == ["24 uur", "24 Stunden"]


async def test_a_days_limit_says_24_hours_on_the_portal_and_in_the_api(settings, dev_server, task_queue):
    nowhere = uuid.uuid4()  # counted before it is looked up, so no request is needed
    async with app_clients(settings, dev_server.client, task_queue, rate_lookup_per_ip="1/day",
                           rate_verify_per_ip="1/day", rate_link_per_ip="1/day") as call_from:
        http = call_from(unique_ip())
        page = f"/portal/requests/{nowhere}/verify?lang=de"
        assert (await http.get(page)).status_code == 404
        refused = await http.get(page)
        assert assert_limited(refused, 86400) > 86000  # the header in seconds
        assert "Bitte warten Sie 24 Stunden und versuchen Sie es dann erneut." in refused.text, refused.text

        verify = f"/v1/public/requests/{nowhere}/verify"
        assert (await http.post(verify, json={"code": "000000"})).status_code == 404
        refused = await http.post(verify, json={"code": "000000"})
        assert assert_limited(refused, 86400) > 86000
        assert refused.json()["detail"] == "too many attempts; try again in 24 hours"

        # A processor's confirmation link says it in words too.
        link = f"/v1/callbacks/manual/{uuid.uuid4().hex}"
        assert (await http.get(link)).status_code == 404
        refused = await http.get(link)
        assert assert_limited(refused, 86400) > 86000
        assert "please try again in 24 hours." in refused.text, refused.text
