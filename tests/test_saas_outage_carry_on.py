"""A SaaS API down for longer than a task's quick retries (about four minutes) no longer leaves the
task waiting for staff: it stays pending, with a note staff see, and tries again by itself, backing
off, until the service answers (the change sent once) or a day has passed (then it needs attention,
saying how long it kept failing and why). Staff may resolve it meanwhile (nothing more is sent), not
retry it; a request closed meanwhile gets no further try. workflows/system_task.py `_unreached`.

The Mailchimp stand-in over loopback, made to answer 503 for the outage, in a whole request's stack
on the time-skipping server (hours pass in seconds)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from devstack.saas.mailchimp import subscriber_hash
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.saas_runs_support import deletes, mailchimp, member_of_lists, newsletter
from tests.support import attested_request, console_sign_in, staff_headers, unique_email
from tests.test_browser import CHROMIUM, signed_in
from tests.test_browser_actions import offered, press
from workers.dsr_worker import build_worker

LISTS = 3


def _newsletter() -> dict[str, Any]:
    """Mailchimp's shipped configuration, its inline retries cut to one try: each activity attempt
    fails at once while the stand-in is down (the activity's own retries still run)."""
    system = newsletter()
    system["config"]["retry"] = {"attempts": 1, "backoff_seconds": 0}
    return system


def _fail_second_delete(app: Any, email: str) -> None:
    """The service answers 503 to the run's second delete: the run has deleted the first by then."""
    second = list(app.state.data.lists)[1]
    app.state.standin.inject(503, times=10**6, path=f"/lists/{second}/members/{subscriber_hash(email)}/actions/")


async def _task(pool, rid: str, until, env, step: timedelta = timedelta(minutes=1), steps: int = 60) -> dict[str, Any]:
    """The newsletter task's row once `until` holds, virtual time moving on `step` at a time."""
    row = None
    for _ in range(steps):
        row = await pool.fetchrow("SELECT status, message, attempt FROM system_tasks WHERE request_id = $1 "
                                  "AND system = 'newsletter'", uuid.UUID(rid))
        if row is not None and until(dict(row)):
            return dict(row)
        await env.sleep(step)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the newsletter task is {row and dict(row)}")


async def done_by_itself(app: Any, pool, rid: str, env, *, refused: int) -> dict[str, Any]:
    """The request's state once the waiting task is done by its own next tries, as the same attempt,
    each membership deleted once (the `refused` answers aside), and the request answered without staff."""
    done = await _task(pool, rid, lambda r: r["status"] != "pending", env, step=timedelta(minutes=10))
    assert done["status"] == "done" and done["attempt"] == 1, done
    assert [s for s in deletes(app) if s != refused] == [204] * LISTS  # each membership once
    assert len(app.state.data.deleted) == LISTS and not any(app.state.data.members.values())
    state: dict[str, Any] = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
    assert state["status"] == "completed", state
    return state


@contextlib.asynccontextmanager
async def _erasure_while_down(label: str, postgres, settings, pool, env, tmp_path, monkeypatch, *,
                              down: str = "second delete") -> AsyncIterator[tuple[Any, Any, Any, str]]:
    """(the stand-in, the stack, an API client, the request): an erasure of a member of LISTS
    lists whose newsletter task waits on the service, answering 503 to `down` ("second delete":
    the run's second, the first deleted by then; "everything")."""
    async with mailchimp(monkeypatch) as app:
        email = unique_email(label)
        member_of_lists(app, email, LISTS)
        if down == "everything":
            app.state.standin.inject(503, times=10**6)
        else:
            _fail_second_delete(app, email)
        async with fanout_stack(postgres, settings, env.client, tmp_path,
                                extra_systems={"newsletter": _newsletter()}) as stack, \
                build_worker(env.client, stack.settings, pool), api(stack) as http:
            rid = await attested_request(http, pool, "erasure", email=email)
            yield app, stack, http, rid


async def test_a_saas_down_past_the_quick_retries_carries_on_by_itself(postgres, settings, pool, time_skipping,
                                                                       tmp_path, monkeypatch):
    """The service answers 503 to the run's second delete for 20 minutes (the first membership is
    deleted by then): the task is pending with a note (on the request's console page), staff are
    not offered a retry (it is being tried), nothing more is deleted; the service back, the task is done by
    itself, going on from its journal: each membership deleted once, and the request answered.
    Before, the task needed staff once the quick retries ran out."""
    env = time_skipping
    async with _erasure_while_down("outage", postgres, settings, pool, env, tmp_path, monkeypatch) as (
            app, stack, http, rid):
        waiting = await _task(pool, rid, lambda r: r["message"] is not None, env)
        assert waiting["status"] == "pending", waiting
        assert waiting["message"].startswith("not yet done, the system could not be reached: "), waiting
        assert "503" in waiting["message"] and "tried again by itself" in waiting["message"], waiting
        await env.sleep(timedelta(minutes=15))
        assert [s for s in deletes(app) if s != 503] == [204]

        # Staff see it waiting, with its note, and are not asked to act.
        await console_sign_in(http, pool, "compliance")
        page = (await http.get(f"/console/requests/{rid}")).text
        row = re.search(r"<tr>\s*<td>Newsletter</td>.*?</tr>", page, re.S)
        assert row is not None and "not yet done, the system could not be reached" in row.group(0), page
        assert ">pending<" in row.group(0)
        assert 'id="retry-system"' not in page  # being tried: not offered, and refused
        # The evidence pack says it is not done, and why.
        pack = (await http.get(f"/v1/requests/{rid}/evidence.html")).text
        result = re.search(r"<tr><td>Newsletter</td>.*?</tr>", pack.split('id="results"')[1], re.S)
        assert result is not None and "<td>pending</td>" in result.group(0), pack
        assert "could not be reached" in result.group(0)
        # By its id: the queue's first page, sorted by due date, need not hold it beside other
        # modules' requests in the session's database.
        queue = (await http.get(f"/console/queue?q={rid}")).text
        listed = re.search(rf'<tr data-request-id="{rid}">.*?</tr>', queue, re.S)
        assert listed is not None and "needs attention" not in listed.group(0), queue  # nobody is asked to act
        retried = await http.post(f"/v1/requests/{rid}/retry-task", headers=await staff_headers(pool, "compliance"),
                                  json={"system": "newsletter", "attempt": 1, "action": "erase"})
        assert retried.status_code == 409 and "tried again by itself" in retried.text, retried.text

        app.state.standin.faults.clear()  # the service is back
        state = await done_by_itself(app, pool, rid, env, refused=503)
        assert next(r for r in state["results"] if r["system"] == "newsletter")["status"] == "done"


async def test_a_saas_down_for_a_day_needs_attention_saying_so(postgres, settings, pool, time_skipping, tmp_path,
                                                               monkeypatch):
    """Down for good: after a day of tries the task needs attention, its message saying how long
    it kept failing and the last cause; nothing was deleted."""
    env = time_skipping
    async with _erasure_while_down("outage-day", postgres, settings, pool, env, tmp_path, monkeypatch, down="everything") as (
            app, stack, http, rid):
        await _task(pool, rid, lambda r: r["message"] is not None, env)
        stuck = await _task(pool, rid, lambda r: r["status"] != "pending", env, step=timedelta(hours=2), steps=30)
        assert stuck["status"] == "needs_attention", stuck
        assert re.match(r"the system could not be reached for 2[34] h \d+ min after its first failure "
                        r"\(\d{4}-\d\d-\d\d \d\d:\d\d UTC\), tried again by itself; last: .*503", stuck["message"]), stuck
        assert deletes(app) == []
        await env.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium")
@pytest.mark.parametrize("role", ["compliance", "admin"])
async def test_staff_resolving_a_task_waiting_on_its_saas_ends_it(role, browser, postgres, settings, pool,
                                                                  time_skipping, tmp_path, monkeypatch):
    """While the task waits on the service, staff press Resolve on the request's page (offered, and
    Retry not): the task ends at once as theirs, the request is answered, and no request reaches
    the service afterwards, although it is back up."""
    env = time_skipping
    async with _erasure_while_down("outage-resolved", postgres, settings, pool, env, tmp_path, monkeypatch) as (
            app, stack, http, rid):
        await _task(pool, rid, lambda r: r["message"] is not None, env)
        page = await signed_in(browser, stack.api_url, pool, role, f"/console/requests/{rid}")
        await expect(page.locator("#tasks")).to_contain_text("could not be reached")
        await expect(page.locator('#live form[hx-post$="/resolve-task"]')).to_be_visible()
        assert "retry-task" not in await offered(page)
        await press(page, "resolve-task", {"System": "newsletter",
                                           "How it was handled": "Deleted the rest in Mailchimp by hand"},
                    flash="The task is recorded as handled.")
        heard = len(app.state.standin.served)
        app.state.standin.faults.clear()  # the service is back: the task must not go on
        state = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
        assert state["status"] == "completed", state
        await env.sleep(timedelta(hours=2))
        row = await _task(pool, rid, lambda r: True, env)
        assert row["status"] == "done" and row["message"] == "resolved by staff: Deleted the rest in Mailchimp by hand"
        assert len(app.state.standin.served) == heard, app.state.standin.served[heard:]


async def test_a_request_withdrawn_while_its_saas_is_down_sends_it_nothing_more(postgres, settings, pool,
                                                                               time_skipping, tmp_path, monkeypatch):
    """The subject withdraws the erasure while the task waits on the service: once the service is
    back, the task's next try sends nothing, and the task ends needing attention, saying why (the
    first membership, deleted before, stays deleted); the withdrawal's letter does not say the
    newsletter may still act. Without the check, the wait would have gone on erasing for a
    withdrawn request."""
    env = time_skipping
    async with _erasure_while_down("outage-withdrawn", postgres, settings, pool, env, tmp_path, monkeypatch) as (
            app, stack, http, rid):
        await _task(pool, rid, lambda r: r["message"] is not None, env)
        withdrawn = await http.post(f"/v1/requests/{rid}/cancel", headers=await staff_headers(pool, "agent"),
                                    json={"reason": "Withdrawn by phone", "withdrawn_by_subject": True})
        assert withdrawn.status_code == 200, withdrawn.text
        heard = len(app.state.standin.served)
        app.state.standin.faults.clear()
        ended = await _task(pool, rid, lambda r: r["status"] != "pending", env, step=timedelta(minutes=10))
        assert ended["status"] == "needs_attention", ended
        assert ended["message"].startswith("not tried again: the request was closed"), ended
        assert len(app.state.standin.served) == heard, app.state.standin.served[heard:]
        assert deletes(app).count(204) == 1
        # Nor is the subject told it may still act (the withdrawal's letter said so, hAT); they are
        # told of the membership deleted before (the journal's count, kept at the close: hAU).
        letter = await pool.fetchval("SELECT body_text FROM sent_letters WHERE request_id = $1 "
                                     "AND purpose = 'cancellation'", rid)
        # (Another system of the stack, a processor whose status poll falls on either side of the
        # withdrawal on the skipped clock, may rightly be named as one that may still act.)
        still = re.search(r"they may still do so: ([^\n]*)", letter)
        assert "we have withdrawn your request" in letter, letter
        assert still is None or not re.search(r"\bNewsletter\b", still.group(1)), letter
        # "At least": the second delete was answered 503, which a service may give for a change it
        # made (http_client.py `unsure_before`), and no answer after it says whether it did.
        assert ("Our automated work in our system “Newsletter” stopped before it was finished; by then it had made at least 1 "
                "change to your records there.") in " ".join(letter.split()), letter
