"""Attacks on confirming a request (the portal's code form, the public API's verify), found in the
attacker audit of 2026-12-04 and not covered by tests/test_portal.py, tests/test_ratelimit.py or
tests/test_verification_lock.py. Each runs against the real app, worker, Temporal dev server and
PostgreSQL (docs/security.md, "Verified subject")."""

from __future__ import annotations

from tests.support import unique_email, verification_code, wait_for_letter
from tests.test_portal import submit

# The same six digits as a Japanese or Chinese keyboard in full-width mode types them, and as an
# Arabic keyboard does: each is a decimal digit to Unicode (and to the form's `\d` check).
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


async def test_the_right_code_in_full_width_or_arabic_digits_confirms_the_request(http, pool, mail_sink):
    """The subject types the right code with another keyboard's digits. Before, the form took
    them as digits, hashed them as they were, and answered "That code is not right", spending one
    of the code's five attempts (and of the address's guesses) on the right code."""
    rid = await submit(http, type="access", email=unique_email("widedigits"))
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    confirmed = await http.post(f"/portal/requests/{rid}/verify", data={"code": code.translate(FULL_WIDTH)})
    assert confirmed.status_code == 303, confirmed.text
    assert confirmed.headers["location"] == f"/portal/requests/{rid}"
    assert "you have confirmed that the request is yours" in (await http.get(confirmed.headers["location"])).text
    assert await pool.fetchval("SELECT verified_at IS NOT NULL FROM dsr_requests WHERE id = $1", rid)

    api = await submit(http, type="access", email=unique_email("arabicdigits"))
    code = verification_code(await wait_for_letter(mail_sink, api, "verification"))
    answer = await http.post(f"/v1/public/requests/{api}/verify", json={"code": code.translate(ARABIC_INDIC)})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": api, "verified": True}


async def test_a_wrong_code_in_other_digits_is_still_a_wrong_code(http, pool, mail_sink):
    """Reading other digits as digits gives no way around the attempt limit: a wrong code typed in
    full-width digits costs an attempt like any wrong code."""
    rid = await submit(http, type="erasure", email=unique_email("widewrong"))
    code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
    wrong = ("000000" if code != "000000" else "111111").translate(FULL_WIDTH)
    answer = await http.post(f"/portal/requests/{rid}/verify", data={"code": wrong})
    assert answer.status_code == 400 and "You have 4 attempts left." in answer.text
    assert await pool.fetchval("SELECT verified_at FROM dsr_requests WHERE id = $1", rid) is None


def _spellings(rid: str) -> list[str]:
    """Other ways to write the same UUID, each of which finds the request's row in PostgreSQL."""
    bare = rid.replace("-", "")
    return [rid.upper(), "{" + rid + "}", bare, f"urn:uuid:{rid}", bare.upper()]


async def test_the_request_id_spelled_otherwise_is_the_same_request_and_the_same_allowance(
        settings, pool, dev_server, mail_sink, task_queue):
    """The request's id written another way (upper case, braces, no dashes, a URN) names the same
    request. Before, it found the row but not the workflow: the subject's right code was answered
    "your request is paused" (503), and the page to confirm said the same. Taking the id as the
    request's, the per-request limit must count it as the request's too: a stranger cannot buy more
    guesses (and lock the subject's code) by spelling the id anew."""
    from tests.ratelimit_support import app_clients, unique_ip
    from workers.dsr_worker import build_worker

    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_verify_per_request="3/hour") as call_from:
        subject = call_from(unique_ip())
        rid = (await subject.post("/v1/public/requests", json={"type": "access", "email": unique_email("spelt")})
               ).json()["id"]
        code = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        stranger = call_from(unique_ip())
        answers = [await stranger.post(f"/v1/public/requests/{spelt}/verify", json={"code": wrong})
                   for spelt in _spellings(rid)[:2]]
        answers.append(await stranger.post(f"/portal/requests/{_spellings(rid)[2]}/verify", data={"code": wrong}))
        answers.append(await stranger.post(f"/v1/public/requests/{_spellings(rid)[3]}/verify", json={"code": wrong}))
        assert [a.status_code for a in answers] == [400, 400, 400, 429], [a.text[:300] for a in answers]
        assert answers[0].json()["attempts_left"] == 4

        page = await subject.get(f"/portal/requests/{_spellings(rid)[4]}/verify")
        assert page.status_code == 200 and "paused" not in page.text and 'name="code"' in page.text
        mine = await subject.post(f"/v1/public/requests/{rid.upper()}/verify", json={"code": code})
        assert mine.status_code == 200, mine.text
        assert mine.json() == {"id": rid, "verified": True}
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'verification.failed'", rid) == 3
