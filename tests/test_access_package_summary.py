"""The package a subject downloads, end to end on the demo systems: its summary is the Art. 15
information about this subject (the systems and categories found for them, recipients by name,
the profiling statement as the CRM holds it), and a portability package holds what they provided
and what we observed, never what we derived or inferred (WP242 rev.01)."""

from __future__ import annotations

import asyncio
import html
import io
import json
import re
import zipfile

import asyncpg
import pytest

from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import staff_headers, text_of, wait_for_letter
from workers.dsr_worker import build_worker


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as running:
        yield running


async def _package(http, pool, client, mail_sink, kind: str, email: str, regime: str = "gdpr") -> zipfile.ZipFile:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"),
                        json={"type": kind, "subject": {"email": email}, "identity_attested": True, "regime": regime})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    state = await asyncio.wait_for(client.get_workflow_handle(workflow_id_for(rid)).result(), 90)
    assert state["status"] == "completed"
    link = re.search(r"/portal/packages/[0-9a-f]{64}", text_of(await wait_for_letter(mail_sink, rid, "response")))
    download = await http.post(link.group(0))  # the page's button
    assert download.status_code == 200, download.text
    return zipfile.ZipFile(io.BytesIO(download.content))


def _summary(archive: zipfile.ZipFile) -> str:
    """The summary as its reader sees it: text without tags, entities decoded, spaces collapsed."""
    page = archive.read("summary.html").decode()
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _systems(archive: zipfile.ZipFile) -> list[str]:
    return [html.unescape(h) for h in re.findall(r"<h3>(.*?)</h3>", archive.read("summary.html").decode())]


async def _crm(stack, sql: str, *args) -> None:
    conn = await asyncpg.connect(stack.databases["crm"])
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_access_summary_tells_each_subject_about_their_own_data(stack, pool, dev_server, mail_sink):
    # Grace objected to profiling: the CRM records it and keeps no segment for her.
    await _crm(stack, "UPDATE contacts SET profiling_opt_out = true, engagement_segment = NULL WHERE email = $1",
               "grace@example.com")
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        ada, grace, tracked = await asyncio.gather(*(
            _package(http, pool, dev_server.client, mail_sink, "access", email)
            for email in ("ada@example.com", "grace@example.com", "tracked@example.com")))

    # Ada is in every system: each is listed with the categories found there and their counts.
    assert _systems(ada) == ["Billing (customers, invoices, payments, mandates)", "CRM (contacts, support requests, live chat)",
                             "E-mail marketing (newsletters)", "Website analytics (users and page events)"]
    summary = _summary(ada)
    assert "Log files (IP address, device ID and similar) (page events) 40" in summary
    assert "Observed from your use of our Website and Service: ip, device_id" in summary
    assert "Inferred by us about you: engagement_segment" in summary
    # Only the categories found for her: nothing in the policy's demo access or website
    # functionality categories is held about her, so neither is listed.
    assert "Demo access" not in summary and "Website functionality" not in summary
    # Recipients by name where the policy knows it (CJEU C-154/21), otherwise by kind.
    assert "Google Ireland Limited, Gordon House, Barrow Street, Dublin 4, Ireland (Google Analytics (Google))" in summary
    assert ("Financial services and accounting provider We name the kind of provider here; write to "
            "privacy@onetagger.com and we will tell you which company it is.") in summary
    assert "Survey service provider" not in summary  # receives website functionality only
    # Art. 15(1)(h), as the CRM holds it for her: profiled, with the segment it computed.
    assert "We take no decision about you based solely on automated processing" in summary
    assert "We profile you. Our CRM places each contact in an engagement segment" in summary
    assert "The profile we hold about you today: engagement segment: active user." in summary

    summary = _summary(grace)
    assert "You objected to profiling, and our records show it: we keep no profile of you" in summary
    assert "We profile you" not in summary and "engagement segment:" not in summary
    assert "(mandates)" in summary and "(invoices)" not in summary  # she signed a mandate, was never invoiced

    # Tracy is only in analytics: no other system is presented as holding her data.
    assert _systems(tracked) == ["Website analytics (users and page events)"]
    summary = _summary(tracked)
    assert "CRM" not in summary and "Billing" not in summary and "Communications and support" not in summary
    # Recipients of the categories found for her only: none of communications or website use.
    assert "Work management provider" not in summary and "Survey service provider" not in summary
    assert "Google Ireland Limited" in summary
    assert "We keep no profile of you: we found no record about you in the system where profiles are kept." in summary
    assert {n.split("/")[0] for n in tracked.namelist() if n != "summary.html"} == {"analytics"}


async def test_portability_package_holds_provided_and_observed_data_only(stack, pool, dev_server, mail_sink):
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        archive = await _package(http, pool, dev_server.client, mail_sink, "portability", "ada@example.com")
    names = archive.namelist()
    records = {n: json.loads(archive.read(n)) for n in names if n.endswith(".json")}
    # What she did on the Website is observed data, hers to take along: all 40 page events.
    events = records["analytics/cookies_analytics/page_events.json"]
    assert len(events) == 40 and all(e["url"].startswith("https://onetagger.com") for e in events)
    assert len(records["analytics/logs/page_events.json"]) == 40
    assert any(n.startswith("email_marketing/marketing/campaign_activity") for n in names)
    # What we derived or inferred never is: staff notes, her customer number, the CRM's segment.
    columns = {c for rows in records.values() for row in rows for c in row}
    assert {"email", "first_name", "last_seen_at", "ip", "occurred_at"} <= columns
    assert not columns & {"notes", "customer_number", "engagement_segment"}
    csv_headers = {c for n in names if n.endswith(".csv") for c in archive.read(n).decode().splitlines()[0].split(",")}
    assert not csv_headers & {"notes", "customer_number", "engagement_segment"}
    summary = _summary(archive)
    assert "the data we observed from your use of our Website and Service" in summary
    assert "The profile itself is inferred by us, so it is not part of this portable copy" in summary
    assert "Inferred by us" not in summary and "Derived by us" not in summary


async def test_the_summary_names_the_authority_of_the_requests_regime(stack, pool, dev_server, mail_sink):
    """A UK GDPR request's copy names the ICO, never the Belgian authority (policy `remedies`)."""
    async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        archive = await _package(http, pool, dev_server.client, mail_sink, "access", "ada@example.com", "uk_gdpr")
    summary = _summary(archive)
    assert "You may complain to the Information Commissioner: Information Commissioner's Office" in summary
    assert "Gegevensbeschermingsautoriteit" not in summary
