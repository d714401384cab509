"""Processors without an API in access packages, end to end on the real stack: the survey provider
(connector manual_email) is asked for its export, the response waits for it, the provider uploads
its files on the signed link's page (checked by content, size-limited, stored encrypted), and the
package holds them; a provider that never sends its export is resolved by staff and the letter
names it as missing. What the content checks accept file by file, and how a processor's CSV is
copied into the package, without the stack: tests/test_processor_export_files.py."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import expect

from api.callbacks import processor_uploads
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.support import letters_for, staff_headers, text_of, wait_for_letter
from tests.test_browser import CHROMIUM, shots  # noqa: F401 (fixtures)
from workers.dsr_worker import build_worker
from workflows.dsr import DataSubjectRequestWorkflow

SURVEYS_CONTACT = "privacy@surveys.example"
_LINK = re.compile(r"http://\S+(/v1/callbacks/manual/[0-9a-f]{64})")
_PACKAGE = re.compile(r"/portal/packages/[0-9a-f]{64}")
MARKER = "ada-survey-answer-7f3a"  # in the uploaded file only: must never be found on disk in clear
ANSWERS = f"question,answer\nfavourite feature,{MARKER}\n".encode()
PROFILE = json.dumps({"respondent": "ada@example.com", "panel": "2026-Q1"}).encode()
# Small limits, so the oversize case sends 1.2 MB rather than 26.
LIMITS = {"processor_exports": {"max_file_mb": 1, "max_total_mb": 2, "kinds": ["json", "csv", "pdf", "text", "zip"],
                                "link_days": 30}}


@pytest.fixture
def surveys_contact(monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", SURVEYS_CONTACT)


async def _open_access(http, pool) -> str:
    r = await http.post("/v1/requests", headers=await staff_headers(pool, "agent"), json={
        "identity_attested": True, "type": "access", "subject": {"email": "ada@example.com"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _surveys_status(handle) -> str | None:
    state = await handle.query(DataSubjectRequestWorkflow.state)
    return next((r.status for r in state.results if r.system == "surveys"), None)


async def _until(check, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{check.__name__} still false after {timeout}s"
        await asyncio.sleep(0.2)


def _uploads(home: Path) -> set[Path]:
    directory = home.resolve() / "uploads"
    return set(directory.iterdir()) if directory.exists() else set()


async def _package(http, mail_sink, rid: str) -> tuple[str, zipfile.ZipFile]:
    letter = text_of(await wait_for_letter(mail_sink, rid, "response", 60))
    download = await http.post(_PACKAGE.search(letter).group(0))
    assert download.status_code == 200, download.text
    return letter, zipfile.ZipFile(io.BytesIO(download.content))


async def test_access_waits_for_the_processors_upload_and_packages_its_files(
        postgres, settings, pool, dev_server, mail_sink, tmp_path, surveys_contact):
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",),
                            policy_updates=LIMITS) as stack, \
            build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open_access(http, pool)
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
        asked = await wait_for_letter(mail_sink, rid, "processor_request", 60)
        assert asked["To"] == f"Privacy team <{SURVEYS_CONTACT}>" and "send your export" in asked["Subject"]
        assert "upload the files" in text_of(asked) and "at most 1 MB a file" in text_of(asked)
        path = _LINK.search(text_of(asked)).group(1)

        async def waiting_for_surveys() -> bool:
            return await _surveys_status(handle) == "pending"

        await _until(waiting_for_surveys)
        await asyncio.sleep(1)
        # The response waits for the processor's export.
        assert (await handle.query(DataSubjectRequestWorkflow.state)).status == "in_progress"
        assert letters_for(mail_sink, rid, "response") == []

        page = await http.get(path)
        assert page.status_code == 200
        assert 'enctype="multipart/form-data"' in page.text and 'type="file"' in page.text
        assert "ada@example.com" not in page.text and page.headers["cache-control"] == "no-store"
        for wrong in (f"/v1/callbacks/manual/{'0' * 64}", "/v1/callbacks/manual/not-a-token"):
            assert (await http.get(wrong)).status_code == 404
            assert (await http.post(wrong, files=[("files", ("a.csv", ANSWERS, "text/csv"))])).status_code == 404

        before = _uploads(stack.settings.home)
        refused = {
            "HTML": [("files", ("answers.csv", b"<html><script>alert(1)</script></html>", "text/csv"))],
            "executable": [("files", ("answers.txt", b"MZ\x90\x00\x03" + bytes(200), "text/plain"))],
            "extension": [("files", ("setup.exe", b"hello", "application/octet-stream"))],
            "pdf": [("files", ("scan.pdf", b"not a pdf at all", "application/pdf"))],
            "zip": [("files", ("all.zip", _zip({"a.csv": b"x,y\n", "page.html": b"<html></html>"}),
                               "application/zip"))],
            "zip slip": [("files", ("all.zip", _zip({"a.csv": b"x,y\n", "../../x.csv": b"x,y\n"}),
                                    "application/zip"))],
        }
        messages = {
            "HTML": "answers.csv: looks like HTML or other markup",
            "executable": "answers.txt: looks like an executable program",
            "extension": "setup.exe: only .json, .csv, .pdf, .txt, .zip files are accepted",
            "pdf": "scan.pdf: is not a PDF",
            "zip": "all.zip: page.html: only .json, .csv, .pdf, .txt files are accepted inside a ZIP archive",
            "zip slip": "all.zip: ../../x.csv: its name must be a relative path without a leading /",
        }
        for case, files in refused.items():
            # A good file sent with a bad one: nothing of the upload is kept.
            r = await http.post(path, files=[("files", ("profile.json", PROFILE, "application/json")), *files])
            assert r.status_code == 422, (case, r.status_code, r.text)
            assert messages[case] in r.text, (case, r.text)
        nothing = await http.post(path, data={"note": "here you go"},
                                  files=[("files", ("", b"", "application/octet-stream"))])
        assert nothing.status_code == 422 and "Choose at least one file" in nothing.text
        garbled = b"\r\n--xyz\r\nContent-Disposition: form-data\r\r\n\x00"
        for body, content_type in ((b"note=hi", "application/x-www-form-urlencoded"),
                                   (garbled, "multipart/form-data; boundary=xyz")):
            malformed = await http.post(path, content=body, headers={"content-type": content_type})
            assert malformed.status_code == 422, malformed.text
        big = await http.post(path, files=[("files", ("answers.csv", b"a,b\n" + b"1,2\n" * 300_000, "text/csv"))])
        assert big.status_code == 413 and "larger than the limit of 1 MB" in big.text
        assert _uploads(stack.settings.home) == before  # refused uploads leave no file behind
        assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 0
        assert await _surveys_status(handle) == "pending"

        sent = await http.post(path, data={"note": "Survey answers and panel profile."}, files=[
            ("files", ("answers.csv", ANSWERS, "text/csv")), ("files", ("profile.json", PROFILE, "application/json"))])
        assert sent.status_code == 200, sent.text
        assert "export received" in sent.text and "answers.csv" in sent.text

        rows = {r["filename"]: r for r in await pool.fetch(
            "SELECT * FROM processor_exports WHERE request_id = $1", rid)}
        assert set(rows) == {"answers.csv", "profile.json"}
        assert rows["answers.csv"]["sha256"] == hashlib.sha256(ANSWERS).hexdigest()
        assert (rows["answers.csv"]["size_bytes"], rows["answers.csv"]["media_type"]) == (len(ANSWERS), "text/csv")
        assert rows["profile.json"]["media_type"] == "application/json"
        for row in rows.values():  # stored encrypted: the content is nowhere in clear on disk
            stored = (stack.settings.home.resolve() / row["path"]).read_bytes()
            assert MARKER.encode() not in stored and b"panel" not in stored and b"question" not in stored
        assert not any(MARKER.encode() in p.read_bytes() for p in _uploads(stack.settings.home))

        state = await asyncio.wait_for(handle.result(), 60)
        assert state["status"] == "completed", state
        surveys = next(r for r in state["results"] if r["system"] == "surveys")
        # What staff read of the task, its time in the controller's timezone as every console time.
        assert re.search(r"sent its export \(2 files\) on \d{4}-\d\d-\d\d \d\d:\d\d CES?T$", surveys["message"]), surveys
        letter, archive = await _package(http, mail_sink, rid)
        assert "Survey service provider: copy of your data, as this processor sent it – included in your " \
               "package (2 files)" in letter
        assert "for each of our systems" in letter and "does not include" not in letter
        assert archive.read("surveys/files/answers.csv") == ANSWERS
        assert archive.read("surveys/files/profile.json") == PROFILE
        assert any(n.startswith("crm/") for n in archive.namelist())  # next to the API systems' data
        summary = archive.read("summary.html").decode()
        assert "Files our processors sent us" in summary and "surveys/files/answers.csv" in summary
        assert hashlib.sha256(ANSWERS).hexdigest() in summary and "does not include" not in summary

        again = await http.post(path, files=[("files", ("more.csv", ANSWERS, "text/csv"))])
        assert again.status_code == 409 and "already been answered" in again.text
        assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 2
        events = [e["event_type"] for e in await pool.fetch(
            "SELECT event_type FROM audit_events WHERE request_id = $1", rid)]
        assert events.count("processor.export_received") == 1


async def test_an_upload_whose_commit_went_unanswered_keeps_its_files(
        postgres, settings, pool, dev_server, mail_sink, tmp_path, surveys_contact, monkeypatch):
    """The connection dies after the COMMIT reached PostgreSQL and before its answer came back:
    the rows stand, so the files they name must too. Before, the files were removed, and the
    package, whose rows named them, failed to build on every retry."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack, \
            build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open_access(http, pool)
        path = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).group(1)
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))

        async def waiting_for_surveys() -> bool:  # the e-mail is on record, not only in the sink
            return await _surveys_status(handle) == "pending"

        await _until(waiting_for_surveys)
        committed = processor_uploads.commit_export

        async def answer_lost(transaction) -> None:
            await committed(transaction)
            raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")

        monkeypatch.setattr(processor_uploads, "commit_export", answer_lost)
        lost = await http.post(path, files=[("files", ("answers.csv", ANSWERS, "text/csv"))])
        assert lost.status_code >= 500, lost.text
        monkeypatch.setattr(processor_uploads, "commit_export", committed)
        row = await pool.fetchrow("SELECT path FROM processor_exports WHERE request_id = $1", rid)
        assert (stack.settings.home.resolve() / row["path"]).exists()

        # The processor's page showed an error: it sends again, which tells the task.
        again = await http.post(path, files=[("files", ("answers.csv", ANSWERS, "text/csv"))])
        assert again.status_code == 409 and "already been answered" in again.text
        state = await asyncio.wait_for(handle.result(), 60)
        assert state["status"] == "completed", state
        _, archive = await _package(http, mail_sink, rid)
        assert archive.read("surveys/files/answers.csv") == ANSWERS


