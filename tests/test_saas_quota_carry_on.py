"""A SaaS whose daily quota is used up during a task's run no longer leaves the task to the activity's
retries (8 quota days with nothing to show) and then to staff, who could only press Retry once the
quota renewed: the task stays pending with a note staff see, and tries again by itself once the
quota renews, going on from its journal (each change sent once), for the system's completion
timeout; staff may resolve it meanwhile, not retry it; a request closed meanwhile gets no further
try. workflows/system_task.py `_unreached`, workflows/saas_waits.py.

The Mailchimp stand-in over loopback answers its run's second delete with Google's 429
`dailyLimitExceeded` (the day's quota gone at the service), in a whole request's stack on the
time-skipping server (the hours to the quota's renewal pass in seconds)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from devstack.saas.mailchimp import subscriber_hash
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.saas_runs_support import deletes, mailchimp, member_of_lists, newsletter
from tests.support import attested_request, console_sign_in, staff_headers, unique_email
from tests.test_saas_outage_carry_on import LISTS, _task, done_by_itself
from workers.dsr_worker import build_worker

DAILY_LIMIT = {"error": {"code": 429, "message": "Quota exceeded",
                         "errors": [{"reason": "dailyLimitExceeded", "message": "Quota exceeded"}]}}
NOTE = re.compile(r"not yet done: Newsletter's quota for today is used up; tried again by itself after "
                  r"(\d{4}-\d\d-\d\d \d\d:\d\d) UTC, until \d{4}-\d\d-\d\d \d\d:\d\d UTC, then it needs attention")


def _quota_gone(app: Any, email: str, lists: list[str]) -> None:
    """The service refuses the subject's second delete (from the second of its `lists`) for the
    day's quota: the first is done by then."""
    second = lists[1]
    app.state.standin.inject(429, times=10**6, body=DAILY_LIMIT,
                             path=f"/lists/{second}/members/{subscriber_hash(email)}/actions/")


