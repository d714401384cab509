"""One rule for what each staff role may read, applied by the REST API and the console alike.

An agent once read on the console page what REST kept for compliance: the legal-claims hold's
reason (it speaks of litigation) and the full audit timeline. Here each role asks for both, through
REST and through the console's page and its polled live region, and gets the same answer from each.
"""

from __future__ import annotations

import pytest

from api.read_models.staff_reach import LEGAL_CLAIMS_HOLDS, READABLE_BY, TIMELINE
from tests.support import (
    console_sign_in,
    place_claims_hold,
    staff_headers,
    unique_email,
    wait_for_due_date,
)

HOLD_REASON = "Dispute over a support contract, claim 2026/17"  # tests/support.py place_claims_hold
ROLE_RANK = {"agent": 0, "compliance": 1, "admin": 2}


@pytest.mark.parametrize("role", ["agent", "compliance", "admin"])
async def test_each_role_reads_the_same_through_rest_and_the_console(role, http, pool, settings):
    email = unique_email("reads")
    opened = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                             json={"type": "erasure", "subject": {"email": email}})
    assert opened.status_code == 201, opened.text
    rid = opened.json()["id"]
    await wait_for_due_date(pool, rid)
    hold = await place_claims_hold(pool, settings, email, ["crm"])
    may_timeline = ROLE_RANK[role] >= ROLE_RANK[READABLE_BY[TIMELINE]]
    may_holds = ROLE_RANK[role] >= ROLE_RANK[READABLE_BY[LEGAL_CLAIMS_HOLDS]]
    assert (may_timeline, may_holds) == ((False, False) if role == "agent" else (True, True))

    headers = await staff_headers(pool, role)
    events = await http.get(f"/v1/requests/{rid}/events", headers=headers)
    listed = await http.get("/v1/legal-holds", headers=headers)
    one = await http.get(f"/v1/legal-holds/{hold['id']}", headers=headers)
    assert events.status_code == (200 if may_timeline else 403)
    assert (listed.status_code, one.status_code) == ((200, 200) if may_holds else (403, 403))
    assert (HOLD_REASON in listed.text + one.text) is may_holds

    await console_sign_in(http, pool, role)
    for path in (f"/console/requests/{rid}", f"/console/requests/{rid}/live"):
        page = await http.get(path)
        assert page.status_code == 200, path
        assert ('class="timeline"' in page.text) is may_timeline, path
        assert ("The audit timeline is for compliance." in page.text) is not may_timeline, path
        assert ("Received; deadlines computed" in page.text) is may_timeline, path
        assert (HOLD_REASON in page.text) is may_holds, path
        assert ("Legal-claims hold" in page.text) is may_holds, path
