"""Rate limits on submitting and verifying, per client IP and per e-mail address, through the
public API and the portal: 429 with `Retry-After`, nothing stored, and service again once the
window has passed. Counters hold hashes only."""

from __future__ import annotations

import asyncio
import random
import uuid

from api.auth import create_token
from tests.ratelimit_support import PROBLEM, app_clients, assert_limited, stored_for, unique_ip
from tests.support import letters_for, unique_email, verification_code, verification_link, wait_for_letter
from workers.dsr_worker import build_worker


async def test_submit_per_ip_answers_429_and_recovers(settings, pool, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="2/3s") as call_from:
        http = call_from(unique_ip())
        emails = [unique_email("ip") for _ in range(3)]
        for email in emails[:2]:
            assert (await http.post("/v1/public/requests", json={"type": "access", "email": email})).status_code == 202

        refused = await http.post("/v1/public/requests", json={"type": "access", "email": emails[2]})

        retry_after = assert_limited(refused, 3)
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert refused.json()["status"] == 429 and refused.json()["retry_after"] == retry_after
        assert await stored_for(pool, emails[2]) == 0
        # Another client is not held back by this one.
        other = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": emails[2]})
        assert other.status_code == 202, other.text

        await asyncio.sleep(retry_after + 0.2)
        again = await http.post("/v1/public/requests", json={"type": "access", "email": unique_email("ip")})
        assert again.status_code == 202, again.text


async def test_unverified_submissions_do_not_spend_the_subjects_allowance(settings, pool, dev_server, mail_sink,
                                                                        task_queue):
    """An attacker asks in the subject's name again and again: the subject can still ask. Only
    verified requests spend an address's allowance, and the counters hold hashes only."""
    email = unique_email("Allowance")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_submit_per_email="1/hour") as call_from:
        attacker = [unique_ip() for _ in range(3)]
        for ip, spelled in zip(attacker, (email, email.upper(), email), strict=True):
            r = await call_from(ip).post("/v1/public/requests", json={"type": "erasure", "email": spelled})
            assert r.status_code == 202, r.text

        subject = call_from(unique_ip())
        own = await subject.post("/v1/public/requests", json={"type": "access", "email": email})

        assert own.status_code == 202, own.text
        rid = own.json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        assert (await subject.post(f"/v1/public/requests/{rid}/verify", json={"code": code})).status_code == 200
        # Now the address has used its allowance: the next request in its name waits.
        assert_limited(await call_from(unique_ip()).post(
            "/v1/public/requests", json={"type": "erasure", "email": email}), 3600)
        assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE lower(subject_email) = lower($1)", email) == 4
        buckets = " ".join(await pool.fetchval("SELECT array_agg(bucket) FROM rate_limit_counters"))
        for clear in (email.lower(), email, *attacker):
            assert clear not in buckets


async def test_ipv6_clients_share_a_bucket_per_64(settings, pool, dev_server, task_queue):
    """One subscriber holds a whole /64: changing the last 64 bits does not buy more requests."""
    prefix = f"2001:db8:{random.randrange(1, 0xffff):x}:{random.randrange(1, 0xffff):x}"
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="2/hour") as call_from:
        for host in (f"{prefix}::1", f"{prefix}:ffff:ffff:ffff:fffe"):
            r = await call_from(host).post("/v1/public/requests", json={"type": "access", "email": unique_email("v6")})
            assert r.status_code == 202, r.text
        email = unique_email("v6")

        refused = await call_from(f"{prefix}:1234::42").post("/v1/public/requests", json={"type": "access", "email": email})

        assert_limited(refused, 3600)
        assert await stored_for(pool, email) == 0
        # The next /64 is another subscriber.
        neighbour = prefix.rsplit(":", 1)[0] + f":{(int(prefix.rsplit(':', 1)[1], 16) + 1) % 0xffff:x}"
        other = await call_from(f"{neighbour}::1").post("/v1/public/requests", json={"type": "access", "email": email})
        assert other.status_code == 202, other.text


async def test_unverified_requests_open_have_a_ceiling(settings, pool, dev_server, task_queue):
    """Beyond the ceiling of unverified requests open at once, intake answers 503 with Retry-After
    (API and portal) and stores nothing; a request verified or closed makes room again."""
    open_now = await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE status = 'awaiting_verification'")
    async with app_clients(settings, dev_server.client, task_queue, max_unverified_open=open_now + 1) as call_from:
        first = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": unique_email("cap")})
        assert first.status_code == 202, first.text
        email = unique_email("cap")

        refused = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": email})
        page = await call_from(unique_ip()).post("/portal/requests", data={"type": "access", "email": email})

        assert refused.status_code == 503 and refused.headers["content-type"].startswith(PROBLEM)
        assert int(refused.headers["retry-after"]) > 0
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert int(page.headers["retry-after"]) > 0
        assert await stored_for(pool, email) == 0
        await pool.execute("UPDATE dsr_requests SET status = 'closed_unverified' WHERE id = $1", first.json()["id"])
        again = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": email})
        assert again.status_code == 202, again.text


