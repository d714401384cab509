"""Controls no other browser test presses, pressed in a real browser (Debian's Chromium): the
approval form's "download it for review" link (compliance and an admin; never shown to an agent),
the console's new request form with "I have authenticated the subject" ticked and sent with a
mistake first, an agent reading a sent letter on the request page, the portal's error summary and
its "Download your data" for a portability package, and the processor page's "Confirm that the
request has been carried out". Same setup as tests/test_browser.py."""

from __future__ import annotations

import asyncio
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Download, Page, expect

from activities.connectors.manual_email import external_id_for
from api.csrf import SESSION_COOKIE
from dsrflow.domain.references import short_reference
from dsrflow.stores.staff_tokens import Staff, session_staff
from policy.model import DEFAULT_POLICY
from schemas.workflow import workflow_id_for
from tests.support import eventually, letters_for, text_of, unique_email, wait_for_letter
from tests.test_browser import CHROMIUM, open_request, served_site, shots, signed_in, site  # noqa: F401 (fixtures)
from tests.test_browser_actions import POLLS, SLOW, letters
from tests.test_browser_console import UUID
from tests.test_manual_email import _LINK, stack  # noqa: F401 (fixture: surveys asked by e-mail)
from tests.yaml_files import dump_yaml, read_yaml
from workers.dsr_worker import build_worker

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
COUNT_REQUESTS = "SELECT count(*) FROM dsr_requests"


@pytest.fixture
async def gated_site(settings, lifecycle_policy, pool, dev_server, task_queue, tmp_path) -> AsyncIterator[str]:
    """The site under the shipped policy's release gate (access, portability, rectification and
    attested erasures wait for compliance), without its systems, like the lifecycle policy."""
    content = read_yaml(lifecycle_policy)
    content["approval_required_for"] = read_yaml(DEFAULT_POLICY)["approval_required_for"]
    path = tmp_path / "gated-policy.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    gated = settings.model_copy(update={"policy_path": path})
    async with served_site(gated, pool, dev_server.client, task_queue) as url:
        yield url


async def staff_of(page: Page, pool) -> Staff:
    """Who the page's browser is signed in as: the session its cookie names."""
    session = next(c["value"] for c in await page.context.cookies() if c["name"] == SESSION_COOKIE)
    staff = await session_staff(pool, session, used=False)
    assert staff is not None, "the page's session has ended"
    return staff


def zip_names(download_path: Path) -> list[str]:
    with zipfile.ZipFile(download_path) as archive:
        return archive.namelist()


async def saved(download: Download, directory: Path) -> Path:
    path = directory / download.suggested_filename
    await download.save_as(path)
    return path


async def downloaded_for_review(page: Page, directory: Path) -> tuple[str, list[str]]:
    """Press the approval form's "download it for review": the file's name and the zip's entries.
    A poll swapping the region between finding the link and clicking it would click nothing."""
    await page.route(POLLS, lambda route: route.abort())
    async with page.expect_download() as download:
        await page.get_by_role("link", name="download it for review").click()
    await page.unroute(POLLS)
    got = await download.value
    return got.suggested_filename, zip_names(await saved(got, directory))


async def test_compliance_and_an_admin_download_the_package_for_review_and_an_agent_cannot(
        browser, gated_site, pool, tmp_path, shots):  # noqa: F811
    url = gated_site
    rid = await open_request(url, pool, type="access", identity_attested=True)
    reviewers = []
    for role in ("compliance", "admin"):
        page = await signed_in(browser, url, pool, role, f"/console/requests/{rid}")
        await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
        name, entries = await downloaded_for_review(page, tmp_path)
        assert name == f"access-{rid[:8]}-review.zip" and "summary.html" in entries
        reviewers.append((await staff_of(page, pool)).actor)
        # The page's own poll shows the review on the timeline, by this member of staff's name.
        reviewed = page.locator(".timeline li", has_text=f"Package downloaded for review by browser {role}")
        await expect(reviewed).to_have_count(1, timeout=SLOW)
        await shots(page, f"{role}-reviewed")
        await page.context.close()
    on_record = await pool.fetch("SELECT actor FROM audit_events WHERE request_id = $1 "
                                 "AND event_type = 'package.reviewed' ORDER BY seq", rid)
    assert [r["actor"] for r in on_record] == reviewers

    agent = await signed_in(browser, url, pool, "agent", f"/console/requests/{rid}")
    await expect(agent.locator("#status")).to_contain_text("awaiting approval")
    await expect(agent.locator('#live form[hx-post$="/cancel"]')).to_be_visible()  # the actions are drawn
    await expect(agent.get_by_role("link", name="download it for review")).to_have_count(0)
    # Nor does the address typed by hand give an agent the package: refused, and nothing recorded.
    refused = await agent.request.get(f"{url}/v1/requests/{rid}/package")
    assert refused.status == 403, await refused.text()
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1 "
                               "AND event_type = 'package.reviewed'", rid) == len(reviewers)
    await shots(agent, "agent")


