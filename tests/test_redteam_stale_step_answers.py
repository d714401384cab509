"""Red team, a member of staff with a page gone stale: a skip or a retry of a failed step answers
the step its page showed, or nothing.

The workflow's `skip_step` and `retry_step` name no step: they answer whichever step is failing
when they arrive. A compliance officer who opened the request while its acknowledgement's letter
failed (the relay refused it), and pressed "Record as done" after a colleague had already done so
and the request had moved on to a response letter that failed in turn, recorded the response as
sent by hand: the request completed, and the subject never had their answer (the same with a
double press, or a script answering an old `trouble`). docs/security.md, "Staff against their
own console".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.context import ActivityContext
from activities.letters import deliver_letter
from schemas.workflow import LetterJob, LetterReceipt
from tests.support import (
    api_client,
    console_sign_in,
    live_view,
    staff_headers,
    unique_email,
    wait_for_letter,
)
from workers.dsr_worker import activity_context, build_worker

REFUSED = ValueError("550 5.1.1 mailbox unavailable")  # for good: the step waits for staff at once


def form_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the request page's form for `action`, as a browser would send them."""
    form = re.search(rf'<form [^>]*action="[^"]*/{action}".*?</form>', page, re.S)
    assert form, f"no {action} form on the page"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(0)))



def refusing_relay(ctx: ActivityContext, refusing: set[str]) -> Callable[[LetterJob], Any]:
    """The `send_letter` activity, its relay refusing for good the letters whose purpose is in
    `refusing` (which the test may change as it goes)."""
    @activity.defn(name="send_letter")
    async def relay(job: LetterJob) -> LetterReceipt:
        if job.purpose in refusing:
            raise REFUSED
        return await deliver_letter(ctx, job)

    return relay


async def test_a_skip_from_a_page_showing_another_failed_step_records_nothing(
        settings, pool, dev_server, mail_sink, task_queue):
    """Officer B opens the page while the acknowledgement's letter fails; officer A records it as
    sent by hand; the systems are told of the objection and the response's letter fails. B's
    form, sent now, is refused (409, naming the step failing now) over the console, and so is a
    REST skip naming the old step: the response is not skipped. Once the relay takes it, a retry
    naming the step now failing sends it."""
    refusing = {"acknowledgement", "response"}
    relay = refusing_relay(activity_context(settings, pool), refusing)

    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue, activity_overrides=[relay]), \
            api_client(settings, dev_server.client, task_queue) as officer_a, \
            api_client(settings, dev_server.client, task_queue) as officer_b:
        compliance = await staff_headers(pool, "compliance")
        opened = await officer_a.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "objection", "objection_scope": "legitimate_interest",
            "subject": {"email": unique_email("stale-skip")}, "identity_attested": True})
        assert opened.status_code == 201, opened.text
        rid = opened.json()["id"]
        first = (await live_view(officer_a, compliance, rid, lambda v: v["trouble"]))["trouble"]
        assert first["about"] == "acknowledgement letter", first

        await console_sign_in(officer_b, pool, "compliance")
        stale_form = form_fields((await officer_b.get(f"/console/requests/{rid}")).text, "skip-step")

        # Over REST, naming no step: answering whichever fails, as scripts written before could.
        skipped = await officer_a.post(f"/v1/requests/{rid}/skip-step", headers=compliance,
                                       json={"note": "Posted the acknowledgement by hand"})
        assert skipped.status_code == 200, skipped.text
        second = (await live_view(officer_a, compliance, rid,
                                  lambda v: v["trouble"] and v["trouble"]["key"] != first["key"]))["trouble"]
        assert second["about"] == "response letter", second

        late = await officer_b.post(f"/console/requests/{rid}/skip-step",
                                    data={**stale_form, "note": "Posted the acknowledgement by hand"})
        assert late.status_code == 409, late.text[:2000]
        assert "sending the response letter" in late.text
        by_rest = await officer_a.post(f"/v1/requests/{rid}/skip-step", headers=compliance,
                                       json={"note": "Posted the acknowledgement by hand", "trouble": first["key"]})
        assert by_rest.status_code == 409, by_rest.text
        assert by_rest.json()["trouble"] == second["key"]
        now = await live_view(officer_a, compliance, rid)
        assert now["status"] == "in_progress" and now["trouble"] == second, now

        refusing.clear()
        retried = await officer_a.post(f"/v1/requests/{rid}/retry-step", headers=compliance,
                                       json={"trouble": second["key"]})
        assert retried.status_code == 200, retried.text
        await wait_for_letter(mail_sink, rid, "response")
        done = await live_view(officer_a, compliance, rid, lambda v: v["status"] == "completed")
        assert done["trouble"] is None
    skips = await pool.fetch("SELECT trouble_key, resolution FROM step_troubles WHERE request_id = $1::uuid "
                             "AND resolution LIKE 'skipped by staff%'", rid)
    assert [r["trouble_key"] for r in skips] == [first["key"]]


async def test_a_console_form_that_names_no_failed_step_answers_none(settings, pool, dev_server, task_queue):
    """A retry or skip posted from the console without the step it answers (a page from before
    forms named it, a hand-made post) is refused and answers nothing; over REST, naming the step
    failing now is answered: the step runs again, and succeeds once the relay takes the letter."""
    refusing = {"acknowledgement"}
    relay = refusing_relay(activity_context(settings, pool), refusing)

    async with build_worker(dev_server.client, settings, pool, task_queue=task_queue, activity_overrides=[relay]), \
            api_client(settings, dev_server.client, task_queue) as http:
        compliance = await staff_headers(pool, "compliance")
        opened = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
            "type": "restriction", "restriction_grounds": ["accuracy_contested"],
            "subject": {"email": unique_email("no-step-named")}, "identity_attested": True})
        assert opened.status_code == 201, opened.text
        rid = opened.json()["id"]
        failing = (await live_view(http, compliance, rid, lambda v: v["trouble"]))["trouble"]
        csrf = await console_sign_in(http, pool, "compliance")
        for action, data in (("skip-step", {"note": "Posted it by hand"}), ("retry-step", {})):
            refused = await http.post(f"/console/requests/{rid}/{action}", data={"csrf_token": csrf, **data})
            assert refused.status_code == 409 and "does not say which failed step" in refused.text, refused.text[:2000]
        still = (await live_view(http, compliance, rid))["trouble"]
        assert still == failing and still["answered_by"] is None
        http.cookies.clear()
        refusing.clear()
        retried = await http.post(f"/v1/requests/{rid}/retry-step", headers=compliance, json={"trouble": failing["key"]})
        assert retried.status_code == 200, retried.text
        await live_view(http, compliance, rid, lambda v: v["trouble"] is None)