async def test_portal_submit_limit_is_a_page(settings, pool, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_submit_per_ip="1/hour") as call_from:
        http = call_from(unique_ip())
        first = await http.post("/portal/requests", data={"type": "access", "email": unique_email("page")})
        assert first.status_code == 303, first.text
        email = unique_email("page")

        refused = await http.post("/portal/requests", data={"type": "access", "email": email})

        assert_limited(refused, 3600)
        assert refused.headers["content-type"].startswith("text/html")
        assert "Too many requests" in refused.text and "then try again" in refused.text
        assert await stored_for(pool, email) == 0


async def test_verify_per_ip_counts_before_anything_else(settings, dev_server, task_queue):
    async with app_clients(settings, dev_server.client, task_queue, rate_verify_per_ip="2/3s") as call_from:
        http = call_from(unique_ip())
        unknown = f"/v1/public/requests/{uuid.uuid4()}/verify"
        for _ in range(2):
            assert (await http.post(unknown, json={"code": "123456"})).status_code == 404

        retry_after = assert_limited(await http.post(unknown, json={"code": "123456"}), 3)

        await asyncio.sleep(retry_after + 0.2)
        assert (await http.post(unknown, json={"code": "123456"})).status_code == 404


async def test_eleven_wrong_codes_do_not_stop_the_subjects_own_code(settings, pool, dev_server, mail_sink, task_queue):
    """A stranger sends eleven wrong codes for someone's request (API and portal): the stranger
    is refused (429) before the code's attempts run out, and the subject's own code, from their
    own client, is accepted."""
    email = unique_email("lockout")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_verify_per_request="3/hour") as call_from:
        subject = call_from(unique_ip())
        rid = (await subject.post("/v1/public/requests", json={"type": "access", "email": email})).json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        attacker = call_from(unique_ip())
        answers = []
        for n in range(11):
            if n % 2:
                answers.append(await attacker.post(f"/portal/requests/{rid}/verify", data={"code": wrong}))
            else:
                answers.append(await attacker.post(f"/v1/public/requests/{rid}/verify", json={"code": wrong}))

        assert [a.status_code for a in answers] == [400] * 3 + [429] * 8
        assert_limited(answers[-1], 3600)
        mine = await subject.post(f"/v1/public/requests/{rid}/verify", json={"code": code})
        assert mine.status_code == 200, mine.text
        assert mine.json()["verified"] is True
        failed = await pool.fetchval(
            "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'verification.failed'", rid)
        assert failed == 3


async def test_clients_enough_cannot_guess_through_new_codes(settings, pool, dev_server, mail_sink, task_queue):
    """An attacker who submitted an erasure in someone's address, from a new client each time,
    asks for a new code (which resets the attempts) and guesses: the request takes at most
    `verification.max_codes` codes (5: the first and four new ones), so at most 25 guesses in all,
    however many clients; the page then says no more codes can be sent and offers no button.
    Before, every new client bought a new code and five more guesses, without end."""
    email = unique_email("many-clients")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue) as call_from:
        rid = (await call_from(unique_ip()).post("/v1/public/requests", json={"type": "erasure", "email": email})
               ).json()["id"]
        await wait_for_letter(mail_sink, rid, "verification")
        answers = []
        for _ in range(6):
            client = call_from(unique_ip())
            for _ in range(5):  # each code's five wrong guesses, then a new code
                await client.post(f"/v1/public/requests/{rid}/verify", json={"code": "000000"})
            answers.append(await client.post(f"/portal/requests/{rid}/resend"))
        assert [a.status_code for a in answers] == [200] * 4 + [409] * 2
        refused = answers[-1].text
        assert "We have sent all the codes we can for this request" in refused
        assert "Send me a new code" not in refused
        assert len(letters_for(mail_sink, rid, "verification")) == 5
        failed = await pool.fetchval(
            "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'verification.failed'", rid)
        assert failed == 25
        # Staff, who see the request, can still send one.
        staff = call_from(unique_ip())
        staff.headers["Authorization"] = f"Bearer {await create_token(pool, 'agent', 'support')}"
        r = await staff.post(f"/v1/requests/{rid}/resend-verification")
        assert r.status_code == 200, r.text