async def test_agent_opens_an_attested_erasure_on_the_form_and_reads_its_acknowledgement(
        browser, gated_site, pool, mail_sink, shots):  # noqa: F811
    url = gated_site
    email = unique_email("attested")
    page = await signed_in(browser, url, pool, "agent", "/console/requests/new")
    await page.get_by_label("Erasure (right to be forgotten)").check()
    await page.get_by_label("Subject's e-mail address").fill(email.replace("@", " at "))  # a slip
    await page.get_by_label("I have authenticated the subject").check()
    before = await pool.fetchval(COUNT_REQUESTS)
    await page.get_by_role("button", name="Open the request").click()

    # Refused, said at the top and beside the field, with what was typed and ticked kept.
    summary = page.locator(".error-summary")
    await expect(summary).to_contain_text("Please correct the following")
    await expect(summary.get_by_role("link")).to_have_text(re.compile("not a valid email address"))
    await expect(page.locator("#email-error")).to_contain_text("not a valid email address")
    field = page.get_by_label("Subject's e-mail address")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("I have authenticated the subject")).to_be_checked()
    await expect(page.get_by_label("Erasure (right to be forgotten)")).to_be_checked()
    await shots(page, "refused")
    assert await pool.fetchval(COUNT_REQUESTS) == before

    await summary.get_by_role("link").click()  # the summary leads to the field
    await expect(field).to_be_focused()
    await field.fill(email)
    await page.get_by_role("button", name="Open the request").click()
    await expect(page).to_have_url(re.compile(rf"/console/requests/{UUID}$"))
    rid = page.url.rsplit("/", 1)[1]
    # The default gate holds an erasure staff attested for compliance; no code goes to the subject.
    await expect(page.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
    await expect(page.locator("#live")).to_contain_text("attested by browser agent")  # by name
    assert await pool.fetchval(COUNT_REQUESTS) == before + 1
    row = await pool.fetchrow("SELECT subject_email, request_type FROM dsr_requests WHERE id = $1", rid)
    assert dict(row) == {"subject_email": email, "request_type": "erasure"}
    await wait_for_letter(mail_sink, rid, "acknowledgement")
    assert letters_for(mail_sink, rid, "verification") == []

    # The letter as the subject read it, opened from the request page.
    acknowledgement = page.locator("#letters details", has=page.locator("summary", has_text="acknowledgement:"))
    await expect(letters(page)).to_contain_text(short_reference(rid), timeout=SLOW)
    await acknowledgement.locator("summary").click()
    body = acknowledgement.frame_locator("iframe").locator("body")
    await expect(body).to_contain_text("We have received your request")
    await expect(body).to_contain_text("You do not need to do anything else at this stage.")  # attested: no code
    await expect(body).not_to_contain_text("confirmation code")
    await shots(page, "acknowledgement")


async def test_the_portal_refuses_a_bad_form_and_hands_over_a_portability_package(
        browser, site, pool, mail_sink, tmp_path, shots):  # noqa: F811
    subject = await (await browser.new_context()).new_page()
    await subject.goto(f"{site}/portal")
    await subject.get_by_label("Your e-mail address").fill("not-an-address")
    before = await pool.fetchval(COUNT_REQUESTS)
    await subject.get_by_role("button", name="Send my request").click()
    summary = subject.locator(".error-summary")
    await expect(summary).to_contain_text("Please correct the following")
    await expect(summary.get_by_role("link")).to_have_text(
        ["Choose what you are asking us to do.", "Enter your e-mail address, like name@example.com."])
    email = subject.get_by_label("Your e-mail address")
    await expect(email).to_have_value("not-an-address")
    await expect(email).to_have_attribute("aria-invalid", "true")
    await summary.get_by_role("link", name="Enter your e-mail address").click()
    await expect(email).to_be_focused()
    await shots(subject, "refused")
    assert await pool.fetchval(COUNT_REQUESTS) == before

    # Portability has no gate here: its response carries the package's link.
    rid = await open_request(site, pool, type="portability", identity_attested=True)
    letter = text_of(await wait_for_letter(mail_sink, rid, "response", timeout=60))
    package_link = re.search(r"http://\S+/portal/packages/[0-9a-f]{64}", letter)
    assert package_link, letter
    await subject.goto(package_link.group(0))
    await expect(subject.get_by_role("heading", level=1)).to_have_text("Your data")
    await expect(subject.locator("main")).to_contain_text("in a format you can take to another service")
    downloads = "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event_type = 'package.downloaded'"
    assert await pool.fetchval(downloads, rid) == 0  # opening the page downloads nothing
    async with subject.expect_download() as download:
        await subject.get_by_role("button", name="Download your data").click()
    got = await download.value
    assert got.suggested_filename.startswith("portability-"), got.suggested_filename
    assert "summary.html" in zip_names(await saved(got, tmp_path))
    assert await pool.fetchval(downloads, rid) == 1
    await shots(subject, "package")


async def test_a_processor_confirms_on_its_links_page(browser, stack, pool, dev_server, mail_sink, shots):  # noqa: F811
    async with build_worker(dev_server.client, stack.settings, pool):
        rid = await open_request(stack.api_url, pool, identity_attested=True, subject={"email": "grace@example.com"})
        asking = text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))
        found = _LINK.search(asking)
        assert found, asking
        link, token = found.groups()

        async def asked() -> bool:
            # The e-mail is out a moment before its rows: the page looks up the link's task, and
            # the confirmation tells the task once it waits for the processor.
            return await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE external_id = $1",
                                       external_id_for(token)) == 1 and \
                await pool.fetchval("SELECT status FROM system_tasks WHERE request_id = $1 AND system = 'surveys'",
                                    rid) == "pending"

        await eventually(asked)
        processor = await (await browser.new_context()).new_page()
        await processor.goto(link)
        heading = processor.get_by_role("heading", level=1)
        await expect(heading).to_have_text("Confirm a data-subject request")
        await processor.get_by_label("Note (optional)").fill("Deleted from our survey panel, ticket 31")
        await shots(processor, "asked")
        await processor.get_by_role("button", name="Confirm that the request has been carried out").click()
        await expect(heading).to_have_text("Thank you: confirmation recorded")
        await expect(processor.locator(".ok")).to_have_text("We have recorded that the request has been carried out.")
        await shots(processor, "confirmed")

        state = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 60)
        assert state["status"] == "completed", state
        assert {r["system"]: r["status"] for r in state["results"]}["surveys"] == "done"
        confirmed = await pool.fetch("SELECT actor FROM audit_events WHERE request_id = $1 "
                                     "AND event_type = 'processor.confirmed'", rid)
        assert [e["actor"] for e in confirmed] == ["processor:surveys"]
        assert await pool.fetchval("SELECT confirmation_note FROM manual_tasks WHERE external_id = $1",
                                   external_id_for(token)) == "Deleted from our survey panel, ticket 31"
        await processor.goto(link)  # the link again: nothing left to press
        await expect(heading).to_have_text("Already confirmed")
        await expect(processor.get_by_role("button")).to_have_count(0)


