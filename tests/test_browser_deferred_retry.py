""""Ask … again" in a real browser (Debian's Chromium) on an erasure a processor did not carry out
once the hold that deferred it ended, where the first press never started the sweep that asks the
processor (dsrflow/stores/deferred_store.py `retry_deferred`): compliance's API dies once the retry
is on record (a failpoint, as in tests/test_crash_holds.py), and an admin's cannot reach the
workflow engine. Each comes back to the request page, which offers the button again; pressed, the
processor is asked once, and the page says so. An agent is shown neither the panel nor the button,
and a form it forges is refused. One stack and database of its own (a sweep takes every row of its
subject there); the e-mail marketing processor takes 600 s to carry out a job, so a job asked stays
asked. (A processor's button; in one of our own systems, where nobody is asked, it reads "Erase it
again in the system “…”": tests/test_letter_kept_closed.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect
from temporalio.service import RPCError

from api.app import create_app
from devstack.processes import free_port
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack_alone, loopback_socket, serve
from tests.process_support import answering, died, dsrflow_process
from tests.support import attested_request, eventually, fetch_rows, live_client, place_claims_hold, unique_email
from tests.test_browser import CHROMIUM, shots, signed_in  # noqa: F401 (fixtures)
from tests.test_crash_holds import ADA, _failed_at_the_processor
from workers.dsr_worker import build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
ROLES = ("compliance", "admin")
LABEL = "E-mail marketing (newsletters)"  # the policy's label for email_marketing
ASK = f"Ask {LABEL} again"
ROW = "#deferred tr[data-system=email_marketing]"
DEFERRED = "FROM deferred_erasures WHERE request_id = $1 AND system = 'email_marketing'"


@pytest.fixture(scope="module")
async def failed(postgres, settings, dev_server, tmp_path_factory) -> AsyncIterator[dict]:
    """An erasure for each of compliance and an admin to press on, done with the subject's e-mail
    marketing subscription kept under a legal-claims hold; the hold released, the processor asked
    to erase, and the job lost on its side: the sweep recorded the erasure as failed. No worker
    runs afterwards: the test starts one."""
    client = dev_server.client
    tmp = tmp_path_factory.mktemp("deferred-browser")
    async with fanout_stack_alone(postgres, settings, client, tmp, "deferred_browser", email_delay=600) as (stack, pool), \
            api(stack) as http:
        emails = {role: unique_email(f"deferred-{role}") for role in ROLES}
        holds = {role: await place_claims_hold(pool, stack.settings, email, ["email_marketing"])
                 for role, email in emails.items()}
        async with build_worker(client, stack.settings, pool):
            requests = {role: await attested_request(http, pool, "erasure", email) for role, email in emails.items()}
            for rid in requests.values():
                state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
                assert state["status"] == "completed", state
        for role in ROLES:  # the helper reads one subject's hold and request, under ADA as its module keys them
            await _failed_at_the_processor({"stack": stack, "pool": pool, "holds": {ADA: holds[role]},
                                            "erasures": {ADA: requests[role]}})
        yield {"stack": stack, "pool": pool, "requests": requests}


@contextlib.asynccontextmanager
async def engine_through(sock: socket.socket, engine: str) -> AsyncIterator[None]:
    """The workflow engine at `engine` (host:port) reached through `sock`'s port: refused while
    `sock` is only bound, as an engine that is down; forwarded from here on, as one back up."""
    host, port = engine.rsplit(":", 1)
    open_writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        open_writers.extend((writer, upstream_writer))
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(forward, sock=sock)
    try:
        yield
    finally:
        server.close()
        for writer in open_writers:
            writer.close()


async def _panel_offers_asking_again(page: Page, attempt: int) -> None:
    row = page.locator(ROW)
    await expect(row.locator("td").first).to_have_text(LABEL)
    await expect(row).to_contain_text(f"{attempt} time")
    await expect(page.get_by_role("button", name=ASK)).to_have_count(1)


async def _asked_once_more(page: Page, pool, rid: str) -> None:
    """Press "Ask … again" on a retry whose sweep never started: the processor is asked (a new
    job, the second attempt), and the page, once it is, shows it asked and no button to ask."""
    await page.get_by_role("button", name=ASK).click()
    await expect(page.locator("#deferred .flash")).to_have_text(
        "The processor is being asked again; reload this page for its answer once it is on record.")
    # Its sweep is under way (or, quicker than the page, has asked): no button to ask once more.
    await expect(page.locator(ROW)).to_contain_text(re.compile(
        r"1 asked again, being sent to the processor now|1 asked, awaiting the processor's confirmation"))
    await expect(page.get_by_role("button", name=ASK)).to_have_count(0)

    async def asked() -> bool:
        return await pool.fetchval(f"SELECT submitted_at IS NOT NULL {DEFERRED}", uuid.UUID(rid))

    await eventually(asked)
    await page.reload()
    await expect(page.locator(ROW)).to_contain_text("1 asked, awaiting the processor's confirmation")
    await expect(page.locator(ROW)).to_contain_text("2 times")
    await expect(page.get_by_role("button", name=ASK)).to_have_count(0)
    await expect(page.get_by_role("button", name="Record as erased")).to_have_count(1)
    timeline = page.locator(".timeline li")
    await expect(timeline.filter(has_text=f"Processor asked again to carry out the deferred erasure ({LABEL})"))\
        .to_have_count(1)
    await expect(timeline.filter(has_text=f"Processor asked to erase what a hold had kept ({LABEL})")).to_have_count(2)


async def _forged(page: Page, path: str, fields: dict[str, str]) -> None:
    """Post a form the page does not offer, with the page's own CSRF token: a tampered page."""
    await page.evaluate("""([path, fields]) => {
        const form = document.createElement('form');
        form.method = 'post';
        form.action = path;
        const token = document.querySelector('input[name=csrf_token]').value;
        for (const [name, value] of Object.entries({...fields, csrf_token: token})) {
            const input = document.createElement('input');
            input.type = 'hidden';
            input.name = name;
            input.value = value;
            form.append(input);
        }
        document.body.append(form);
        form.submit();
    }""", [path, fields])