async def test_requests_enough_cannot_guess_through_new_requests(settings, pool, dev_server, mail_sink, task_queue):
    """The same attacker opens request after request in the victim's address, each with codes of
    its own, from a new client each time: wrong codes count against the address over all of them
    (`DSRFLOW_RATE_GUESS_PER_EMAIL`, here 6 a week), so the seventh is refused (429) whichever
    request and client it comes from, even the right code. The link in the victim's e-mail still
    confirms. Before, each new request brought 25 more guesses: about 250,000 a week up to the
    ceiling of unverified requests, enough to confirm and erase someone's data."""
    email = unique_email("many-requests")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_guess_per_email="6/7d") as call_from:
        answers, rids = [], []
        for _ in range(3):
            client = call_from(unique_ip())
            rid = (await client.post("/v1/public/requests", json={"type": "erasure", "email": email})).json()["id"]
            await wait_for_letter(mail_sink, rid, "verification")
            rids.append(rid)
            for _ in range(3):
                answers.append(await call_from(unique_ip()).post(f"/v1/public/requests/{rid}/verify",
                                                                  json={"code": "000000"}))
        assert [a.status_code for a in answers] == [400] * 6 + [429] * 3
        assert_limited(answers[-1], 7 * 86400)
        last = await wait_for_letter(mail_sink, rids[-1], "verification")
        right = await call_from(unique_ip()).post(f"/v1/public/requests/{rids[-1]}/verify",
                                                   json={"code": verification_code(last)})
        assert right.status_code == 429  # the address's codes are spent: only its link works now
        token = verification_link(last).rsplit("token=", 1)[1]
        linked = await call_from(unique_ip()).post(f"/v1/public/requests/{rids[-1]}/verify", json={"token": token})
        assert linked.status_code == 200 and linked.json()["verified"] is True, linked.text
        # Another address is not touched.
        other = call_from(unique_ip())
        rid = (await other.post("/v1/public/requests", json={"type": "access", "email": unique_email("bystander")})
               ).json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        assert (await other.post(f"/v1/public/requests/{rid}/verify", json={"code": code})).status_code == 200


async def test_callbacks_and_health_are_limited(settings, pool, dev_server, task_queue):
    """A client calling processor callbacks or health in a loop is refused (429) before its
    calls cost a signature check, a certificate fetch or a probe of every component."""
    async with app_clients(settings, dev_server.client, task_queue, rate_callback_per_ip="2/hour",
                           rate_health_per_ip="2/hour") as call_from:
        http = call_from(unique_ip())
        forged = {"subject_request_id": str(uuid.uuid4()), "request_status": "completed"}
        for _ in range(2):
            r = await http.post("/v1/callbacks/opendsr", params={"system": "nonexistent"}, json=forged)
            assert r.status_code == 404, r.text
            assert (await http.get("/healthz")).status_code in (200, 503)

        assert_limited(await http.post("/v1/callbacks/opendsr", params={"system": "nonexistent"}, json=forged), 3600)
        assert_limited(await http.get("/healthz"), 3600)
        assert (await call_from(unique_ip()).get("/healthz")).status_code in (200, 503)


async def test_status_pages_links_and_downloads_are_limited(settings, pool, dev_server, task_queue):
    """Anyone may ask for a request's status (by reference, or its pages, each a Temporal query),
    open a processor's link or a package's download, and in a loop each costs a lookup, a query
    or a whole package read: a client over its limit gets 429 with Retry-After (a page for a
    browser), before anything is looked up; another client is still served."""
    token = "ab" * 32
    browser = {"Accept": "text/html"}
    async with app_clients(settings, dev_server.client, task_queue, rate_lookup_per_ip="4/hour",
                           rate_link_per_ip="4/hour") as call_from:
        http = call_from(unique_ip())
        request_id = str(uuid.uuid4())
        looked_up = [
            await http.get("/portal/status", params={"reference": "KD7QX3M9TB"}),
            await http.get(f"/portal/requests/{request_id}"),
            await http.get(f"/portal/requests/{request_id}/verify"),
            await http.get("/portal/status", params={"reference": "KD7QX3M9TC"}),
        ]
        assert [r.status_code for r in looked_up] == [422, 404, 404, 422], [r.text[:200] for r in looked_up]
        for refused in (await http.get("/portal/status", params={"reference": "KD7QX3M9TB"}),
                        await http.get(f"/portal/requests/{request_id}"),
                        await http.get(f"/portal/requests/{request_id}/verify")):
            assert_limited(refused, 3600)
            assert refused.headers["content-type"].startswith("text/html")

        linked = [
            await http.get(f"/v1/callbacks/manual/{token}"),
            await http.post(f"/v1/callbacks/manual/{token}", data={"note": "done"}),
            await http.get(f"/v1/public/packages/{token}"),
            await http.get(f"/portal/packages/{token}"),
        ]
        assert [r.status_code for r in linked] == [404] * 4, [r.text[:200] for r in linked]
        for refused in (await http.get(f"/v1/callbacks/manual/{token}"),
                        await http.post(f"/v1/callbacks/manual/{token}", data={"note": "done"}),
                        await http.get(f"/v1/public/packages/{token}"),
                        await http.get(f"/v1/public/packages/{token}", headers=browser),
                        await http.get(f"/portal/packages/{token}")):
            assert_limited(refused, 3600)
        assert "Too many requests" in refused.text

        other = call_from(unique_ip())
        assert (await other.get(f"/portal/requests/{request_id}")).status_code == 404
        assert (await other.get(f"/v1/callbacks/manual/{token}")).status_code == 404
