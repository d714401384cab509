"""The audit trail: append-only, hash-chained, anchored, and `dsrflow audit verify` finds the first
tampered row, or the anchored head a rewrite changed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from dsrflow.domain.audit import append_event
from dsrflow.domain.audit_anchors import write_anchor
from dsrflow.domain.audit_saved import anchor_line
from dsrflow.infra.db import connect
from dsrflow.infra.writes import Write
from schemas.audit import AnchorInput, AnchorReport
from tests.audit_support import rehash
from tests.conftest import database_pool
from tests.support import api_client, delete_schedules, staff_headers, wait_for_letter
from workers.dsr_worker import build_worker
from workers.schedules import AUDIT_ANCHOR_SCHEDULE_ID, ensure_schedules
from workflows.audit_anchor import AuditAnchorWorkflow
from workflows.dsr import DataSubjectRequestWorkflow

REPO = Path(__file__).resolve().parent.parent


async def audit_verify(database_url: str, home: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run `dsrflow audit verify` the way an operator would: a separate process, env config."""
    env = {**os.environ, "DSRFLOW_DATABASE_URL": database_url, "DSRFLOW_HOME": str(home)}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli.main", "audit", "verify", *options],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
async def fresh_db(postgres):
    async with database_pool(postgres, "audit", max_size=5) as db:
        yield db


