"""The public API's JSON routes count a call before its body is parsed: a body that was no JSON
(or JSON nested past the parser's depth) was answered 422 or 400 without being counted, so one
client could send them without end, and its next real submission was still served."""

from __future__ import annotations

import uuid

from tests.ratelimit_support import PROBLEM, app_clients, assert_limited, stored_for, unique_ip
from tests.support import unique_email

NOT_JSON = ("{not json", "[" * 50_000)


async def test_bodies_that_are_no_json_count_against_the_submission_limit(settings, pool, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="2/hour") as call_from:
        http = call_from(unique_ip())
        for body in NOT_JSON:
            r = await http.post("/v1/public/requests", content=body, headers={"content-type": "application/json"})
            assert r.status_code in (400, 422) and r.headers["content-type"].startswith(PROBLEM), r.text
        email = unique_email("notjson")

        refused = await http.post("/v1/public/requests", json={"type": "access", "email": email})

        assert_limited(refused, 3600)
        assert await stored_for(pool, email) == 0


async def test_bodies_that_are_no_json_count_against_the_verification_limits(settings, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_verify_per_ip="2/hour") as call_from:
        http = call_from(unique_ip())
        unknown = f"/v1/public/requests/{uuid.uuid4()}/verify"
        for body in NOT_JSON:
            r = await http.post(unknown, content=body, headers={"content-type": "application/json"})
            assert r.status_code in (400, 422), r.text

        assert_limited(await http.post(unknown, json={"code": "123456"}), 3600)