async def test_staff_resolve_a_processor_that_never_sent_its_export_and_the_letter_names_it(
        postgres, settings, pool, time_skipping, mail_sink, tmp_path, surveys_contact):
    env = time_skipping
    async with fanout_stack(postgres, settings, env.client, tmp_path, keep_manual=("surveys",)) as stack, \
            build_worker(env.client, stack.settings, pool), api(stack) as http:
        rid = await _open_access(http, pool)
        handle = env.client.get_workflow_handle(workflow_id_for(rid))
        path = _LINK.search(text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))).group(1)

        async def waiting_for_surveys() -> bool:
            return await _surveys_status(handle) == "pending"

        await _until(waiting_for_surveys)
        await env.sleep(timedelta(days=14, hours=1))  # the system's completion timeout passes

        async def flagged() -> bool:
            return await _surveys_status(handle) == "needs_attention"

        await _until(flagged)
        assert letters_for(mail_sink, rid, "response") == []  # still held back, for staff
        assert "at our survey service provider" in text_of(await wait_for_letter(mail_sink, rid, "staff_alert"))

        # The link takes files for link_days after our last e-mail about it.
        await pool.execute("UPDATE manual_tasks SET sent_at = now() - interval '31 days' WHERE request_id = $1", rid)
        expired = await http.get(path)
        assert expired.status_code == 403 and "This link has expired" in expired.text
        late = await http.post(path, files=[("files", ("answers.csv", ANSWERS, "text/csv"))])
        assert late.status_code == 403

        r = await http.post(f"/v1/requests/{rid}/resolve-task", headers=await staff_headers(pool, "compliance"),
                            json={"system": "surveys", "note": "Provider did not answer; chased twice by phone"})
        assert r.status_code == 200, r.text
        state = await asyncio.wait_for(handle.result(), 120)
        assert state["status"] == "completed", state
        letter, archive = await _package(http, mail_sink, rid)
        assert "except for the data named under “What your download does not include”" in letter
        assert "Survey service provider: this processor of ours did not send us the copy of your data it " \
               "holds, so we could not include it." in letter
        assert "for each of our systems" not in letter and "chased" not in letter
        assert not any(n.startswith("surveys/") for n in archive.namelist())
        summary = archive.read("summary.html").decode()
        assert "What this copy does not include" in summary and "Survey service provider" in summary

        closed = await http.post(path, files=[("files", ("answers.csv", ANSWERS, "text/csv"))])
        assert closed.status_code == 403 and "request it belongs to is closed" in closed.text
        assert await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", rid) == 0
        built = await pool.fetchval("SELECT data FROM audit_events WHERE request_id = $1 "
                                    "AND event_type = 'package.built'", rid)
        assert built["missing"] == {"surveys": "not_provided"}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