async def _agent_is_refused(browser, site: str, pool, rid: str) -> None:
    """No panel, no button; a forged "Ask again" or "Record as erased" is refused, nothing done."""
    agent = await signed_in(browser, site, pool, "agent", f"/console/requests/{rid}")
    await expect(agent.get_by_role("heading", level=1)).to_have_text("Erasure request")
    await expect(agent.locator("#deferred")).to_have_count(0)
    await expect(agent.get_by_role("button", name=ASK)).to_have_count(0)
    for action, fields, says in (("retry", {}, "retry needs the compliance role; you are agent"),
                                 ("settle", {"note": "Deleted by their support"},
                                  "settle needs the compliance role; you are agent")):
        await agent.goto(f"{site}/console/requests/{rid}")
        await _forged(agent, f"/console/requests/{rid}/deferred/email_marketing/{action}", fields)
        await expect(agent.get_by_role("heading", level=1)).to_have_text("Forbidden")
        await expect(agent.locator("main")).to_contain_text(says)
    await agent.context.close()


async def test_ask_again_after_the_first_ask_never_reached_the_processor(browser, failed, dev_server, tmp_path,
                                                                         shots):  # noqa: F811
    client, stack, pool = dev_server.client, failed["stack"], failed["pool"]
    before = await fetch_rows(stack.databases["email_marketing"], "SELECT count(*) AS n FROM dsr_requests")

    # Compliance: the API dies once the retry is on record, before the sweep that asks has started.
    rid = failed["requests"]["compliance"]
    sweep = f"sweep-retry-{rid}-email_marketing-2"  # api/erasure_sweeps.py: the retry's sweep
    port = free_port()
    own = stack.settings.model_copy(update={"api_port": port, "public_url": f"http://127.0.0.1:{port}"})
    path = f"/console/requests/{rid}"
    async with live_client(base_url=own.public_url, timeout=30) as http:
        async with dsrflow_process("api", own, client, tmp_path, failpoints="deferred-retried~email_marketing") as first:
            await answering(http, first, tmp_path)
            officer = await signed_in(browser, own.public_url, pool, "compliance", path)
            await expect(officer.locator(ROW)).to_contain_text("1 not erased by the processor: ")
            await _panel_offers_asking_again(officer, 1)
            await shots(officer, "failed")
            await officer.get_by_role("button", name=ASK).click()
            await died(first, tmp_path, role="api")
        assert await pool.fetchval(f"SELECT attempt {DEFERRED} AND submitted_at IS NULL", uuid.UUID(rid)) == 2
        with pytest.raises(RPCError):
            await client.get_workflow_handle(sweep).describe()

        async with build_worker(client, stack.settings, pool), \
                dsrflow_process("api", own, client, tmp_path, failpoints="") as again:
            await answering(http, again, tmp_path)
            await _agent_is_refused(browser, own.public_url, pool, rid)
            with pytest.raises(RPCError):  # the agent's forged "Ask again" started nothing either
                await client.get_workflow_handle(sweep).describe()
            await officer.goto(f"{own.public_url}{path}")  # no answer came: back to the page
            await expect(officer.locator(ROW)).to_contain_text("1 asked again, not yet sent to the processor")
            await _panel_offers_asking_again(officer, 2)
            await shots(officer, "retry-unasked")
            await _asked_once_more(officer, pool, rid)
            await shots(officer, "asked")
            # The processor takes its time: compliance records the erasure as done by other means.
            note = "Their support removed the subscriber by hand and confirmed it by phone (ticket 4471)."
            await officer.get_by_label(f"How {LABEL}'s erasure was carried out").fill(note)
            await officer.get_by_role("button", name="Record as erased").click()
            await expect(officer.locator("#deferred .flash")).to_have_text(
                "Recorded as erased by other means, with your note.")
            await expect(officer.locator(ROW)).to_contain_text("1 recorded by staff as erased by other means")
            await expect(officer.get_by_role("button", name="Record as erased")).to_have_count(0)
            await expect(officer.locator("#notes .note-body")).to_have_text(note)

    # An admin: the workflow engine cannot be reached as they press, then can again.
    rid = failed["requests"]["admin"]
    engine_sock, engine_port = loopback_socket()
    site_sock, site_port = loopback_socket()
    site = f"http://127.0.0.1:{site_port}"
    app = create_app(stack.settings.model_copy(update={
        "public_url": site, "temporal_address": f"127.0.0.1:{engine_port}"}))
    server, served = await serve(app, site_sock)
    try:
        admin = await signed_in(browser, site, pool, "admin", f"/console/requests/{rid}")
        await _panel_offers_asking_again(admin, 1)
        await admin.get_by_role("button", name=ASK).click()
        await expect(admin.locator("#deferred .flash")).to_have_text(
            "Asking again is on record; the daily erasure sweep asks the processor (it could not start now).")
        await expect(admin.locator(ROW)).to_contain_text("1 asked again, not yet sent to the processor")
        await _panel_offers_asking_again(admin, 2)
        await shots(admin, "queued")
        async with build_worker(client, stack.settings, pool), \
                engine_through(engine_sock, client.service_client.config.target_host):
            await _asked_once_more(admin, pool, rid)
            await shots(admin, "asked-once-back")
    finally:
        server.should_exit = True
        await served
        await app.state.dsr.close()

    after = await fetch_rows(stack.databases["email_marketing"], "SELECT count(*) AS n FROM dsr_requests")
    assert after[0]["n"] == before[0]["n"] + 2  # one new job for each subject, no more
