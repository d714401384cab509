"""A staff token opens a bounded number of requests (api/staff_opens.py): each one mails its
subject, so a stolen token must not mail anyone from the controller's address without end. The
limit is lowered to 3 an hour here; the default is 200."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.settings import Settings
from dsrflow.stores.staff_tokens import create_token
from tests.ratelimit_support import app_clients, assert_limited, stored_for, unique_ip
from tests.support import CSRF_FIELD, assert_problem, unique_email

LIMIT = {"rate_staff_opens_per_token": "3/hour"}


def _request(email: str) -> dict:
    return {"type": "access", "subject": {"email": email}, "identity_attested": True}


async def _bearer(pool, label: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await create_token(pool, 'agent', label)}"}


def test_the_default_bound_is_two_hundred_an_hour():
    assert Settings().rate("staff_opens", "token") == (200, 3600)


async def test_a_token_past_its_bound_opens_nothing_and_others_still_open(settings, pool, dev_server, task_queue):
    """The fourth request of the hour is refused with a problem naming the limit, when it resets
    and whom to ask; nothing is stored for it (so nothing mailed), an admin finds an audit event,
    and a colleague's token opens as before. A repeat of a stored request is no new open: it is
    neither counted nor refused."""
    async with app_clients(settings, dev_server.client, task_queue, **LIMIT) as call_from:
        api = call_from(unique_ip())
        agent = await _bearer(pool, "opens bound test")
        first = unique_email("opens-1")
        for n in range(3):
            email = first if n == 0 else unique_email(f"opens-{n + 1}")
            r = await api.post("/v1/requests", json=_request(email), headers={**agent, "Idempotency-Key": f"k-{n}"})
            assert r.status_code == 201, r.text
        # Retried by a script whose first answer was lost: the same request back, not an open.
        again = await api.post("/v1/requests", json=_request(first), headers={**agent, "Idempotency-Key": "k-0"})
        assert again.status_code == 200, again.text

        stranger = unique_email("opens-refused")
        refused = await api.post("/v1/requests", json=_request(stranger), headers=agent)

        assert_limited(refused, 3600)
        body = assert_problem(refused, 429)
        assert body["limit"] == "3/hour" and "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN" in body["detail"]
        assert re.search(r"may open more from \d{4}-\d\d-\d\d \d\d:\d\d UTC", body["detail"]), body["detail"]
        assert "admin" in body["detail"] and body["resets_at"]
        assert await stored_for(pool, stranger) == 0
        token_id = await pool.fetchval("SELECT id::text FROM staff_tokens WHERE label = 'opens bound test'")
        events = await pool.fetch("SELECT actor, data FROM audit_events WHERE event_type = 'staff.open_limit_reached' "
                                  "AND data->>'token_id' = $1", token_id)
        assert len(events) == 1 and events[0]["actor"] == f"agent:{token_id[:8]}"
        # Refused again: still one event for the window.
        assert_limited(await api.post("/v1/requests", json=_request(stranger), headers=agent), 3600)
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE event_type = 'staff.open_limit_reached' "
                                   "AND data->>'token_id' = $1", token_id) == 1
        # Still the stored request back for its key, past the bound.
        assert (await api.post("/v1/requests", json=_request(first),
                               headers={**agent, "Idempotency-Key": "k-0"})).status_code == 200

        # The admins' Tokens page says which token was refused.
        admin = call_from(unique_ip())
        form = await admin.get("/console/sign-in")
        await admin.post("/console/sign-in", data={"token": await create_token(pool, "admin", "opens admin"),
                                                   "csrf_token": CSRF_FIELD.search(form.text).group(1)})
        tokens_page = (await admin.get("/console/tokens")).text
        row = re.search(r"<tr[^>]*>\s*<td class=\"label\">opens bound test</td>.*?</tr>", tokens_page, re.S)
        assert row and "refused past its bound" in row.group(0), tokens_page[-3000:]

        colleague = await _bearer(pool, "opens bound colleague")
        ok = await api.post("/v1/requests", json=_request(unique_email("opens-colleague")), headers=colleague)
        assert ok.status_code == 201, ok.text


async def test_repeats_and_refused_requests_are_not_counted(settings, pool, dev_server, task_queue):
    """Repeats of one request, and a request refused as invalid, spend none of the bound: the
    token still opens three new ones."""
    async with app_clients(settings, dev_server.client, task_queue, **LIMIT) as call_from:
        api = call_from(unique_ip())
        agent = await _bearer(pool, "opens repeats test")
        email = unique_email("opens-repeat")
        for _ in range(4):
            r = await api.post("/v1/requests", json=_request(email), headers={**agent, "Idempotency-Key": "same"})
            assert r.status_code in (200, 201), r.text
        # An appeal of no request: refused when opened (422), nothing stored.
        invalid = await api.post("/v1/requests", json={**_request(unique_email("opens-bad")),
                                                        "appeal_of": "ZZZZZZZZZZ"}, headers=agent)
        assert invalid.status_code == 422, invalid.text
        for n in range(2):
            r = await api.post("/v1/requests", json=_request(unique_email(f"opens-more-{n}")), headers=agent)
            assert r.status_code == 201, r.text
        assert_limited(await api.post("/v1/requests", json=_request(unique_email("opens-4th")), headers=agent), 3600)


async def test_the_consoles_new_request_form_counts_against_the_same_bound(settings, pool, dev_server, task_queue):
    """The console's form is the same door: past the bound its page says so (429), nothing stored."""
    async with app_clients(settings, dev_server.client, task_queue, **LIMIT) as call_from:
        browser = call_from(unique_ip())
        form = await browser.get("/console/sign-in")
        token = await create_token(pool, "agent", "opens console test")
        signed = await browser.post("/console/sign-in", data={"token": token, "csrf_token": CSRF_FIELD.search(form.text).group(1)})
        assert signed.status_code == 303, signed.text
        csrf = CSRF_FIELD.search((await browser.get("/console/")).text).group(1)
        emails = [unique_email(f"opens-console-{n}") for n in range(4)]
        answers = []
        for email in emails:
            page = await browser.get("/console/requests/new")
            submission = re.search(r'name="submission" value="([^"]+)"', page.text).group(1)
            answers.append(await browser.post("/console/requests", data={
                "csrf_token": csrf, "submission": submission, "channel": "email", "type": "access",
                "email": email, "identity_attested": "true"}))
        assert [a.status_code for a in answers] == [303, 303, 303, 429], [a.text[:300] for a in answers]
        assert "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN" in answers[3].text and "Nothing was stored" in answers[3].text
        assert await stored_for(pool, emails[3]) == 0


