"""On `dsrflow up` (`make run`), mail to the policy's privacy address reaches the console's Inbox
through the embedded SMTP sink, filed once with its suggestions."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

import aiosmtplib
import asyncpg

from tests.up_process import start_healthy, stop_up


async def test_mail_to_the_privacy_address_lands_in_the_inbox(tmp_path, lifecycle_policy):
    log = tmp_path / "up.log"
    proc, ports, _ = await start_healthy(tmp_path / "home", log, DSRFLOW_DEMO="false",
                                         DSRFLOW_POLICY=str(lifecycle_policy))
    try:
        message = EmailMessage()
        message["From"] = "grace@example.com"
        message["To"] = "privacy@onetagger.com"
        message["Subject"] = "Inzage"
        message.set_content("Ik vraag inzage in mijn gegevens.")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=ports["smtp"])
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{ports['pg']}/dsrflow")
        try:
            deadline = time.monotonic() + 20
            while not (row := await conn.fetchrow("SELECT * FROM mailbox_messages")):
                assert time.monotonic() < deadline, log.read_text()[-2000:]
                await asyncio.sleep(0.2)
            assert (row["source"], row["suggested_type"], row["suggested_language"]) == ("sink", "access", "nl")
            assert await conn.fetchval("SELECT count(*) FROM mailbox_messages") == 1
        finally:
            await conn.close()
    finally:
        stop_up(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
