"""A restriction withdrawn part-way whose processor's confirmation its task learns of only after the
lift was decided and the lift's own task at that processor had begun (workflows/restriction_lifecycle.py
`_lift_late_reach`, patch restriction-late-reach-lifted), end to end: the real workflows, worker,
database, mail sink and the survey processor asked by e-mail; the worker stopped as the lift runs
again, and another taking the workflow over from its history.

The survey processor goes on record as reached (`restriction.reached`), and the lift's task there runs
again, once: its link answers with the processor's confirmation of the lift, which came after the
restriction it had confirmed, so the processor is not e-mailed twice. Before, the
workflow stopped following the restriction's tasks once the lift was decided: the processor stayed
restricted, missing from the restriction, while the record said the restriction was lifted.

The run again is killed too (kill -9 of a worker process at the failpoint `restriction-acted`, once
it has lifted at the processor and before its result is recorded): the next worker's try lifts
once in effect (no second e-mail), records once, and the trail says it ran again once. While it
runs, the subject's status page says nothing of a lift (it says the request is closed).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import asyncpg

from activities.fanout import subject_of
from activities.restriction_lock import lock_keys
from dsrflow.crypto.keys import load_secret_key
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.process_support import died, worker_to_kill
from tests.support import letters_for, staff_headers, text_of
from tests.test_closed_request_asked_tasks import (
    SURVEYS_CONTACT,
    WITHDRAWN,
    _asked,
    _replays,
    confirmations_held,
    tell_restricted,
)
from tests.test_restriction_closed_partway import restriction_opened
from tests.test_restriction_lifecycle import LIFT, _until, _view
from workers.dsr_worker import build_worker

_LINK = re.compile(r"http://\S+(/v1/callbacks/manual/[0-9a-f]{64})")
_LIFTS = "end of a restriction of processing"
TASKS = "SELECT action, attempt, status FROM system_tasks WHERE request_id = $1::uuid AND system = $2"


def _lift_links(mail_sink, rid: str) -> list[str]:
    """The survey processor's links in the lift e-mails, in the order they went."""
    return [m.group(1) for mail in letters_for(mail_sink, rid, "processor_request") if _LIFTS in mail["Subject"]
            for m in _LINK.finditer(text_of(mail))]


