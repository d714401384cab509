"""The request page's "Workflow in the Temporal UI" link, pressed in a real browser (Debian's
Chromium) by each role that sees it (compliance and admins: the UI shows the history decoded
through the codec endpoint, which is theirs): it must open the request's workflow in the Temporal
Web UI, not a page of the UI that knows no such workflow. An agent is shown no link. The suite's dev server runs without its
UI, so this module starts one with it (as `make run` does: devstack/temporal_server.py) and the
site's link points there. Same setup as tests/test_browser.py otherwise."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect
from temporalio.testing import WorkflowEnvironment

from devstack.processes import find_binary, free_port
from dsrflow.crypto.keys import load_keyring
from dsrflow.infra.temporal_client import build_data_converter
from schemas.workflow import workflow_id_for
from tests.test_browser import CHROMIUM, open_request, served_site, signed_in
from workflows.search_attributes import SEARCH_ATTRIBUTES

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@pytest.fixture
async def ui_site(settings, pool) -> AsyncIterator[str]:
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), ui=True, ui_port=ui_port,
        data_converter=build_data_converter(load_keyring(settings)), search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--ui-disable-news-fetch"])
    try:
        with_ui = settings.model_copy(update={"temporal_ui_public_url": f"http://127.0.0.1:{ui_port}"})
        async with served_site(with_ui, pool, env.client, f"ui-{uuid.uuid4().hex[:8]}") as url:
            yield url
    finally:
        await env.shutdown()


async def test_compliance_and_admins_open_the_requests_workflow_in_the_temporal_ui_agents_see_no_link(browser, ui_site, pool):
    rid = await open_request(ui_site, pool)
    page = await signed_in(browser, ui_site, pool, "agent", f"/console/requests/{rid}")
    await expect(page.locator("#reference")).to_be_visible()
    await expect(page.get_by_role("link", name="Workflow in the Temporal UI")).to_have_count(0)
    await page.context.close()
    for role in ("compliance", "admin"):
        page = await signed_in(browser, ui_site, pool, role, f"/console/requests/{rid}")
        await page.get_by_role("link", name="Workflow in the Temporal UI").click()
        await expect(page).to_have_url(re.compile(rf"/namespaces/default/workflows/{workflow_id_for(rid)}(/|$)"))
        # The UI's page of this workflow's latest run: its id, running, its type.
        await expect(page.get_by_text(workflow_id_for(rid)).first).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("Running").first).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("DataSubjectRequestWorkflow").first).to_be_visible()
        await page.context.close()