async def test_compliance_who_attested_the_identity_is_not_offered_the_approval(
        browser, gated_site, pool, shots):  # noqa: F811
    """The approval is the second look at what one member of staff vouched for: the officer who
    attested the subject's identity reads why they cannot approve; another officer approves."""
    url = gated_site
    attester = await signed_in(browser, url, pool, "compliance", "/console/requests/new")
    await attester.get_by_label("Erasure (right to be forgotten)").check()
    await attester.get_by_label("Subject's e-mail address").fill(unique_email("second-look"))
    await attester.get_by_label("I have authenticated the subject").check()
    await attester.get_by_role("button", name="Open the request").click()
    await expect(attester).to_have_url(re.compile(rf"/console/requests/{UUID}$"))
    rid = attester.url.rsplit("/", 1)[1]
    await expect(attester.locator("#status")).to_contain_text("awaiting approval", timeout=SLOW)
    await expect(attester.locator("#approve-not-yours")).to_contain_text("You attested this subject's identity")
    await expect(attester.get_by_role("button", name="Approve")).to_have_count(0)
    await shots(attester, "attester")

    second = await signed_in(browser, url, pool, "compliance", f"/console/requests/{rid}")
    await expect(second.locator("#live")).to_contain_text("attested by browser compliance")
    await second.get_by_label("Note (optional, kept with the approval)").fill("Identity checked on the call log")
    await second.get_by_role("button", name="Approve").click()
    await expect(second.locator(".flash")).to_contain_text("Release approved", timeout=SLOW)
    approvals = await pool.fetch("SELECT actor FROM audit_events WHERE request_id = $1 "
                                 "AND event_type = 'approval.granted'", rid)
    assert [a["actor"] for a in approvals] == [(await staff_of(second, pool)).actor]
    await shots(second, "approved")