async def test_a_processor_restricted_after_the_lift_began_is_recorded_and_asked_to_lift_again(
        postgres, settings, pool, dev_server, tmp_path, mail_sink, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)
    async with (fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack,
                contextlib.AsyncExitStack() as held):
        async with api(stack) as http, build_worker(dev_server.client, stack.settings, pool):
            agent, compliance = await staff_headers(pool, "agent"), await staff_headers(pool, "compliance")
            rid = await restriction_opened(http, agent)
            assert await _until(lambda: _asked(http, pool, mail_sink, rid, "needs_attention"), 20), \
                (await _view(http, pool, rid))["results"]
            # The processor's confirmation, committed only once the lift's tasks have begun: until
            # then no poll of the restriction's task reads it, nor can the lift's task there start.
            async with confirmations_held(stack.settings.effective_database_url, [rid]):
                r = await http.post(f"/v1/requests/{rid}/cancel", headers=agent, json=WITHDRAWN)
                assert r.status_code == 200, r.text
                systems = "SELECT systems FROM restrictions WHERE request_id = $1::uuid"
                on_record = await _until(lambda: pool.fetchval(systems, rid), 20)
                assert on_record is not None and "surveys" not in on_record, on_record
                r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
                assert r.status_code == 200, r.text

                async def lifting() -> bool:  # the lift's tasks run: the database's is done already
                    return ("lift_restriction", 1, "done") in {tuple(t) for t in await pool.fetch(TASKS, rid, "analytics")}

                assert await _until(lifting, 20), await pool.fetch(TASKS, rid, "analytics")
                await tell_restricted(dev_server.client, rid)

            # The survey processor, reached late, is on record at once, beside the lift; the lift's
            # first e-mail is confirmed, and staff resolve the OpenDSR processor's lift (it has no
            # lift call); once the lift's tasks have settled, the survey processor is asked once more.
            assert await _until(lambda: _recorded_late(pool, rid), 20), await pool.fetch(TASKS, rid, "surveys")
            (first,) = await _until(lambda: _async(_lift_links(mail_sink, rid)), 20)
            assert (await http.post(first, data={"note": "Lifted in our panel"})).status_code == 200
            # The lift run again waits at the survey processor's restriction lock (activities/
            # restriction_lock.py), held here until a worker that dies once it has lifted runs it.
            release = await held.enter_async_context(lock_held(stack.settings, pool, rid, "surveys"))
            r = await http.post(f"/v1/requests/{rid}/resolve-task", headers=compliance,
                                json={"system": "email_marketing", "note": "Told the e-mail processor by phone"})
            assert r.status_code == 200, r.text
            # The worker stops as the lift runs again there (its cached workflows gone with it): the
            # next replays the workflow from its history, and the lift's task is not retried twice (hDY).
            assert await _until(lambda: _retried(pool, rid), 20)
            # Meanwhile the subject's status page says the request is closed as they withdrew it, and
            # nothing of a lift (the restriction's record reads lifted; the console says the lift runs
            # again there): it never says where a restriction stands, only the request's status.
            page = (await http.get(f"/portal/requests/{rid}")).text
            assert "You withdrew this request, and we have closed it." in page and "lift" not in page.lower(), page
            # The REST view's restriction, recorded lifted, names where its lift runs again.
            restriction = (await _view(http, pool, rid))["restriction"]
            assert restriction["status"] == "lifted" and restriction["lift_runs_again"] == ["surveys"], restriction
        # A worker that takes the lift run again and is killed (-9) once it has lifted at the processor,
        # its result not yet recorded (about 8 s: the activity's heartbeat timeout before the next try).
        failpoint = f"restriction-acted~surveys:lift_restriction:{rid}"
        async with worker_to_kill(stack.settings, dev_server.client, tmp_path, failpoints=failpoint) as worker:
            await release()
            await died(worker, tmp_path)
        async with api(stack) as http, build_worker(dev_server.client, stack.settings, pool):
            # Asked again, the processor's link answers with its confirmation of the lift, made after
            # the restriction it had confirmed (its restriction link takes nothing once the request
            # closed): no second e-mail. A SaaS's run is sent again (tests/test_workflow_restriction_lift.py).
            async def surveys_lifted_twice() -> bool:
                return ("lift_restriction", 2, "done") in {tuple(t) for t in await pool.fetch(TASKS, rid, "surveys")}

            assert await _until(surveys_lifted_twice, 30), await pool.fetch(TASKS, rid, "surveys")
            assert len(_lift_links(mail_sink, rid)) == 1
            said = [r["event_type"] for r in await pool.fetch(
                "SELECT event_type FROM audit_events WHERE request_id = $1::uuid AND (event_type LIKE 'restriction.%' "
                "OR (event_type = 'task.retried' AND data->>'system' = 'surveys')) ORDER BY occurred_at", rid)]
            assert said == ["restriction.in_force", "restriction.lift_requested", "restriction.reached",
                            "restriction.lifted", "task.retried"], said
            # Its run's record, once, though a try died after the lift: one end of the lift's attempt 2.
            ends = await pool.fetch("SELECT event_type, event_key FROM audit_events WHERE request_id = $1::uuid "
                                    "AND event_type LIKE 'task.%' AND event_type NOT IN ('task.retried', 'task.pending') "
                                    "AND event_key LIKE '%:task:surveys:lift_restriction:2:%'", rid)
            assert [e["event_type"] for e in ends] == ["task.done"], await pool.fetch(
                "SELECT event_type, event_key FROM audit_events WHERE request_id = $1::uuid AND event_type LIKE 'task.%' "
                "AND data->>'system' = 'surveys'", rid)
            view = await _view(http, pool, rid)
            assert view["restriction"]["status"] == "lifted" and "surveys" in view["restriction"]["systems"], view
            assert view["restriction"]["lift_runs_again"] == [], view["restriction"]
            await _replays(dev_server.client, workflow_id_for(rid))


@contextlib.asynccontextmanager
async def lock_held(settings, pool, rid: str, system: str) -> AsyncIterator:
    """The restriction lock of the request's subject at `system`, as a lift takes it, held by a
    session of the test's until the block ends or the function it gives is called."""
    subject = subject_of(await pool.fetchrow("SELECT * FROM dsr_requests WHERE id = $1::uuid", rid))
    conn = await asyncpg.connect(settings.effective_database_url)
    for key in lock_keys(load_secret_key(settings), subject, system):
        await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", key)

    async def release() -> None:
        if not conn.is_closed():
            await conn.close()  # the session's locks end with it

    try:
        yield release
    finally:
        await release()


async def _recorded_late(pool, rid: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                                    "AND event_type = 'restriction.reached' AND data->>'system' = 'surveys'", rid))


async def _async(value):
    return value


async def _retried(pool, rid: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1::uuid "
                                    "AND event_type = 'task.retried' AND data->>'system' = 'surveys'", rid))
