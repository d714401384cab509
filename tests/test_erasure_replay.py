"""`dsrflow erasure replay` after a backup restore brings back what two erasures took: analytics'
user row (deleted) and its page events (anonymised, their link to the user removed), and a CRM
contact. The replay anonymises the events again before it deletes the user (before, it replayed
deleted records only, so the restored events still pointed at the user, its DELETE broke the
foreign key, and the whole replay stopped there), and a system that fails (analytics, its table
moved away) is named while the others are still re-erased."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date

import asyncpg

from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack_alone
from tests.support import fetch_rows, settings_env, staff_headers
from workers.dsr_worker import build_worker


async def _restore(url: str, table: str, rows: list[asyncpg.Record], key: str) -> None:
    """Put the rows back as the backup had them, whether erasure deleted or anonymised them."""
    conn = await asyncpg.connect(url)
    try:
        for row in rows:
            columns = list(row.keys())
            await conn.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))}) "
                f"ON CONFLICT ({key}) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in columns)}",
                *row.values())
    finally:
        await conn.close()


def _replay(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", "erasure", "replay", "--since", date.today().isoformat()],
                          env=env, capture_output=True, text=True, timeout=120)


async def test_a_replay_reanonymises_restored_children_first_and_goes_on_past_a_failing_system(
        postgres, settings, dev_server, tmp_path):
    client = dev_server.client
    # A database of its own: the replay takes every ledger row since today.
    async with fanout_stack_alone(postgres, settings, client, tmp_path, "replay") as (stack, pool):
        db = stack.databases
        users = await fetch_rows(db["analytics"], "SELECT * FROM users WHERE email = 'tracked@example.com'")
        events = await fetch_rows(db["analytics"], "SELECT * FROM page_events WHERE user_id = $1", users[0]["user_id"])
        contacts = await fetch_rows(db["crm"], "SELECT * FROM contacts WHERE email = 'grace@example.com'")
        assert users and events and contacts
        async with build_worker(client, stack.settings, pool), api(stack) as http:
            for email in ("tracked@example.com", "grace@example.com"):
                r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
                    "type": "erasure", "subject": {"email": email}, "identity_attested": True})
                assert r.status_code == 201, r.text
                await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(r.json()["id"])).result(), 90)

        # The backup from before both erasures is restored, and analytics' user table has moved away.
        await _restore(db["analytics"], "users", users, "user_id")
        await _restore(db["analytics"], "page_events", events, "id")
        await _restore(db["crm"], "contacts", contacts, "id")
        await fetch_rows(db["analytics"], "ALTER TABLE users RENAME TO users_moved")

        env = {**os.environ, **settings_env(stack.settings)}
        broken = await asyncio.to_thread(_replay, env)
        assert broken.returncode == 1, broken.stderr
        assert "not re-erased in analytics" in broken.stderr
        assert broken.stdout.strip() == "re-erased 1 record(s) (crm: 1)"
        assert await fetch_rows(db["crm"], "SELECT 1 FROM contacts WHERE email = 'grace@example.com'") == []

        await fetch_rows(db["analytics"], "ALTER TABLE users_moved RENAME TO users")
        fixed = await asyncio.to_thread(_replay, env)
        assert fixed.returncode == 0, fixed.stderr
        assert fixed.stdout.strip() == f"re-erased {1 + len(events)} record(s) (analytics: {1 + len(events)})"
        assert await fetch_rows(db["analytics"], "SELECT 1 FROM users WHERE email = 'tracked@example.com'") == []
        left = await fetch_rows(db["analytics"], "SELECT user_id, ip, device_id FROM page_events WHERE id = ANY($1)",
                                [e["id"] for e in events])
        assert len(left) == len(events) and all(set(r.values()) == {None} for r in left)

        # Nothing left to erase, anonymised rows included.
        again = await asyncio.to_thread(_replay, env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "re-erased 0 record(s)"