async def test_refusals_of_one_window_ending_in_a_minutes_last_second_are_one_event(app_http, pool, settings):
    """The window's end, not the minute worked out from each refusal's seconds to wait, says which
    window a refusal is of: a window ending at hh:mm:59.6 was recorded twice, as ending in mm and
    in mm+1, by refusals a fraction of a second apart. Refused over a second, it is one event."""
    token = await create_token(pool, "agent", "opens boundary test")
    token_id = await pool.fetchval("SELECT id::text FROM staff_tokens WHERE label = 'opens boundary test'")
    allowed, _ = settings.rate("staff_opens", "token")
    bucket = keyed_hash(load_secret_key(settings), "rate-limit", "staff_opens", "token", token_id)
    window_end = await pool.fetchval(
        "INSERT INTO rate_limit_counters (bucket, hits, window_end) VALUES "
        "($1, $2, date_trunc('minute', now()) + interval '1 minute 59.6 seconds') RETURNING window_end", bucket, allowed)

    for _ in range(8):  # 0.15 s apart and more: the refusals' fractions of a second go round the clock
        assert_limited(await app_http.post("/v1/requests", json=_request(unique_email("opens-boundary")),
                                           headers={"Authorization": f"Bearer {token}"}), 3600)
        await asyncio.sleep(0.15)

    events = await pool.fetch("SELECT data FROM audit_events WHERE event_type = 'staff.open_limit_reached' "
                              "AND data->>'token_id' = $1", token_id)
    assert len(events) == 1, events
    assert datetime.fromisoformat(events[0]["data"]["resets_at"]) == window_end.replace(microsecond=0)
