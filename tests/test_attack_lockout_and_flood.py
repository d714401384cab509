"""Two attacks left open by the attacker audit (docs/security.md, "Rate limits and lock-outs"),
each against the real app, worker, Temporal dev server and PostgreSQL, with the default limits
but the one a test names:

- a stranger holding a request's reference (a forwarded status link) types wrong codes until each
  code locks and asks for new codes until none are left: before, the lock took the e-mail's link
  with it, so the subject could not confirm and the request closed unverified;
- a sender rotating clients submits request after request naming a victim's address: each one
  e-mailed the victim a code, limited only per client.
"""

from __future__ import annotations

import json

from temporalio.worker import Replayer

from schemas.workflow import workflow_id_for
from tests.ratelimit_support import PROBLEM, app_clients, assert_limited, unique_ip
from tests.support import letters_for, unique_email, verification_link, wait_for_letter
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow
from workflows.system_task import SystemTaskWorkflow

CODES = 5  # the policy's verification.max_codes
ATTEMPTS = 5  # and its verification.max_attempts


def _json(data: str | dict) -> dict:
    return json.loads(data) if isinstance(data, str) else data


async def test_a_stranger_who_locks_every_code_cannot_stop_the_subjects_link(
        settings, pool, dev_server, mail_sink, task_queue):
    """Today's limits let a stranger with a few clients lock every code a request may have: five
    wrong codes each (three per client and request an hour), four new codes asked for on the
    portal. The codes stay locked; the link in the subject's latest e-mail, which only the
    mailbox's owner holds, still confirms, and the page opened from it offers its button."""
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue) as call_from:
        rid = (await call_from(unique_ip()).post(
            "/v1/public/requests", json={"type": "erasure", "email": unique_email("lockedout")})).json()["id"]
        await wait_for_letter(mail_sink, rid, "verification")
        answers, resends = [], []
        for _ in range(CODES):
            # A client of its own every three codes: the per-request limit counts per client.
            strangers = [call_from(unique_ip()) for _ in range(2)]
            for n in range(ATTEMPTS):
                wrong = await strangers[n // 3].post(f"/v1/public/requests/{rid}/verify", json={"code": "000000"})
                answers.append(wrong.status_code)
            resends.append((await call_from(unique_ip()).post(f"/portal/requests/{rid}/resend")).status_code)
        assert answers == ([400] * (ATTEMPTS - 1) + [423]) * CODES
        assert resends == [200] * (CODES - 1) + [409]  # every code the request allows, each locked

        letters = letters_for(mail_sink, rid, "verification")
        assert len(letters) == CODES
        token = verification_link(letters[-1]).rsplit("token=", 1)[1]
        subject = call_from(unique_ip())
        # (The address's 25 wrong codes a week are spent too: a code would be refused 429 before
        # the workflow saw it. The page says what works.)
        locked = await subject.get(f"/portal/requests/{rid}/verify")
        assert "The link in our latest e-mail still works" in locked.text and 'name="code"' not in locked.text

        earlier = verification_link(letters[-2]).rsplit("token=", 1)[1]
        stale = await subject.post(f"/portal/requests/{rid}/verify", data={"token": earlier})
        assert stale.status_code == 423 and "This link is from an earlier e-mail" in stale.text, stale.text

        opened = await subject.get(f"/portal/requests/{rid}/verify", params={"token": token})
        assert opened.status_code == 200 and "Yes, I made this request" in opened.text, opened.text
        assert "no longer works" in opened.text and 'name="code"' not in opened.text
        confirmed = await subject.post(f"/portal/requests/{rid}/verify", data={"token": token})
        assert confirmed.status_code == 303, confirmed.text
        # The run, locks, stale link and confirmation included, replays against the same code.
        history = await dev_server.client.get_workflow_handle(workflow_id_for(rid)).fetch_history()
        await Replayer(workflows=[DataSubjectRequestWorkflow, SystemTaskWorkflow],
                       data_converter=dev_server.client.data_converter).replay_workflow(history)
    events = {r["event_type"]: _json(r["data"]) for r in await pool.fetch(
        "SELECT event_type, data FROM audit_events WHERE request_id = $1 AND event_type LIKE 'verification.%' "
        "ORDER BY seq", rid)}
    assert events["verification.locked"] == {"refuses": "codes"}
    assert events["verification.succeeded"] == {"method": "email_link", "after_lock": True}
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'verification.failed'", rid) == CODES * ATTEMPTS


async def test_a_sender_rotating_clients_cannot_flood_a_mailbox_with_codes(
        settings, pool, dev_server, mail_sink, task_queue):
    """Each submission from a client of its own, naming one victim's address (as written, in
    capitals, with a "+tag"): past the address's allowance of verification e-mails (here 3 a day)
    a submission is refused with the words of every other limit, nothing is stored and nothing
    mailed, and the portal's "Send me a new code" sends none either. Another address is not
    touched; a request its subject confirms gives its e-mail back. Before, every client sent the
    victim a code (20 an hour each)."""
    victim = unique_email("flooded")
    local, domain = victim.split("@")
    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue), \
            app_clients(settings, dev_server.client, task_queue, rate_mail_per_email="3/day") as call_from:
        rids = []
        for spelled in (victim, victim.upper(), f"{local}+news@{domain}"):
            r = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "erasure", "email": spelled})
            assert r.status_code == 202, r.text
            rids.append(r.json()["id"])
        refused = await call_from(unique_ip()).post("/v1/public/requests",
                                                    json={"type": "access", "email": f"{local}+x@{domain}"})
        assert_limited(refused, 86400)
        assert refused.headers["content-type"].startswith(PROBLEM)
        # The words of every limit: nothing says the address has requests.
        assert refused.json()["detail"].startswith("too many attempts; try again in "), refused.text
        page = await call_from(unique_ip()).post("/portal/requests", data={"type": "access", "email": victim})
        assert_limited(page, 86400)
        for rid in rids:
            await wait_for_letter(mail_sink, rid, "verification")
        resend = await call_from(unique_ip()).post(f"/portal/requests/{rids[0]}/resend")
        assert_limited(resend, 86400)
        assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email ILIKE $1",
                                   f"{local}%@{domain}") == 3
        assert sum(len(letters_for(mail_sink, rid, "verification")) for rid in rids) == 3

        other = await call_from(unique_ip()).post("/v1/public/requests",
                                                  json={"type": "access", "email": unique_email("bystander")})
        assert other.status_code == 202, other.text

        # The victim confirms one of them (the link in its e-mail): that e-mail was wanted.
        token = verification_link(letters_for(mail_sink, rids[1], "verification")[0]).rsplit("token=", 1)[1]
        confirmed = await call_from(unique_ip()).post(f"/v1/public/requests/{rids[1]}/verify", json={"token": token})
        assert confirmed.status_code == 200, confirmed.text
        again = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": victim})
        assert again.status_code == 202, again.text
