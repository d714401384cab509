"""Attacks on confirming a request (the portal's code form, the public API's verify), found in the
attacker audit of 2026-12-04 and not covered by tests/test_portal.py, tests/test_ratelimit.py or
tests/test_verification_lock.py. Each runs against the real app, worker, Temporal dev server and
PostgreSQL (docs/security.md, "Verified subject")."""

from __future__ import annotations

import html
import re

from tests.ratelimit_support import app_clients, assert_limited, unique_ip
from tests.support import (
    eventually,
    letters_for,
    unique_email,
    verification_code,
    verification_link,
    wait_for_letter,
)
from tests.test_portal import submit
from workers.dsr_worker import build_worker

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
        assert answers[0].json()["attempts_left"] == 2  # the client's three on the code, not the code's five

        page = await subject.get(f"/portal/requests/{_spellings(rid)[4]}/verify")
        assert page.status_code == 200 and "paused" not in page.text and 'name="code"' in page.text
        mine = await subject.post(f"/v1/public/requests/{rid.upper()}/verify", json={"code": code})
        assert mine.status_code == 200, mine.text
        assert mine.json() == {"id": rid, "verified": True}
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'verification.failed'", rid) == 3


def _said(page) -> str:
    """The verify page's alert, as read."""
    found = re.search(r'id="code-error">(.*?)</p>', page.text, re.S)
    assert found, page.text[-500:]
    return html.unescape(found.group(1))


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def _new_code(http, mail_sink, rid: str, sent: set[str]) -> str:
    """"Send me a new code" pressed: the page says the earlier code no longer works; the new code."""
    page = await http.post(f"/portal/requests/{rid}/resend")
    assert page.status_code == 200 and "The code and link we sent you earlier no longer work." in page.text

    async def arrived() -> bool:
        return len(letters_for(mail_sink, rid, "verification")) > len(sent)
    await eventually(arrived)
    [new] = {verification_code(m) for m in letters_for(mail_sink, rid, "verification")} - sent
    return new


async def test_a_new_code_works_after_wrong_guesses_of_the_old_one(settings, pool, dev_server, mail_sink, task_queue):
    """The subject mistypes the code three times, asks for a new one and types it right: confirmed.
    Before, with the default limits (three attempts an hour per request and client, five per
    code), the page said "You have 4 attempts left" after the first, "2" after the third, then
    "We have sent you a new code", and the new code typed right was refused (429, "wait 60
    minutes"), as was the e-mail's link. Now the page says the tries this client has (the code's,
    or fewer), that the last is spent and for how long, and the ways on that work at once: a new
    code is counted apart from the old one, and a link we sent is not counted per request."""
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_verify_per_request="3/hour",
                        rate_verify_per_ip="30/hour") as call_from:
        subject = call_from(unique_ip())
        rids = [(await subject.post("/v1/public/requests", json={"type": "access", "email": unique_email("newcode")})
                 ).json()["id"] for _ in range(2)]
        rid, linked = rids
        first = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        said = [_said(await subject.post(f"/portal/requests/{rid}/verify", data={"code": _wrong(first)}))
                for _ in range(3)]
        assert said[:2] == ["That code is not right. You have 2 attempts left.",
                            "That code is not right. You have 1 attempt left."]
        assert said[2] == ("That code is not right, and you cannot try another code from here for 60 minutes. "
                           "The link in our latest e-mail still works: open it to confirm that the request is "
                           "yours. Or ask for a new code below.")
        assert_limited(await subject.post(f"/portal/requests/{rid}/verify", data={"code": first}), 3600)

        new = await _new_code(subject, mail_sink, rid, {first})
        # The first e-mail's code, typed again: told apart, and no try spent (EARLIER_CODE).
        earlier = await subject.post(f"/portal/requests/{rid}/verify", data={"code": first})
        assert _said(earlier) == ("That code is from an earlier e-mail: it no longer works. We have sent you more "
                                  "than one code: only the one in our latest e-mail works. The link in our latest "
                                  "e-mail still works: open it to confirm that the request is yours. Or ask for a "
                                  "new code below.")
        wrong = await subject.post(f"/portal/requests/{rid}/verify", data={"code": _wrong(new)})
        assert _said(wrong) == ("That code is not right. You have 2 attempts left. We have sent you more than one "
                                "code: only the one in our latest e-mail works.")
        confirmed = await subject.post(f"/portal/requests/{rid}/verify", data={"code": new})
        assert confirmed.status_code == 303, confirmed.text[-500:]
        assert await pool.fetchval("SELECT verified_at IS NOT NULL FROM dsr_requests WHERE id = $1", rid)

        # Three wrong codes, then the e-mail's link, from the same client: it confirms.
        letter = await wait_for_letter(mail_sink, linked, "verification")
        for _ in range(3):
            await subject.post(f"/v1/public/requests/{linked}/verify", json={"code": _wrong(verification_code(letter))})
        token = verification_link(letter).split("token=")[1]
        confirmed = await subject.post(f"/portal/requests/{linked}/verify", data={"token": token})
        assert confirmed.status_code == 303, confirmed.text[-500:]


async def test_new_codes_give_a_guesser_no_more_guesses_at_the_address(settings, pool, dev_server, mail_sink,
                                                                       task_queue):
    """A stranger holding the reference types wrong codes from one client until refused, sends a
    forged link (counted like a code, refused), asks for a new code and guesses on: the new code
    gives the client three tries of its own, but not the address's guesses back
    (DSRFLOW_RATE_GUESS_PER_EMAIL, here 5): once spent, every code for the address is refused,
    the subject's right one too, and the e-mail's link still confirms."""
    email = unique_email("newcodeguess")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_verify_per_request="3/hour",
                        rate_verify_per_ip="30/hour", rate_guess_per_email="5/7d") as call_from:
        subject = call_from(unique_ip())
        rid = (await subject.post("/v1/public/requests", json={"type": "erasure", "email": email})).json()["id"]
        first = verification_code(await wait_for_letter(mail_sink, rid, "verification"))
        stranger = call_from(unique_ip())
        guesses = [await stranger.post(f"/portal/requests/{rid}/verify", data={"code": _wrong(first)})
                   for _ in range(4)]
        assert [g.status_code for g in guesses] == [400, 400, 400, 429]
        assert_limited(await stranger.post(f"/portal/requests/{rid}/verify", data={"token": "0" * 64}), 3600)

        new = await _new_code(stranger, mail_sink, rid, {first})
        guesses = [await stranger.post(f"/v1/public/requests/{rid}/verify", json={"code": _wrong(new)})
                   for _ in range(3)]
        assert [g.status_code for g in guesses] == [400, 400, 429]
        assert guesses[1].json()["attempts_left"] == 1
        assert_limited(await subject.post(f"/portal/requests/{rid}/verify", data={"code": new}), 7 * 86400)

        async def each_failure_recorded() -> bool:  # owed by the workflow, written just after the answer
            return await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                                       "AND event_type = 'verification.failed'", rid) == 5

        await eventually(each_failure_recorded, 20)

        latest = letters_for(mail_sink, rid, "verification")[-1]
        token = verification_link(latest).split("token=")[1]
        confirmed = await subject.post(f"/portal/requests/{rid}/verify", data={"token": token})
        assert confirmed.status_code == 303, confirmed.text[-500:]
