"""The stand-ins' control API (`/_standin/...`, docs/saas.md "Demo"): what a user running
`dsrflow up --demo-saas` posts to make a service misbehave is applied as asked, and a malformed
fault is refused with the field it lacks, not a bare 500."""

from __future__ import annotations

import httpx

from devstack.saas.stripe import create_stripe_app

KEY = "sk_test_control"


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_stripe_app(KEY)), base_url="http://stripe",
                             headers={"Authorization": f"Bearer {KEY}"})


async def test_an_injected_fault_is_answered_then_the_service_again() -> None:
    async with _client() as http:
        added = await http.post("/_standin/faults", json={"status": 429, "retry_after": "5", "path": "/v1/customers"})
        assert added.status_code == 200 and added.json() == {"faults": 1}
        throttled = await http.get("/v1/customers", params={"email": "ada@example.com"})
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "5"
        assert (await http.get("/v1/customers", params={"email": "ada@example.com"})).status_code == 200
        served = (await http.get("/_standin/requests")).json()
        assert [s["status"] for s in served] == [429, 200]


async def test_a_malformed_fault_is_refused_naming_the_field() -> None:
    async with _client() as http:
        for document, field in (({"retry_after": "5"}, "status"), ({"status": 42}, "status"),
                                ({"status": 503, "times": 0}, "times"), ({"status": 503, "paths": "/v1"}, "paths")):
            refused = await http.post("/_standin/faults", json=document)
            assert refused.status_code == 422, document
            assert [e["loc"][-1] for e in refused.json()["detail"]] == [field], refused.json()
        # Nothing half-applied: the service answers as before.
        assert (await http.get("/v1/customers", params={"email": "ada@example.com"})).status_code == 200
