"""The console's Legal holds page over the real app in-process (no workflow engine: nothing here
starts a sweep): a hold limited to data categories, as the REST API's `categories` (one validation
context, api/legal_hold_body.py), a refused category named and the form kept; a release saying why
the hold ends, a reason refused beside its field; the released holds, the last released first, a
page at a time, with who placed and released each, why it ended, and the requests whose erasures it
had deferred; the policy's labels in the console's language. The browser presses
the page's controls in tests/test_browser_deferred.py."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote

import pytest

from api.console.released_holds import PAGE_SIZE
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.stores.holds_store import place_hold, release_hold
from dsrflow.stores.requests_store import create_request
from dsrflow.stores.staff_tokens import issue_token
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import api_client, console_sign_in, console_sign_in_with, unique_email
from tests.test_console_dates import policy_file

REVIEW = (date.today() + timedelta(days=120)).isoformat()
REASON = "Invoice dispute, claim filed at the Ghent enterprise court"


@pytest.fixture
async def console(settings):
    async with api_client(settings, None, "unused") as http:
        yield http


def _checked(page: str, name: str) -> set[str]:
    return set(re.findall(rf'name="{name}" value="([^"]+)" checked', page))


async def test_a_hold_limited_to_data_categories_and_a_category_the_policy_lacks_named(console, pool, settings):
    csrf = await console_sign_in(console, pool, "compliance")
    labels = {c: category.label for c, category in load_policy(settings.policy_path).policy.categories.items()}
    page = (await console.get("/console/holds")).text
    for label in labels.values():
        assert html.escape(label, quote=False) in page
    email = unique_email("held.categories")
    form = {"csrf_token": csrf, "submission": uuid.uuid4().hex, "email": email, "reason": REASON,
            "review_date": REVIEW}

    refused = await console.post("/console/holds", data={**form, "categories": ["payments", "lunch_orders"]})
    assert refused.status_code == 422
    said = html.unescape(refused.text)
    assert re.search(r'id="categories-error">not in the policy: \'lunch_orders\'', said), said
    assert _checked(refused.text, "categories") == {"payments"} and REASON in said and email in said
    assert await pool.fetchval("SELECT count(*) FROM legal_holds WHERE subject_email = $1", email) == 0

    placed = await console.post("/console/holds", data={**form, "categories": ["payments", "marketing"]})
    assert placed.status_code == 200, placed.text
    assert list(await pool.fetchval("SELECT categories FROM legal_holds WHERE subject_email = $1", email)) == [
        "payments", "marketing"]
    row = re.search(rf"<tr data-hold-id=[^>]*>\s*<td[^>]*>{re.escape(email)}.*?</tr>", placed.text, re.S).group(0)
    assert f"{html.escape(labels['payments'], quote=False)}, {html.escape(labels['marketing'], quote=False)}" in row
    assert "every system" in row


async def _request_of(pool, settings, email: str) -> str:
    new = NewRequest.model_validate({"type": "erasure", "regime": "gdpr", "identity_attested": True,
                                     "subject": {"email": email}})
    row, _ = await create_request(pool, new, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    return str(row["id"])


async def test_released_holds_say_who_placed_and_released_each_and_link_the_requests_it_kept(
        console, pool, settings):
    """An auditor's "which holds existed last quarter": before, the page listed only holds in force."""
    placer, _ = await issue_token(pool, "compliance", "Ines Placer")
    releaser, _ = await issue_token(pool, "admin", "Arne Releaser")
    email = unique_email("held.released")
    rid = await _request_of(pool, settings, email)
    async with pool.acquire() as conn:
        hold, _ = await place_hold(conn, secret=load_secret_key(settings), email=email, customer_id="C-7781",
                                   systems=None, categories=["payments"], basis="Art. 17(3)(e) GDPR", reason=REASON,
                                   review_date=date.fromisoformat(REVIEW), actor=f"compliance:{placer['id'][:8]}")
        await conn.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, policy_version, done_at)
               SELECT id, $2, 'billing', 'invoices', 'inv-1', 'legal_claims', $3, policy_version, now()
                 FROM dsr_requests WHERE id = $1""",
            uuid.UUID(rid), subject_hash(load_secret_key(settings), email), hold["id"])
        await release_hold(conn, hold["id"], f"admin:{releaser['id'][:8]}",
                           reason="Settled: agreement signed on 2 December")

    await console_sign_in(console, pool, "compliance")
    page = (await console.get("/console/holds")).text
    active, released = page.split('id="released-title"')
    assert email not in active
    row = re.search(rf'<tr data-hold-id="{hold["id"]}">.*?</tr>', released, re.S).group(0)
    text = html.unescape(re.sub(r"<[^>]+>", " ", row))
    for expected in (email, "customer C-7781", REASON, "by Ines Placer (compliance)", "by Arne Releaser (admin)",
                     "every system;", "Settled: agreement signed on 2 December"):
        assert expected in text, (expected, text)
    assert f'<a class="mono" href="/console/requests/{rid}">{short_reference(rid)}</a>' in row
    # The last released first: none released before this one comes before it.
    assert released.index(f'data-hold-id="{hold["id"]}"') == released.index("data-hold-id=")


def _row(page: str, hold_id: str) -> str:
    return re.search(rf'<tr data-hold-id="{hold_id}">.*?</tr>', page, re.S).group(0)


async def test_release_says_why_the_hold_ends_and_a_reason_refused_is_said_beside_it(console, pool, settings):
    """The field beside Release: left empty or too short, nothing is released and the row says
    why, what was typed kept; given, the released holds say it, and a hold released before a
    release said why reads "not recorded". Before, Release took no reason at all."""
    email = unique_email("held.release")
    async with pool.acquire() as conn:
        hold, _ = await place_hold(conn, secret=load_secret_key(settings), email=email, customer_id=None,
                                   systems=None, categories=None, basis="Art. 17(3)(e) GDPR", reason=REASON,
                                   review_date=date.fromisoformat(REVIEW), actor="compliance:test")
        old, _ = await place_hold(conn, secret=load_secret_key(settings), email=unique_email("held.unsaid"),
                                  customer_id=None, systems=None, categories=None, basis="Art. 17(3)(e) GDPR",
                                  reason=REASON, review_date=date.fromisoformat(REVIEW), actor="compliance:test")
    # Released before migration 0053: no reason on record.
    await pool.execute("UPDATE legal_holds SET released_at = now(), released_by = 'admin:test' WHERE id = $1",
                       uuid.UUID(old["id"]))
    csrf = await console_sign_in(console, pool, "compliance")
    release = f"/console/holds/{hold['id']}/release"
    for typed, said in (("", "Say why the hold ends"), ("  settled ", "Too short: say why the hold ends")):
        refused = await console.post(release, data={"csrf_token": csrf, "reason": typed})
        assert refused.status_code == 422, refused.text
        row = html.unescape(_row(refused.text, hold["id"]))
        assert re.search(rf'<p class="error" id="reason-error">{said}', row), row
        assert re.search(rf'name="reason"[^>]*value="{re.escape(typed.strip())}"[^>]*aria-invalid="true"', row), row
        assert await pool.fetchval("SELECT released_at FROM legal_holds WHERE id = $1",
                                   uuid.UUID(hold["id"])) is None

    released = await console.post(release, data={"csrf_token": csrf, "reason": "  Claim time-barred since 1 May  "})
    assert released.status_code == 202, released.text  # no workflow engine here to start the sweep
    assert await pool.fetchval("SELECT release_reason FROM legal_holds WHERE id = $1",
                               uuid.UUID(hold["id"])) == "Claim time-barred since 1 May"
    # "Start it again" (the sweep could not start) sends the reason on record: it is pressed as is.
    again = re.search(r'<input type="hidden" name="reason" value="([^"]*)">\s*<button type="submit" class="link">'
                      r'Start it again', released.text)
    assert again and html.unescape(again.group(1)) == "Claim time-barred since 1 May", released.text
    pressed = await console.post(release, data={"csrf_token": csrf, "reason": html.unescape(again.group(1))})
    assert pressed.status_code == 202 and 'id="hold-released"' in pressed.text, pressed.text
    listed = released.text.split('id="released-title"')[1]
    assert "Claim time-barred since 1 May" in _row(listed, hold["id"])
    assert re.search(r'<td class="anywhere"><span class="hint">not recorded</span></td>', _row(listed, old["id"]))


async def test_released_holds_page_back_to_the_first_released(console, pool, settings):
    """More than a page of released holds: "Older released holds" walks them to the first released,
    each once, the last released first; a cursor the page did not write shows the first page."""
    secret = load_secret_key(settings)
    ours = []
    async with pool.acquire() as conn:
        for n in range(PAGE_SIZE + 1):  # released in 1999: more than a page, the last of it ours
            hold, _ = await place_hold(conn, secret=secret, email=unique_email("held.old"), customer_id=None,
                                       systems=None, categories=None, basis="Art. 17(3)(e) GDPR", reason=REASON,
                                       review_date=date.fromisoformat(REVIEW), actor="compliance:test")
            await conn.execute("UPDATE legal_holds SET placed_at = $2, released_at = $2, released_by = 'admin:test'"
                               " WHERE id = $1", uuid.UUID(hold["id"]), datetime(1999, 1, 1, tzinfo=UTC)
                               + timedelta(days=n))
            ours.append(hold["id"])
    await console_sign_in(console, pool, "compliance")
    seen: list[str] = []
    released_at: list[datetime] = []
    url, pages = "/console/holds", 0
    while url:
        page = (await console.get(url)).text.split('id="released-title"')[1]
        assert page.count("data-hold-id=") <= PAGE_SIZE
        for hold_id, moment in re.findall(r'data-hold-id="([^"]+)">.*?<td><time datetime="[^"]+">.*?'
                                          r'<td><time datetime="([^"]+)">', page, re.S):
            seen.append(hold_id)
            released_at.append(datetime.fromisoformat(moment))
        older = re.search(r'<a href="(/console/holds\?released=[^"#]+)#released">Older released holds</a>', page)
        url, pages = (unquote(older.group(1)) if older else ""), pages + 1
        assert pages == 1 or "back to the last released" in page
    assert pages >= 2 and len(seen) == len(set(seen)) and released_at == sorted(released_at, reverse=True)
    assert [h for h in seen if h in ours] == ours[::-1]  # each once, the oldest last

    forged = (await console.get("/console/holds?released=not-a-cursor")).text
    assert forged.count("data-hold-id=") and "back to the last released" not in forged


@pytest.mark.parametrize("language", ["fr", "nl", "de"])
async def test_categories_are_named_in_the_console_language(settings, pool, lifecycle_policy,
                                                                       tmp_path, language):
    staff = policy_file(lifecycle_policy, tmp_path / f"{language}-staff.yaml",
                        lambda content: content["languages"].update(staff=language))
    translated = load_policy(staff).in_language(language).categories["payments"].label
    assert translated != load_policy(staff).policy.categories["payments"].label
    async with api_client(settings.model_copy(update={"policy_path": staff}), None, "unused") as http:
        _, token = await issue_token(pool, "compliance", "console tests")
        await console_sign_in_with(http, token, "/console/holds")
        page = html.unescape((await http.get("/console/holds")).text)
    assert f'value="payments"> {translated}' in page
