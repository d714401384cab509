"""Attacks on the links we mail to processors without an API (`/v1/callbacks/manual/{token}`):
a form that makes the API hold what it is sent, and a link used after its request or task is over
(docs/security.md, "Untrusted input and processors").

Each task is the row the manual_email connector writes when its e-mail went out (the e-mail itself
is tests/test_manual_email.py's), on a request stored under the shipped policy, answered by the
real app in-process, against the session's PostgreSQL and Temporal dev server.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.model import DEFAULT_POLICY, load_policy
from schemas.requests import NewRequest
from tests.support import api_client, unique_email
from tests.yaml_files import dump_yaml, read_yaml

KIB = 1024


@pytest.fixture
def surveys_contact(monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")


async def _task(pool, settings, action: str, *, policy_path: Path | None = None,
                request_type: str = "access") -> tuple[str, str]:
    """A request and its processor's task as the connector records it once its e-mail is sent:
    (request id, the link's token)."""
    new = NewRequest(type=request_type, subject={"email": unique_email("manual")}, identity_attested=True)
    row, _ = await create_request(pool, new, loaded_policy=load_policy(policy_path),
                                  secret=load_secret_key(settings), actor="tests", idempotency_key=None)
    token = secrets.token_hex(32)
    await pool.execute(
        """INSERT INTO manual_tasks (request_id, system, action, external_id, contact_email, message_id)
           VALUES ($1, 'surveys', $2, $3, 'privacy@surveys.example', $4)""",
        row["id"], action, hashlib.sha256(token.encode()).hexdigest(), f"<{token[:12]}@dsrflow>")
    return str(row["id"]), token


async def _recorded(pool, request_id: str) -> dict:
    """What a confirmation or an upload would leave behind."""
    return {
        "confirmed": await pool.fetchval("SELECT count(*) FROM manual_tasks WHERE request_id = $1 "
                                         "AND confirmed_at IS NOT NULL", request_id),
        "exports": await pool.fetchval("SELECT count(*) FROM processor_exports WHERE request_id = $1", request_id),
        "events": sorted(r["event_type"] for r in await pool.fetch(
            "SELECT event_type FROM audit_events WHERE request_id = $1", request_id)),
    }


def _uploads(home: Path) -> set[Path]:
    directory = home.resolve() / "uploads"
    return set(directory.rglob("*")) if directory.exists() else set()


def _field(boundary: bytes, name: str, value: bytes) -> bytes:
    return b"--" + boundary + f'\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"


class Stream:
    """A chunked request body (no Content-Length), counting how much of it the server pulled."""

    def __init__(self) -> None:
        self.pulled = 0
        self.total = 0

    async def over(self, chunks: list[bytes]) -> AsyncIterator[bytes]:
        self.total = sum(map(len, chunks))
        for chunk in chunks:
            self.pulled += len(chunk)
            yield chunk


# -- 1. the upload form: fields, headers and bytes that are not files --------------------------


async def test_a_chunked_upload_of_thousands_of_fields_or_endless_headers_is_refused_and_nothing_is_kept(
        settings, pool, dev_server, task_queue, tmp_path, surveys_contact):
    """The audit's attack: 3000 form fields of 16 KB (48 MB, and not one file) sent chunked, so
    that no Content-Length warns the route; 20000 fields of 100 bytes; a part whose header never ends, and parts of many long headers; 8 MB of bytes the
    form parser skips (after the last boundary) on a link whose policy takes 1 MB. Each is
    refused with 413 naming the limit, as soon as the limit is passed (the rest of the body is
    never read), and leaves nothing: no file, no row, no event, the task still open."""
    small = read_yaml(DEFAULT_POLICY)
    small["processor_exports"] = {"max_file_mb": 1, "max_total_mb": 1, "kinds": ["json", "csv"], "link_days": 30}
    small_path = tmp_path / "small-exports.yaml"
    small_path.write_text(dump_yaml(small, sort_keys=False))
    rid, token = await _task(pool, settings, "access")
    small_rid, small_token = await _task(pool, settings, "access", policy_path=small_path)
    boundary = b"dsrflow-attack"
    content_type = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    before = {rid: await _recorded(pool, rid), small_rid: await _recorded(pool, small_rid)}
    files_before = _uploads(settings.home)

    end = b"--" + boundary + b"--\r\n"
    fields, small_fields = Stream(), Stream()
    many = [_field(boundary, f"f{i}", b"x" * 16_000) for i in range(3000)] + [end]
    many_small = [_field(boundary, f"f{i}", b"x" * 100) for i in range(20_000)] + [end]
    endless = Stream()
    header = [b"--" + boundary + b"\r\nX-Junk: "] + [b"a" * 64 * KIB] * 128  # 8 MB of one header value
    # Header lines as long as the form parser takes (4 KB), as many as it takes: ours stops them.
    headers = Stream()
    long_headers = [b"--" + boundary + b"\r\n" + b"".join(b"X-Junk-%d: %s\r\n" % (i, b"h" * 4000) for i in range(6))
                    + b'Content-Disposition: form-data; name="note"\r\n\r\nhi\r\n'] * 50 + [end]
    skipped = Stream()
    epilogue = [_field(boundary, "no_data", b"1"), b"--" + boundary + b"--\r\n"] + [b"p" * 64 * KIB] * 128

    async with api_client(settings, dev_server.client, task_queue) as http:
        too_many = await http.post(f"/v1/callbacks/manual/{token}", content=fields.over(many), headers=content_type)
        too_many_small = await http.post(f"/v1/callbacks/manual/{token}", content=small_fields.over(many_small),
                                         headers=content_type)
        too_long = await http.post(f"/v1/callbacks/manual/{token}", content=endless.over(header), headers=content_type)
        many_headers = await http.post(f"/v1/callbacks/manual/{token}", content=headers.over(long_headers),
                                       headers=content_type)
        too_big = await http.post(f"/v1/callbacks/manual/{small_token}", content=skipped.over(epilogue),
                                  headers=content_type)

        assert too_many.status_code == 413, too_many.text[-600:]
        assert "The form fields are longer than 32 KB together" in too_many.text
        assert too_many_small.status_code == 413, too_many_small.text[-600:]
        assert "The form has more than 10 fields besides its files" in too_many_small.text
        # The form parser's own limit on a header line (python-multipart) or ours, whichever comes first.
        assert too_long.status_code in (413, 422), too_long.text[-600:]
        assert many_headers.status_code == 413, many_headers.text[-600:]
        assert "A part of the form has headers longer than 8 KB" in many_headers.text
        assert too_big.status_code == 413, too_big.text[-600:]
        assert "larger than the limit of 1 MB of files (and 1 MB for the form around them)" in too_big.text
        # Refused as the limit passed, not after the whole body was held or parsed.
        assert fields.pulled < 1024 * KIB < fields.total, (fields.pulled, fields.total)
        assert small_fields.pulled < 1024 * KIB < small_fields.total, (small_fields.pulled, small_fields.total)
        assert endless.pulled < 1024 * KIB < endless.total, (endless.pulled, endless.total)
        assert skipped.pulled < 3 * 1024 * KIB < skipped.total, (skipped.pulled, skipped.total)

        assert {rid: await _recorded(pool, rid), small_rid: await _recorded(pool, small_rid)} == before
        assert _uploads(settings.home) == files_before

        # The form as a browser sends it is still taken.
        sent = await http.post(f"/v1/callbacks/manual/{token}", data={"no_data": "1", "note": "Nothing here."},
                               files=[("files", ("", b"", "application/octet-stream"))])
    assert sent.status_code == 200, sent.text
    assert "no personal data about this person" in sent.text
    assert (await _recorded(pool, rid))["events"].count("processor.export_received") == 1


# -- 3. links after their request or task is over ----------------------------------------------


def _type_of(action: str) -> str:
    """A request type the action can belong to (which one does not matter to the link)."""
    return "access" if action == "access" else "erasure"


async def _settle(pool, request_id: str, action: str, status: str) -> None:
    """The task's row as the fan-out stores it (staff resolving it store 'done')."""
    await pool.execute(
        """INSERT INTO system_tasks (request_id, system, action, status, message)
           VALUES ($1, 'surveys', $2, $3, 'resolved by staff: confirmed by phone')""",
        request_id, action, status)

async def _refused_recording_nothing(http, pool, rid, token: str, action: str, status: int, *says: str) -> None:
    """The processor opens its link, then answers it (with a file, for an access export): both
    refused with `status` and a page saying `says`, with no form, and nothing recorded."""
    before = await _recorded(pool, rid)
    page = await http.get(f"/v1/callbacks/manual/{token}")
    answered = await http.post(f"/v1/callbacks/manual/{token}", data={"note": "done late"},
                               files=[("files", ("a.csv", b"a,b\n1,2\n", "text/csv"))] if action == "access" else None)
    for response in (page, answered):
        assert response.status_code == status, (action, response.status_code, response.text)
        assert all(words in response.text for words in says) and "<form" not in response.text, response.text
    assert await _recorded(pool, rid) == before, action


async def test_a_confirmation_link_of_a_closed_request_records_nothing(
        settings, pool, dev_server, task_queue, surveys_contact):
    """The request was completed (or denied, cancelled, closed unverified): the processor's link,
    still in its mailbox, confirms nothing any more. Each action the link can confirm, and the
    upload: 403 with a page saying the link has expired, no confirmation, no audit event."""
    async with api_client(settings, dev_server.client, task_queue) as http:
        for action, status in (("erase", "completed"), ("rectify", "denied"), ("restrict", "cancelled"),
                               ("object", "closed_unverified"), ("access", "completed")):
            rid, token = await _task(pool, settings, action, request_type=_type_of(action))
            await pool.execute("UPDATE dsr_requests SET status = $2 WHERE id = $1", rid, status)
            await _refused_recording_nothing(http, pool, rid, token, action, 403,
                                             "Link expired", "the request it belongs to is closed")


async def test_a_confirmation_for_a_task_already_settled_records_nothing(
        settings, pool, dev_server, task_queue, surveys_contact):
    """Staff resolved the processor's task by other means, or it settled otherwise; the request
    is still open. The link then records nothing: 409 with a page saying so, for a confirmation
    and for an upload. A link mailed more than the policy's link_days ago (30) has expired (403).
    A task still waiting, or needing attention, still takes the processor's answer."""
    async with api_client(settings, dev_server.client, task_queue) as http:
        for action, status in (("erase", "done"), ("restrict", "not_found"), ("access", "done")):
            rid, token = await _task(pool, settings, action, request_type=_type_of(action))
            await _settle(pool, rid, action, status)
            await _refused_recording_nothing(http, pool, rid, token, action, 409,
                                             "Already settled", "no longer records anything")

        rid, token = await _task(pool, settings, "erase", request_type="erasure")
        await pool.execute("UPDATE manual_tasks SET sent_at = now() - interval '31 days' WHERE request_id = $1", rid)
        expired = await http.post(f"/v1/callbacks/manual/{token}", data={"note": "done late"})
        assert expired.status_code == 403 and "valid for 30 days after our last e-mail" in expired.text
        assert (await _recorded(pool, rid))["confirmed"] == 0

        for status in ("pending", "needs_attention"):
            rid, token = await _task(pool, settings, "erase", request_type="erasure")
            await _settle(pool, rid, "erase", status)
            confirmed = await http.post(f"/v1/callbacks/manual/{token}", data={"note": "Deleted."})
            assert confirmed.status_code == 200 and "confirmation recorded" in confirmed.text, confirmed.text
            assert (await _recorded(pool, rid))["events"].count("processor.confirmed") == 1
