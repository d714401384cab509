"""Red team, a hostile subject: guessing a six-digit code with guesses fired together.

Wrong codes count against the subject's address over all its requests
(`DSRFLOW_RATE_GUESS_PER_EMAIL`, 25 a week): the bound that makes confirming someone else's
erasure by chance hopeless. The allowance was checked before a guess and spent after it, so
guesses sent at the same moment at several requests of one address (each from a client of its
own, within every per-client limit) all passed the check before the first was spent: as many
were compared as the attacker had in flight (up to five per request open, and the ceiling of
unverified requests is 10,000), not the allowance. docs/security.md, "Rate limits and lock-outs".
"""

from __future__ import annotations

import asyncio

from tests.ratelimit_support import app_clients, unique_ip
from tests.support import eventually, unique_email, verification_code, verification_link, wait_for_letter
from workers.dsr_worker import build_worker

REQUESTS, GUESSES_EACH, ALLOWED = 3, 3, 4


def _wrong(code: str, n: int) -> str:
    """The n-th six-digit code that is not `code`."""
    return f"{(int(code) + 1 + n) % 1_000_000:06d}"


async def _failed_attempts(pool, rids: list[str]) -> int:
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = ANY($1::uuid[]) "
                               "AND event_type = 'verification.failed'", rids)


async def test_guesses_fired_together_are_compared_no_more_than_the_addresss_allowance(
        settings, pool, dev_server, mail_sink, task_queue):
    """Three requests in one address, three wrong codes at each, all nine sent at once from nine
    clients: four are compared (the allowance), five refused with 429 before the workflow sees
    them, and the audit trail holds four failed attempts. Before, all nine were compared. A right
    code costs nothing: the victim's link still confirms, and another right code before the burst
    left the allowance whole."""
    email = unique_email("guess-burst")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_guess_per_email=f"{ALLOWED}/7d") as call_from:
        rids = []
        for _ in range(REQUESTS):
            answer = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "erasure", "email": email})
            assert answer.status_code == 202, answer.text
            rids.append(answer.json()["id"])
        codes = {rid: verification_code(await wait_for_letter(mail_sink, rid, "verification")) for rid in rids}

        burst = [call_from(unique_ip()).post(f"/v1/public/requests/{rid}/verify",
                                             json={"code": _wrong(codes[rid], n)})
                 for rid in rids for n in range(GUESSES_EACH)]
        answers = [a.status_code for a in await asyncio.gather(*burst)]
        assert sorted(answers) == [400] * ALLOWED + [429] * (REQUESTS * GUESSES_EACH - ALLOWED), answers
        async def recorded() -> bool:  # each attempt's record is a step of its own, after the answer
            return await _failed_attempts(pool, rids) >= ALLOWED

        await eventually(recorded, timeout=30)
        await asyncio.sleep(1)  # and no more come
        assert await _failed_attempts(pool, rids) == ALLOWED

        # The address's guesses are spent; the link in the victim's own e-mail still confirms.
        token = verification_link(await wait_for_letter(mail_sink, rids[0], "verification")).rsplit("token=", 1)[1]
        linked = await call_from(unique_ip()).post(f"/v1/public/requests/{rids[0]}/verify", json={"token": token})
        assert linked.status_code == 200 and linked.json()["verified"] is True, linked.text


async def test_a_right_code_spends_none_of_the_addresss_guesses(settings, pool, dev_server, mail_sink, task_queue):
    """The right code is compared too, but gives its guess back: after it, the address still has
    its whole allowance of wrong codes for its other requests."""
    email = unique_email("right-code")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_guess_per_email="2/7d") as call_from:
        rids = [(await call_from(unique_ip()).post("/v1/public/requests", json={"type": "erasure", "email": email})
                 ).json()["id"] for _ in range(2)]
        codes = {rid: verification_code(await wait_for_letter(mail_sink, rid, "verification")) for rid in rids}
        right = await call_from(unique_ip()).post(f"/v1/public/requests/{rids[0]}/verify", json={"code": codes[rids[0]]})
        assert right.status_code == 200, right.text
        wrong = [await call_from(unique_ip()).post(f"/v1/public/requests/{rids[1]}/verify",
                                                   json={"code": _wrong(codes[rids[1]], n)}) for n in range(3)]
        assert [w.status_code for w in wrong] == [400, 400, 429]