@contextlib.asynccontextmanager
async def _quota_stack(postgres, settings, pool, env, tmp_path, monkeypatch,
                       **system: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """(the stand-in, the stack, an API client): Mailchimp as the newsletter system (`system`:
    more of its settings), its inline retries cut to one try."""
    async with mailchimp(monkeypatch) as app:
        config = newsletter()
        config["config"]["retry"] = {"attempts": 1, "backoff_seconds": 0}
        async with fanout_stack(postgres, settings, env.client, tmp_path,
                                extra_systems={"newsletter": {**config, **system}}) as stack, \
                build_worker(env.client, stack.settings, pool), api(stack) as http:
            yield app, stack, http


async def _erasure(app: Any, http: Any, pool: Any, label: str) -> tuple[str, str]:
    """(the request, its subject's address): an erasure of a member of LISTS lists, out of quota."""
    email = unique_email(label)
    before = len(app.state.data.lists)
    member_of_lists(app, email, LISTS)
    _quota_gone(app, email, list(app.state.data.lists)[before:])
    return await attested_request(http, pool, "erasure", email=email), email


def _sent_for(app: Any, email: str) -> int:
    return len([s for s in app.state.standin.served if subscriber_hash(email) in s.path])


async def test_a_quota_used_up_in_the_first_run_waits_for_its_renewal(postgres, settings, pool, time_skipping,
                                                                      tmp_path, monkeypatch):
    """The task is pending with a note saying when it is tried again (the quota's renewal), shown
    on the request page and in the evidence pack; Retry is not offered and refused; nothing is
    sent before the renewal; after it the run goes on from its journal: each membership deleted
    once, the request answered without staff. Before, the task waited in the activity's retries
    without a note, then needed attention."""
    env = time_skipping
    async with _quota_stack(postgres, settings, pool, env, tmp_path, monkeypatch) as (app, stack, http):
        rid, email = await _erasure(app, http, pool, "quota")
        waiting = await _task(pool, rid, lambda r: r["message"] is not None, env)
        assert waiting["status"] == "pending", waiting
        note = NOTE.fullmatch(waiting["message"])
        assert note is not None, waiting
        assert deletes(app).count(204) == 1, deletes(app)

        await console_sign_in(http, pool, "compliance")
        page = (await http.get(f"/console/requests/{rid}")).text
        row = re.search(r"<tr>\s*<td>Newsletter</td>.*?</tr>", page, re.S)
        assert row is not None and "quota for today is used up" in row.group(0) and ">pending<" in row.group(0), page
        assert 'id="retry-system"' not in page and 'id="resolve-system"' in page
        pack = (await http.get(f"/v1/requests/{rid}/evidence.html")).text
        result = re.search(r"<tr><td>Newsletter</td>.*?</tr>", pack.split('id="results"')[1], re.S)
        assert result is not None and "<td>pending</td>" in result.group(0), pack
        assert "quota for today is used up" in result.group(0)
        retried = await http.post(f"/v1/requests/{rid}/retry-task", headers=await staff_headers(pool, "compliance"),
                                  json={"system": "newsletter", "attempt": 1, "action": "erase"})
        assert retried.status_code == 409 and "tried again by itself" in retried.text, retried.text

        # Quota back at the service before our clock says so: nothing is asked before the renewal.
        sent = _sent_for(app, email)
        app.state.standin.faults.clear()
        renewal = note.group(1)
        while (await env.get_current_time()).strftime("%Y-%m-%d %H:%M") < renewal:
            await env.sleep(timedelta(minutes=30))
            await asyncio.sleep(0.05)
            now = (await env.get_current_time()).strftime("%Y-%m-%d %H:%M")
            assert now >= renewal or _sent_for(app, email) == sent, (now, app.state.standin.served[-3:])
        await done_by_itself(app, pool, rid, env, refused=429)


async def test_staff_resolve_or_a_close_ends_the_wait_for_the_quota(postgres, settings, pool, time_skipping,
                                                                    tmp_path, monkeypatch):
    """Two erasures wait for the quota: staff resolve the first (it ends at once as theirs, the
    request is answered), the subject withdraws the second (after the renewal its try sends
    nothing and ends saying why); neither is sent anything more once the quota renews."""
    env = time_skipping
    async with _quota_stack(postgres, settings, pool, env, tmp_path, monkeypatch) as (app, stack, http):
        (resolved, first), (withdrawn, second) = [await _erasure(app, http, pool, label)
                                                  for label in ("quota-resolved", "quota-withdrawn")]
        for rid in (resolved, withdrawn):
            await _task(pool, rid, lambda r: r["message"] is not None, env)
        sent = _sent_for(app, first), _sent_for(app, second)
        compliance = await staff_headers(pool, "compliance")
        answer = await http.post(f"/v1/requests/{resolved}/resolve-task", headers=compliance,
                                 json={"system": "newsletter", "note": "Deleted the rest in Mailchimp by hand"})
        assert answer.status_code == 200, answer.text
        closed = await http.post(f"/v1/requests/{withdrawn}/cancel", headers=await staff_headers(pool, "agent"),
                                 json={"reason": "Withdrawn by phone", "withdrawn_by_subject": True})
        assert closed.status_code == 200, closed.text
        state = await asyncio.wait_for(env.client.get_workflow_handle(workflow_id_for(resolved)).result(), 60)
        assert state["status"] == "completed", state

        app.state.standin.faults.clear()
        ended = await _task(pool, withdrawn, lambda r: r["status"] != "pending", env, step=timedelta(hours=1), steps=30)
        assert ended["status"] == "needs_attention", ended
        assert ended["message"].startswith("not tried again: the request was closed"), ended
        row = await _task(pool, resolved, lambda r: True, env)
        assert row["status"] == "done" and row["message"] == "resolved by staff: Deleted the rest in Mailchimp by hand"
        assert (_sent_for(app, first), _sent_for(app, second)) == sent, app.state.standin.served[-4:]


async def test_a_quota_used_up_past_the_completion_timeout_needs_attention_saying_so(
        postgres, settings, pool, time_skipping, tmp_path, monkeypatch):
    """The quota gone on every try for the system's completion timeout (a day here): the task
    needs attention, saying since when and why; tried once after each renewal meanwhile."""
    env = time_skipping
    async with _quota_stack(postgres, settings, pool, env, tmp_path, monkeypatch, completion_timeout_days=1) as (
            app, stack, http):
        rid, email = await _erasure(app, http, pool, "quota-days")
        await _task(pool, rid, lambda r: r["message"] is not None, env)
        stuck = await _task(pool, rid, lambda r: r["status"] != "pending", env, step=timedelta(hours=2), steps=30)
        assert stuck["status"] == "needs_attention", stuck
        assert re.fullmatch(r"Newsletter's quota was still used up 1 day after it was first met "
                            r"\(\d{4}-\d\d-\d\d \d\d:\d\d UTC\), tried again by itself after each renewal; "
                            r"last: .*daily quota used up; it renews at .*", stuck["message"]), stuck
        # Tried at the first run and after each renewal within the day: one, or two when the
        # virtual clock (moved on by earlier tests) was late in its day at the first run.
        assert deletes(app)[0] == 204 and set(deletes(app)[1:]) == {429} and len(deletes(app)) in (3, 4), deletes(app)
        await env.client.get_workflow_handle(workflow_id_for(rid)).terminate("test over")
