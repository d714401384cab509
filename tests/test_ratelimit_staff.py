"""Rate limits on guessing staff credentials: the console's sign-in, and bearer tokens on every
staff route (wrong ones counted per client and per IPv6 /48, right ones never)."""

from __future__ import annotations

import random

from api import ratelimit
from api.auth import create_token
from dsrflow.stores.staff_tokens import issue_token, revoke_token
from tests.ratelimit_support import app_clients, assert_limited, unique_ip
from tests.support import CSRF_FIELD


async def test_sign_in_brute_force_is_refused(settings, pool, dev_server, task_queue):
    """Guessing staff tokens at the console's sign-in: after the limit the form answers 429 with
    Retry-After, even for a token that exists, and no session is created."""
    async with app_clients(settings, dev_server.client, task_queue, rate_signin_per_ip="3/hour") as call_from:
        browser = call_from(unique_ip())
        form = await browser.get("/console/sign-in")
        csrf = CSRF_FIELD.search(form.text).group(1)
        for n in range(3):
            r = await browser.post("/console/sign-in", data={"token": f"dsr_guess{n}", "csrf_token": csrf})
            assert r.status_code == 401, r.text
            csrf = CSRF_FIELD.search(r.text).group(1)  # each answer is a fresh form
        token = await create_token(pool, "admin", "brute force test")

        refused = await browser.post("/console/sign-in", data={"token": token, "csrf_token": csrf})

        assert_limited(refused, 3600)
        assert refused.headers["content-type"].startswith("text/html") and "too many attempts" in refused.text
        assert "dsrflow_session" not in browser.cookies
        # Someone else signs in as usual.
        other = call_from(unique_ip())
        form = await other.get("/console/sign-in")
        ok = await other.post("/console/sign-in", data={"token": token, "csrf_token": CSRF_FIELD.search(form.text).group(1)})
        assert ok.status_code == 303, ok.text


async def test_guessing_bearer_tokens_is_refused_and_right_tokens_are_not_counted(settings, pool, dev_server,
                                                                                    task_queue):
    """A script guessing staff tokens on the API had no limit: every guess cost a lookup and got
    its 401. Now wrong tokens count against the client; past its allowance every call with a token
    is refused with 429 before the token is looked up, even a right one. A script whose token is
    right is never counted, however often it calls."""
    token = await create_token(pool, "agent", "bearer brute force test")
    async with app_clients(settings, dev_server.client, task_queue, rate_badtoken_per_ip="3/hour") as call_from:
        script = call_from(unique_ip())
        for _ in range(6):  # more calls than the allowance of wrong ones
            assert (await script.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        guesser = call_from(unique_ip())
        for n in range(3):
            r = await guesser.get("/v1/requests", headers={"Authorization": f"Bearer dsr_guess{n}"})
            assert r.status_code == 401 and "unknown or revoked" in r.text, r.text
        assert_limited(await guesser.get("/v1/requests", headers={"Authorization": "Bearer dsr_guess3"}), 3600)
        # Past it, a right token from that client is not even looked up.
        assert_limited(await guesser.get("/v1/requests", headers={"Authorization": f"Bearer {token}"}), 3600)
        assert (await script.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_a_revoked_token_still_sent_by_a_script_does_not_lock_its_machine_out(settings, pool, dev_server,
                                                                                    task_queue):
    """A token rotation: the old token is revoked, a forgotten cron job on the same machine still
    sends it. Each call is 401, as before, but a revoked token is no guess and is not counted:
    before, past the allowance of wrong tokens every call from that machine was 429, the new
    token's too. Unknown tokens are still counted."""
    old_row, old = await issue_token(pool, "agent", "rotated out")
    await revoke_token(pool, old_row["id"], actor="admin:test")
    new = await create_token(pool, "agent", "rotated in")
    async with app_clients(settings, dev_server.client, task_queue, rate_badtoken_per_ip="3/hour") as call_from:
        machine = call_from(unique_ip())
        for _ in range(6):
            r = await machine.get("/v1/requests", headers={"Authorization": f"Bearer {old}"})
            assert r.status_code == 401 and "unknown or revoked" in r.text, r.text
        assert (await machine.get("/v1/requests", headers={"Authorization": f"Bearer {new}"})).status_code == 200
        for n in range(3):
            assert (await machine.get("/v1/requests", headers={"Authorization": f"Bearer dsr_x{n}"})).status_code == 401
        assert_limited(await machine.get("/v1/requests", headers={"Authorization": f"Bearer {new}"}), 3600)


async def test_a_guesser_moving_through_its_48_is_refused_before_its_guess_is_tried(settings, pool, dev_server,
                                                                                   task_queue):
    """An IPv6 guesser holding a /48 has 65,536 /64s, each a client with its own allowance of wrong
    tokens. Its /48 is counted too (three times the allowance here), but a /64 the process had not
    seen had its token looked up before the /48's count refused it: each guess past the /48's
    allowance was still tried, answered 429 when wrong and 200 when right. Now a /64 of a /48
    that sent wrong tokens is refused before its token is looked up, a right one too; another
    /48 is not held back."""
    token = await create_token(pool, "agent", "bearer /48 rotation test")
    delegation = f"2001:db8:{random.randrange(1, 0xffff):x}"
    async with app_clients(settings, dev_server.client, task_queue, rate_badtoken_per_ip="2/hour",
                           rate_ipv6_48_multiple=3) as call_from:
        for subnet in range(1, 4):  # the /48's six wrong tokens, two per /64
            for n in range(2):
                r = await call_from(f"{delegation}:{subnet:x}::1").get(
                    "/v1/requests", headers={"Authorization": f"Bearer dsr_guess{subnet}{n}"})
                assert r.status_code == 401, r.text
        fresh = call_from(f"{delegation}:99::1")
        assert_limited(await fresh.get("/v1/requests", headers={"Authorization": f"Bearer {token}"}), 3600)
        other = call_from(f"2001:db8:{random.randrange(1, 0xffff):x}:1::1")
        assert (await other.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_a_spray_of_wrong_tokens_from_many_clients_neither_grows_memory_nor_frees_a_guesser(
        settings, pool, dev_server, task_queue, monkeypatch):
    """Each client that sent a wrong token was kept in the process's memory for its window, with
    no bound: a spray from as many addresses as an IPv6 /32 holds grew it without end. Now the
    process keeps at most SUSPECTS_KEPT of them (made small here); past it, it reads every bearer
    caller's count for a window rather than forget anyone, so a guesser over its allowance is
    still refused before its guess is tried, a right token too, and a right token from a clean
    client still works."""
    monkeypatch.setattr(ratelimit, "SUSPECTS_KEPT", 8, raising=False)
    token = await create_token(pool, "agent", "bearer spray test")
    async with app_clients(settings, dev_server.client, task_queue, rate_badtoken_per_ip="3/hour") as call_from:
        guesser = call_from(unique_ip())
        for n in range(3):
            assert (await guesser.get("/v1/requests", headers={"Authorization": f"Bearer dsr_g{n}"})).status_code == 401
        for n in range(20):  # the spray: one wrong token from each of 20 other clients
            sprayed = await call_from(f"2001:db8:{random.randrange(1, 0xffff):x}:{n:x}::1").get(
                "/v1/requests", headers={"Authorization": "Bearer dsr_spray"})
            assert sprayed.status_code == 401, sprayed.text
        assert len(call_from.app.state.rate_limiter._suspects) <= 8
        assert_limited(await guesser.get("/v1/requests", headers={"Authorization": f"Bearer {token}"}), 3600)
        clean = call_from(unique_ip())
        assert (await clean.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code == 200
