"""Attacks from a processor's side that tests/test_untrusted_processors.py and
tests/test_hostile_forms.py do not make, each against the real API over HTTP (uvicorn, PostgreSQL,
Temporal, a worker): what a processor holding its own signing key can still put in a callback
(docs/security.md, "A compromised processor")."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import secrets
import uuid
import warnings
import zipfile

import pytest
from temporalio.api.enums.v1 import EventType

from activities.connectors.opendsr_signature import sign
from schemas.workflow import task_workflow_id
from tests.support import api_client, assert_problem, live_client
from tests.test_manual_links import _recorded, _task
from tests.untrusted_support import (
    CALLBACK,
    PROCESSOR,
    api_over_http,
    pending_erasure,
    processor_policy,
    rfc3339,
    running_processor,
)
from workers.dsr_worker import build_worker


@pytest.fixture
async def processor():
    async with running_processor() as fake:
        yield fake


async def _events(pool, request_id: str) -> list[dict]:
    rows = await pool.fetch("SELECT data FROM audit_events WHERE request_id = $1 AND actor = $2 ORDER BY seq",
                            uuid.UUID(request_id), f"processor:{PROCESSOR}")
    return [json.loads(r["data"]) if isinstance(r["data"], str) else r["data"] for r in rows]


async def test_a_signed_callback_with_a_status_outside_opendsrs_is_refused_and_records_nothing(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """A processor signs a callback for its own pending erasure whose `request_status` is not one
    of OpenDSR's four (pending, in_progress, completed, cancelled): a word of its own, a status
    of 200 KB (inside the body cap), or no JSON object at all but arrays nested past Python's
    recursion limit, or a job id with a NUL in it. Before, any string was taken: it went into the append-only
    audit trail for good (and into the event's key, whose index refused a long one with a 500),
    and was signalled to the task. Now 422 naming the field, nothing recorded; the real answer
    after it is still heard."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        for status in ("failed", "COMPLETED", "completed ", secrets.token_hex(100_000), {"state": "completed"}):
            body, headers = processor.signed({"subject_request_id": external_id, "request_status": status,
                                              "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
            refused = await http.post(CALLBACK, content=body, headers=headers)
            problem = assert_problem(refused, 422)
            assert problem["errors"][0]["field"] == "request_status"
            assert len(refused.content) < 2000  # the status is not echoed back
        for job in (f"{external_id}\u0000", 123, "j" * 10_000):  # before: a NUL was a 500 (PostgreSQL refused it)
            body, headers = processor.signed({"subject_request_id": job, "request_status": "completed",
                                              "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
            refused = await http.post(CALLBACK, content=body, headers=headers)
            assert assert_problem(refused, 422)["errors"][0]["field"] == "subject_request_id"
        # Arrays nested past Python's recursion limit, signed: before, a 500 (RecursionError).
        deep = b"[" * 60_000 + b"]" * 60_000
        nested = await http.post(CALLBACK, content=deep, headers={**headers, "X-OpenDSR-Signature": sign(
            deep, processor.key_pem)})
        assert assert_problem(nested, 422)["title"] == "Malformed callback"
        assert await _events(pool, request_id) == []
        assert await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1 AND system = $2",
                                   uuid.UUID(request_id), PROCESSOR) == "pending"

        body, headers = processor.signed({"subject_request_id": external_id, "request_status": "in_progress",
                                          "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))})
        heard = await http.post(CALLBACK, content=body, headers=headers)
        assert heard.status_code == 202, heard.text
    assert await _events(pool, request_id) == [{"system": PROCESSOR, "status": "in_progress", "attempt": 1}]


async def test_a_signed_callback_nested_past_the_answers_depth_is_refused_as_their_answers_are(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """The processor's answers are refused past 32 levels of nesting, before a parser sees them
    (activities/connectors/bounded_http.py); its signed callbacks were read by json.loads, whose
    limit is this Python's recursion: a callback carrying a field nested 500 deep beside a right
    status was recorded and told to the task. Now it is 422, as a malformed callback, nothing
    recorded; the same callback without the deep field is heard."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        callback = {"subject_request_id": external_id, "request_status": "in_progress",
                    "status_changed_time": rfc3339(dt.datetime.now(dt.UTC))}
        deep = json.loads("[" * 500 + "]" * 500)
        body, headers = processor.signed({**callback, "extensions": deep})
        refused = await http.post(CALLBACK, content=body, headers=headers)
        assert assert_problem(refused, 422)["title"] == "Malformed callback"
        assert await _events(pool, request_id) == []
        body, headers = processor.signed(callback)
        heard = await http.post(CALLBACK, content=body, headers=headers)
        assert heard.status_code == 202, heard.text
    assert await _events(pool, request_id) == [{"system": PROCESSOR, "status": "in_progress", "attempt": 1}]


async def _signals(client, request_id: str) -> int:
    """The signals the erasure's task has taken (each one a few events of its Temporal history)."""
    handle = client.get_workflow_handle(task_workflow_id(request_id, PROCESSOR, "erase", 1))
    return len([event async for event in handle.fetch_history_events()
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED])


async def test_distinct_signed_callbacks_that_change_nothing_neither_fill_the_trail_nor_the_tasks_history(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """A processor signs 40 distinct callbacks of its own pending erasure, saying in turn
    `in_progress` and `pending` (each with its own time: none is a replay). Before, each was
    signalled to the task, which does nothing with either but took some six events of Temporal
    history for each (Temporal ends a workflow at 51,200: 10,000 callbacks, 17 minutes of the
    rate limit), and `pending` after `in_progress` went on record as the job's status. Now nothing
    is signalled; `pending`, going back, is refused (409), said once in the trail however often
    it comes; `in_progress` again is answered as before and on record once. The completion is
    still heard and settles the task, and a replay is still refused."""
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr"})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    now = dt.datetime.now(dt.UTC)

    def callback(status: str, n: int, **more: object) -> tuple[bytes, dict[str, str]]:
        return processor.signed({"subject_request_id": external_id, "request_status": status,
                                 "status_changed_time": rfc3339(now - dt.timedelta(seconds=n)), **more})

    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        answers = [await http.post(CALLBACK, content=body, headers=headers) for body, headers in
                   (callback(("in_progress", "pending")[n % 2], n) for n in range(40))]
        assert [a.status_code for a in answers] == [202, 409] * 20, [a.text for a in answers[:3]]
        assert assert_problem(answers[1], 409)["title"] == "Status goes back"
        assert await _signals(dev_server.client, request_id) == 0
        assert await _events(pool, request_id) == [
            {"system": PROCESSOR, "status": "in_progress", "attempt": 1},
            {"system": PROCESSOR, "status": "pending", "after": "in_progress", "attempt": 1}]

        done, headers = callback("completed", 0, results_count=3)
        assert (await http.post(CALLBACK, content=done, headers=headers)).status_code == 202
        for _ in range(100):
            if await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1 AND system = $2",
                                   uuid.UUID(request_id), PROCESSOR) != "pending":
                break
            await asyncio.sleep(0.1)
        replayed = await http.post(CALLBACK, content=done, headers=headers)
        assert assert_problem(replayed, 409)["title"] == "Callback already received"
        late = [await http.post(CALLBACK, content=body, headers=headers) for body, headers in
                (callback("in_progress", 100 + n) for n in range(5))]
        assert [a.status_code for a in late] == [409] * 5
    assert await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1 AND system = $2",
                               uuid.UUID(request_id), PROCESSOR) == "done"
    assert (await _events(pool, request_id))[2:] == [
        {"system": PROCESSOR, "status": "completed", "attempt": 1, "results_count": 3}]
    assert await _signals(dev_server.client, request_id) == 1


async def test_a_count_after_a_completion_without_one_settles_the_task_at_once(
        settings, pool, dev_server, processor, tmp_path, lifecycle_policy, task_queue):
    """The processor says `completed` without a count, then `completed` with one (another body, not
    a replay). The first has the task poll the processor, whose status still says in_progress (it
    lags its callbacks): the task waits for its next poll, five minutes on. Before, the second went
    on record under the first's key (its count nowhere) and was not told: the task waited for that
    poll. Now its count is on record, once, and told: the task is done with it at once. A third
    completion records and tells nothing more."""
    processor.job_status = "in_progress"  # its status endpoint's answers unsigned: their signature is not the point
    policy = processor_policy(tmp_path, lifecycle_policy, {"base_url": f"{processor.url}/opendsr",
                                                           "verify_signatures": False})
    ours = settings.model_copy(update={"policy_path": policy, "task_queue": task_queue})
    now = dt.datetime.now(dt.UTC)
    task = "SELECT status, changed FROM system_tasks WHERE request_id = $1 AND system = $2"

    def completed(n: int, **more: object) -> tuple[bytes, dict[str, str]]:
        return processor.signed({"subject_request_id": external_id, "request_status": "completed",
                                 "status_changed_time": rfc3339(now - dt.timedelta(seconds=n)), **more})

    async with build_worker(dev_server.client, ours, pool, task_queue=task_queue), \
            api_over_http(ours, dev_server.client) as url, live_client(base_url=url) as http:
        request_id, external_id = await pending_erasure(http, pool)
        for body, headers in (completed(3), completed(2, results_count=3)):
            answer = await http.post(CALLBACK, content=body, headers=headers)
            assert answer.status_code == 202, answer.text
        for _ in range(150):
            if tuple(await pool.fetchrow(task, uuid.UUID(request_id), PROCESSOR)) != ("pending", 0):
                break
            await asyncio.sleep(0.1)
        assert tuple(await pool.fetchrow(task, uuid.UUID(request_id), PROCESSOR)) == ("done", 3)
        body, headers = completed(1, results_count=5)
        assert (await http.post(CALLBACK, content=body, headers=headers)).status_code == 202
        assert await _signals(dev_server.client, request_id) == 2
    assert await _events(pool, request_id) == [
        {"system": PROCESSOR, "status": "completed", "attempt": 1},
        {"system": PROCESSOR, "status": "completed", "attempt": 1, "results_count": 3}]
    assert tuple(await pool.fetchrow(task, uuid.UUID(request_id), PROCESSOR)) == ("done", 3)


# -- a processor's upload link ---------------------------------------------------------------------

def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


async def test_an_export_of_json_nested_past_pythons_recursion_limit_is_refused_as_a_file_not_a_crash(
        settings, pool, dev_server, task_queue, monkeypatch):
    """Whoever holds an access task's upload link sends `export.json` of 60,000 nested arrays
    (120 KB), alone or inside a ZIP. Before, checking it was JSON raised RecursionError, which no
    check caught: a 500, and the processor never learnt what was wrong. Now the page refuses that
    file by name (422) and keeps nothing; a plain export is still taken."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    rid, token = await _task(pool, settings, "access")
    before = await _recorded(pool, rid)
    deep = b"[" * 60_000 + b"]" * 60_000
    async with api_client(settings, dev_server.client, task_queue) as http:
        for name, data in (("export.json", deep), ("export.zip", _zip("inner/export.json", deep))):
            refused = await http.post(f"/v1/callbacks/manual/{token}", files=[("files", (name, data))])
            assert refused.status_code == 422, refused.text[-400:]
            assert "export" in refused.text and "nested too deeply" in refused.text
            assert await _recorded(pool, rid) == before
        taken = await http.post(f"/v1/callbacks/manual/{token}", files=[("files", ("export.json", b'[{"a": [1]}]'))])
        assert taken.status_code == 200, taken.text[-400:]
    assert (await _recorded(pool, rid))["exports"] == 1


async def test_a_note_with_nul_or_escape_sequences_is_recorded_without_them_on_the_processors_page(
        settings, pool, dev_server, task_queue, monkeypatch):
    """A processor's note pasted with a NUL and terminal escape sequences (from a log, a binary
    export's preview), on a confirmation and on an upload. Before, PostgreSQL refused the NUL: the
    processor's browser got raw problem+json instead of its page, and the answer was not
    recorded. Now the note is kept without its control characters (line breaks and tabs stay),
    and the answer is recorded as any other."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    # A right-to-left override makes the rest read backwards to staff; a Unicode line separator
    # is a line break in some viewers and none in others.
    note = "Deleted\x00 all rows.\x1b[2J\r\nSee\tticket 42.\x7f\u2028\u202eon file"
    kept = "Deleted all rows.[2J\r\nSee\tticket 42.\non file"
    erase, erase_token = await _task(pool, settings, "erase", request_type="erasure")
    access, access_token = await _task(pool, settings, "access")
    async with api_client(settings, dev_server.client, task_queue) as http:
        confirmed = await http.post(f"/v1/callbacks/manual/{erase_token}", data={"note": note})
        uploaded = await http.post(f"/v1/callbacks/manual/{access_token}", data={"no_data": "1", "note": note},
                                   files=[("files", ("", b"", "application/octet-stream"))])
    assert confirmed.status_code == 200 and "confirmation recorded" in confirmed.text, confirmed.text[-400:]
    assert uploaded.status_code == 200 and "no personal data about this person" in uploaded.text, uploaded.text[-400:]
    for rid, event in ((erase, "processor.confirmed"), (access, "processor.export_received")):
        assert (await _recorded(pool, rid))["events"].count(event) == 1
        assert await pool.fetchval("SELECT confirmation_note FROM manual_tasks WHERE request_id = $1", rid) == kept


async def test_a_zip_whose_member_is_a_symbolic_link_is_refused_and_nothing_kept(
        settings, pool, dev_server, task_queue, monkeypatch):
    """A ZIP whose `notes.txt` is a symbolic link (Unix mode bits in its external attributes, the
    target `../../.bashrc` as its content): unpacked with unzip, it is made a link, and a later
    member of that name is written through it, outside the folder, though no name has a '..' (the
    zip-slip check looked at names only). Before, the upload was taken; the package's
    copy happened to drop the link bit (activities/processor_csv.py `write_zip`), but the file we
    kept was the processor's. Now refused at the link by name (422), nothing kept."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    rid, token = await _task(pool, settings, "access")
    before = await _recorded(pool, rid)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("notes.txt")
        link.create_system = 3  # Unix: unzip reads the mode bits
        link.external_attr = 0o120777 << 16  # a symbolic link
        archive.writestr(link, "../../.bashrc")
        archive.writestr("data.json", "[]")
    async with api_client(settings, dev_server.client, task_queue) as http:
        refused = await http.post(f"/v1/callbacks/manual/{token}", files=[("files", ("export.zip", buffer.getvalue()))])
    assert refused.status_code == 422, refused.text[-400:]
    assert "export.zip: notes.txt: is a symbolic link" in refused.text
    assert await _recorded(pool, rid) == before


@pytest.mark.parametrize("names", [("data.json", "data.json"), ("data.json", "DATA.json")])
async def test_a_zip_holding_one_name_twice_is_refused_and_nothing_kept(
        settings, pool, dev_server, task_queue, monkeypatch, names):
    """A ZIP with two members of one name (or of names a case-insensitive disk takes as one):
    unpacked, the second replaces the first, so what staff and the subject read is not all the
    processor sent, and which copy survives depends on the tool. Now refused naming the member
    (422), nothing kept."""
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    rid, token = await _task(pool, settings, "access")
    before = await _recorded(pool, rid)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it is asked to write
        archive.writestr(names[0], '[{"email": "ada@example.com"}]')
        archive.writestr(names[1], "[]")
    async with api_client(settings, dev_server.client, task_queue) as http:
        refused = await http.post(f"/v1/callbacks/manual/{token}", files=[("files", ("export.zip", buffer.getvalue()))])
    assert refused.status_code == 422, refused.text[-400:]
    assert f"export.zip: {names[1]}: appears twice in the archive" in refused.text
    assert await _recorded(pool, rid) == before
