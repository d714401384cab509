"""An agent (or a compliance officer) tries to do more than their role allows, or to hurt the
subjects or the evidence, through the staff REST API and the console (docs/security.md, "Staff
against their own console"). The real app, PostgreSQL and Temporal."""

from __future__ import annotations

import pytest

from tests.support import PROBLEM, console_sign_in, staff_headers, unique_email

RECEIVED_STORED = "SELECT count(*) FROM dsr_requests WHERE subject_email = $1"


@pytest.mark.parametrize("received_at", [
    "0001-01-01T00:00:00+00:00",  # stored, then its first step failed for good (year 0 in Brussels)
    "0001-01-01T00:30:00+01:00",  # not storable at all: the API answered 500
    "1900-01-01T00:00:00+00:00",  # before any law a request can be under: overdue a century
])
async def test_a_receipt_before_any_law_applied_is_refused_by_name(http, pool, received_at):
    """An agent opens a request 'received' in year 1 or 1900, over REST and on the console: 422
    naming `received_at` and its floor, nothing stored. Before, the first answered 500, the
    second left a request whose workflow failed in its first step, the third was overdue at once
    with its extension out of reach."""
    email = unique_email("backdated")
    api = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "type": "access", "subject": {"email": email}, "identity_attested": True, "received_at": received_at})
    assert api.status_code == 422 and api.headers["content-type"].startswith(PROBLEM), api.text
    assert [e["field"] for e in api.json()["errors"]] == ["received_at"]
    assert "must not be before 2001-01-01" in api.text

    csrf = await console_sign_in(http, pool, "agent")
    page = await http.post("/console/requests", data={
        "csrf_token": csrf, "type": "access", "email": email, "identity_attested": "true",
        "received_at": received_at[:16]})
    assert page.status_code == 422
    assert 'id="received_at-error"' in page.text and "must not be before 2001-01-01" in page.text
    assert await pool.fetchval(RECEIVED_STORED, email) == 0
