"""The app the tests build once per process (tests/apps.py) starts fresh for each test: what one
test leaves in it (the rate limiter's memory of wrong tokens, anything on `app.state`, resources
and their caches) is not there for the next, and an app in use or changed is never lent again."""

from __future__ import annotations

import httpx

from tests.apps import _IDLE, lent_app
from tests.policy_once import policy_of
from tests.pools import session_pool_on
from tests.support import staff_headers


def resources(settings):
    return {"policy": policy_of(settings), "pool": session_pool_on(settings.effective_database_url)}


async def test_the_next_test_gets_the_same_routes_with_nothing_of_the_last(settings, pool):
    wrong = {"Authorization": "Bearer not-a-token"}
    async with lent_app(settings, **resources(settings)) as first:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://test") as http:
            assert (await http.get("/v1/requests", headers=wrong)).status_code == 401
        first_state, first_limiter = first.state.dsr, first.state.rate_limiter
        assert first_limiter._suspects  # the process now reads this client's count of wrong tokens
        assert first_state.codec is first_state.codec  # a cache of the state's
        first.state.left_behind = "by a test"
    assert not hasattr(first.state, "dsr")  # nothing serves with the closed resources meanwhile

    async with lent_app(settings, **resources(settings)) as second:
        assert second is first  # its routes already built
        assert second.state.dsr is not first_state and "codec" not in vars(second.state.dsr)
        assert second.state.rate_limiter is not first_limiter and not second.state.rate_limiter._suspects
        assert not hasattr(second.state, "left_behind")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://test") as http:
            answer = await http.get("/v1/requests", headers=await staff_headers(pool, "agent"))
        assert answer.status_code == 200, answer.text


async def test_an_app_in_use_or_changed_is_not_lent(settings):
    async with lent_app(settings, **resources(settings)) as outer:
        async with lent_app(settings.model_copy(update={"task_queue": "another"}), **resources(settings)) as inner:
            assert inner is not outer
            assert inner.state.dsr.settings.task_queue == "another" != outer.state.dsr.settings.task_queue

    async with lent_app(settings, **resources(settings)) as changed:
        @changed.get("/probe")
        async def probe() -> dict[str, str]:
            return {}

        changed.dependency_overrides[probe] = probe
    assert not any(changed in idle for idle in _IDLE.values())