async def test_verify_passes_after_a_real_run_and_names_the_tampered_row(
    fresh_db, settings, dev_server, mail_sink, task_queue, tmp_path
):
    url, pool = fresh_db
    db_settings = settings.model_copy(update={"database_url": url})
    async with build_worker(dev_server.client, db_settings, pool, task_queue=task_queue):
        async with api_client(db_settings, dev_server.client, task_queue) as http:
            r = await http.post("/v1/requests", headers=await staff_headers(pool), json={
                "type": "erasure", "subject": {"email": "audit.subject@example.com"},
                "identity_attested": True})
            assert r.status_code == 201, r.text
            rid = r.json()["id"]
            await wait_for_letter(mail_sink, rid, "response")
            handle = dev_server.client.get_workflow_handle_for(DataSubjectRequestWorkflow.run, f"dsr-{rid}")
            assert (await handle.result()).status == "completed"
        # The worker's schedule runs the anchor workflow; its result names the anchor it wrote.
        await ensure_schedules(dev_server.client, task_queue)
        try:
            schedule = await dev_server.client.get_schedule_handle(AUDIT_ANCHOR_SCHEDULE_ID).describe()
        finally:
            await delete_schedules(dev_server.client)
        assert schedule.schedule.action.workflow == "AuditAnchorWorkflow"
        anchored = await dev_server.client.execute_workflow(
            AuditAnchorWorkflow.run, AnchorInput(), id=f"anchor-{rid}", task_queue=task_queue, result_type=AnchorReport)
        assert (anchored.position, anchored.chains) == (1, 1)  # the request's chain

    events = await pool.fetch("SELECT seq, actor FROM audit_events ORDER BY seq")
    assert len(events) >= 3, "a completed request leaves several events"

    ok = await audit_verify(url, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    match = re.search(r"\bok (\d+) events\b", ok.stdout)
    assert match, ok.stdout
    assert int(match.group(1)) == len(events) > 0
    assert "1 anchor(s); 0 event(s) not yet anchored" in ok.stdout, ok.stdout

    # Tamper with one byte of one middle row, bypassing the append-only trigger the way someone
    # with superuser access to the database could.
    target = events[len(events) // 2]
    actor = target["actor"]
    tampered = actor[:-1] + ("x" if actor[-1] != "x" else "y")
    conn = await connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE audit_events SET actor = $2 WHERE seq = $1", target["seq"], tampered)
    finally:
        await conn.close()

    broken = await audit_verify(url, tmp_path)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"broken at event {target['seq']}" in broken.stdout, broken.stdout
    assert "ok " not in broken.stdout

    # The tampered row re-hashed, and its chain after it: every link holds, the anchor does not.
    conn = await connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        chain, pos = await conn.fetchrow("SELECT chain_id, chain_pos FROM audit_events WHERE seq = $1", target["seq"])
        await rehash(conn, chain, pos)
    finally:
        await conn.close()
    rewritten = await audit_verify(url, tmp_path)
    assert rewritten.returncode == 1, rewritten.stdout + rewritten.stderr
    assert re.search(rf"broken at event \d+: chain {chain} position \d+ differs from the hash anchor 1 committed to",
                     rewritten.stdout), rewritten.stdout


async def test_verify_anchor_writes_an_anchor_first(fresh_db, tmp_path):
    url, pool = fresh_db
    async with pool.acquire() as conn:
        await append_event(conn, event_key="t:anchor", event_type="test.event", actor="tests")
    first = await audit_verify(url, tmp_path, "--anchor")
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.match(r"anchor 1 over 1 chain\(s\): [0-9a-f]{64}\nok 1 events in 1 chain\(s\); 1 anchor\(s\); "
                    r"0 event\(s\) not yet anchored\n$", first.stdout), first.stdout
    again = await audit_verify(url, tmp_path, "--anchor")
    assert again.stdout.startswith("no chain changed since the last anchor\nok 1 events"), again.stdout


async def test_audit_table_refuses_update_delete_and_truncate(fresh_db):
    url, pool = fresh_db
    async with pool.acquire() as conn:
        await append_event(conn, event_key="t:append-only", event_type="test.event", actor="tests")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("UPDATE audit_events SET actor = 'mallory'")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("DELETE FROM audit_events")
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await conn.execute("TRUNCATE audit_events")
        row = await conn.fetchrow("SELECT actor FROM audit_events WHERE event_key = 't:append-only'")
        assert await write_anchor(conn) is not None
        for table in ("audit_anchors", "audit_anchor_heads"):
            with pytest.raises(asyncpg.PostgresError, match=f"{table} is append-only: UPDATE refused"):
                await conn.execute(f"UPDATE {table} SET hash = 'x'")
            with pytest.raises(asyncpg.PostgresError, match=f"{table} is append-only: DELETE refused"):
                await conn.execute(f"DELETE FROM {table}")
            with pytest.raises(asyncpg.PostgresError, match=f"{table} is append-only: TRUNCATE refused"):
                await conn.execute(f"TRUNCATE {table} CASCADE")
        assert await conn.fetchval("SELECT count(*) FROM audit_anchor_heads") == 1
    assert row["actor"] == "tests"


async def test_appending_the_same_event_key_twice_stores_one_row(fresh_db, tmp_path):
    url, pool = fresh_db
    async with pool.acquire() as conn:
        first = await append_event(conn, event_key="t:once", event_type="test.event", actor="tests",
                                   data={"n": 1})
        second = await append_event(conn, event_key="t:once", event_type="test.event", actor="tests",
                                    data={"n": 2})
        rows = await conn.fetch("SELECT data, hash FROM audit_events WHERE event_key = 't:once'")
    assert first == second
    assert len(rows) == 1
    assert rows[0]["data"] == {"n": 1} and rows[0]["hash"] == first

    result = await audit_verify(url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok 1 events in 1 chain(s)" in result.stdout


async def test_appends_of_any_data_verify_in_and_out_of_a_transaction(fresh_db, tmp_path):
    """The append computes each hash from the event as PostgreSQL stores it: in one statement for
    data that jsonb gives back unchanged, in two for data it changes (1e20 comes back as an int,
    an int key as a string); both verify, alone and inside a caller's transaction, and the first
    append of a key is the one that stays."""
    url, pool = fresh_db
    request = "5b0f3c1e-2d4a-4c6b-9e8f-0a1b2c3d4e5f"
    kinds = [{"text": "Zoë \"quoted\" \\ back\u2028slash", "n": 10**30, "yes": True, "none": None,
              "nested": {"list": [1, "two", [3], {"b": 2, "a": 1}]}},
             {"big": 1e20, "half": 0.5}, {1: "int key", "2": "str key"}, {}]
    async with pool.acquire() as conn:
        for n, data in enumerate(kinds):
            await append_event(conn, event_key=f"t:alone:{n}", request_id=request, event_type="test.event",
                               actor="tests", data=data)
            async with conn.transaction():
                await append_event(conn, event_key=f"t:inside:{n}", request_id=request, event_type="test.event",
                                   actor="tests", data=data)
                again = await append_event(conn, event_key=f"t:inside:{n}", request_id=request,
                                           event_type="test.event", actor="tests", data={"other": n})
        stored = await conn.fetch("SELECT event_key, data, hash, chain_pos FROM audit_events ORDER BY chain_pos")
    assert [r["chain_pos"] for r in stored] == list(range(1, 2 * len(kinds) + 1))
    assert stored[-1]["hash"] == again and stored[-1]["data"] == {}
    assert stored[2]["data"] == {"big": 100000000000000000000, "half": 0.5}

    result = await audit_verify(url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok {2 * len(kinds)} events in 1 chain(s)" in result.stdout


async def test_writes_carried_by_an_append_commit_with_it_or_not_at_all(fresh_db, tmp_path):
    """A change and its audit event in one statement (`along`): both placeholders' numbering and
    the data land where each statement says, a failing change leaves no event behind, and an
    event appended again (a retried step) still verifies once."""
    url, pool = fresh_db
    request = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE carried (k text PRIMARY KEY, n int NOT NULL, note text)")
        writes = [Write("INSERT INTO carried (k, n, note) VALUES ($1, $2, $3)", ("a", 1, "first")),
                  Write("INSERT INTO carried (k, n) VALUES ($2, $1) ON CONFLICT (k) DO UPDATE SET n = $1",
                        (7, "b")),
                  Write("UPDATE carried SET n = n + $1 WHERE k = $2", (10, "a"))]
        await append_event(conn, event_key="t:carried", request_id=request, event_type="test.event",
                           actor="tests", data={"n": 1}, along=writes)
        rows = {r["k"]: (r["n"], r["note"]) for r in await conn.fetch("SELECT * FROM carried")}
        # The update ran in the same statement as the insert: it saw the snapshot before it.
        assert rows == {"a": (1, "first"), "b": (7, None)}

        with pytest.raises(asyncpg.UniqueViolationError):
            await append_event(conn, event_key="t:refused", request_id=request, event_type="test.event",
                               actor="tests", along=[Write("INSERT INTO carried (k, n) VALUES ($1, $2)", ("a", 2))])
        assert await conn.fetchval("SELECT count(*) FROM audit_events WHERE event_key = 't:refused'") == 0

        await append_event(conn, event_key="t:carried", request_id=request, event_type="test.event",
                           actor="tests", data={"n": 1},
                           along=[Write("UPDATE carried SET note = $1 WHERE k = $2", ("again", "b"))])
        assert await conn.fetchval("SELECT note FROM carried WHERE k = 'b'") == "again"
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == 1

    with pytest.raises(ValueError, match="dollar quoting"):
        Write("DO $$ BEGIN END $$")
    result = await audit_verify(url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok 1 events in 1 chain(s)" in result.stdout


async def test_saved_anchors_say_which_match_after_a_restore(fresh_db, tmp_path):
    """After a restore, the anchors written since the backup are gone and new ones take their
    positions with other hashes: the chains check out, and only anchors saved outside show it.
    `--saved` says which saved anchors still match (those older than the backup) and which do not
    (docs/audit.md, "After a restore")."""
    url, pool = fresh_db
    saved = []  # the operator's log: what each `--anchor` printed, appended
    async with pool.acquire() as conn:
        await append_event(conn, event_key="t:before-backup", event_type="test.event", actor="tests")
        saved.append(anchor_line(await write_anchor(conn)))
        backup = await conn.fetchrow("SELECT * FROM audit_chain_heads")  # the backup's one chain
        await append_event(conn, event_key="t:after-backup", event_type="test.event", actor="tests")
        saved += [anchor_line(await write_anchor(conn)), "ok 2 events in 1 chain(s); 2 anchor(s); 0 event(s) ..."]

    # The restore: the database as the backup held it (anchor 1, one event), then work carrying on.
    conn = await connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM audit_anchor_heads WHERE anchor_position > 1")
        await conn.execute("DELETE FROM audit_anchors WHERE position > 1")
        await conn.execute("DELETE FROM audit_events WHERE chain_pos > 1")
        await conn.execute("UPDATE audit_chain_heads SET last_pos = $2, last_hash = $3, anchored_pos = $4 "
                           "WHERE chain_id = $1", *(backup[k] for k in ("chain_id", "last_pos", "last_hash",
                                                                       "anchored_pos")))
        await conn.execute("SET session_replication_role = DEFAULT")
        await append_event(conn, event_key="t:after-restore", event_type="test.event", actor="tests")
        assert (await write_anchor(conn)).position == 2
    finally:
        await conn.close()

    log = tmp_path / "anchors.log"
    log.write_text("\n".join(saved) + "\n")
    result = await audit_verify(url, tmp_path, "--saved", str(log))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok 2 events in 1 chain(s); 2 anchor(s)"), result.stdout
    assert lines[1] == "saved anchors: 1 match (1); 1 differ (2)", result.stdout
    assert re.fullmatch(r"anchor 2 as saved is not in the database \(the database's was written \S+\): a restore "
                        r"from a backup older than it, or a rewrite \(docs/audit.md, \"After a restore\"\)",
                        lines[2]), result.stdout