async def test_the_processor_sends_its_export_with_the_pages_form_in_a_browser(
        postgres, settings, pool, dev_server, mail_sink, tmp_path, surveys_contact, browser, shots):  # noqa: F811
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path, keep_manual=("surveys",)) as stack, \
            build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
        rid = await _open_access(http, pool)
        asked = text_of(await wait_for_letter(mail_sink, rid, "processor_request", 60))
        link = stack.api_url + _LINK.search(asked).group(1)
        page = await browser.new_page()
        try:
            await page.goto(link)
            await expect(page.get_by_role("heading")).to_have_text("Send your export for a data-subject request")
            await shots(page, "upload-form")
            await page.get_by_label("Your export").set_input_files(
                [{"name": "answers.html", "mimeType": "text/html", "buffer": b"<html></html>"}])
            await page.get_by_role("button", name="Send the export").click()
            await expect(page.get_by_role("alert")).to_contain_text("answers.html: only .json, .csv, .pdf, .txt, .zip")
            await shots(page, "refused")
            await page.get_by_label("Your export").set_input_files(
                [{"name": "answers.csv", "mimeType": "text/csv", "buffer": ANSWERS}])
            await page.get_by_label("Note (optional)").fill("Answers to our 2026 panel.")
            await page.get_by_role("button", name="Send the export").click()
            await expect(page.get_by_role("heading")).to_have_text("Thank you: export received")
            await expect(page.locator(".ok")).to_contain_text("We have received 1 file: answers.csv.")
            await shots(page, "received")
        finally:
            await page.close()
        handle = dev_server.client.get_workflow_handle(workflow_id_for(rid))
        assert (await asyncio.wait_for(handle.result(), 60))["status"] == "completed"
        _, archive = await _package(http, mail_sink, rid)
        assert archive.read("surveys/files/answers.csv") == ANSWERS


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
