"""What staff read on the console's request page, queue and new-request form: words for the codes
the trail records (api/read_models/event_words.py, the evidence pack's words too), while the forms
still submit the codes. Requests stored as intake stores them, no workflow running: the page shows
the stored request, so each code it reads is the one set here."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

from api.console import view
from api.read_models import event_words
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.audit import append_event
from dsrflow.i18n import long_date
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import CSRF_FIELD, console_sign_in, place_claims_hold, staff_headers, unique_email

# A policy version's recipients as the policy words them: one known by who it is, one by kind only.
RECIPIENTS = {"google_analytics": {"name": "Google Analytics (Google)",
                                   "identity": "Google Ireland Limited, Gordon House, Barrow Street, Dublin 4, Ireland"},
              "communication_crm": {"name": "Communication, e-mail server and client relationship management provider"}}


async def stored(pool, settings, kind: str, *, regime: str = "gdpr", attested: bool = True, **fields: Any) -> str:
    new = NewRequest.model_validate({"type": kind, "regime": regime, "identity_attested": attested,
                                     "subject": {"email": unique_email("words")}, **fields})
    row, _ = await create_request(pool, new, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    return str(row["id"])


async def planned(pool, rid: str, action: str, scope: str | None = None) -> None:
    """A plan made under a policy version of its own, whose recipients are RECIPIENTS."""
    version = f"words-{uuid.uuid4().hex}"
    await pool.execute("INSERT INTO policy_versions (version, content) VALUES ($1, $2)", version,
                       {"recipients": RECIPIENTS})
    tasks = [{"system": system, "action": action, "connector": "sql", "label": label, "recipient": recipient,
              "scope": scope} for system, label, recipient in (("analytics", "Web analytics", "google_analytics"),
                                                               ("crm", "CRM", "communication_crm"),
                                                               ("billing", "Billing", None))]
    await pool.execute("INSERT INTO request_plans (request_id, plan) VALUES ($1, $2)", uuid.UUID(rid),
                       {"request_id": rid, "policy_version": version, "request_type": "x", "tasks": tasks})

# The basis alone, as the letter gives it: a claim is no law (it said "; a legal claim (...)").
TOLD_CLAIMS = "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims"


def task_rows(page: str) -> dict[str, list[str]]:
    """The Systems table: each system's label and its cells' text."""
    table = page.split('<table id="tasks">')[1].split("</table>")[0]
    rows = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in table.split("<tr>")[2:]]
    return {cells[0]: [re.sub(r"<[^>]+>", "", c).strip() for c in cells] for cells in rows}


def test_every_helper_the_templates_use_is_the_packs():
    assert view.WORDS is event_words.WORDS
    assert all(getattr(event_words, name) is helper for name, helper in view.WORDS.items())


async def test_the_systems_table_names_each_art_19_recipient_and_none_for_an_objection(http, pool, settings):
    erasure = await stored(pool, settings, "erasure")
    await planned(pool, erasure, "erase")
    objection = await stored(pool, settings, "objection", objection_scope="legitimate_interest")
    await planned(pool, objection, "object", "legitimate_interest")
    await console_sign_in(http, pool, "compliance")

    page = (await http.get(f"/console/requests/{erasure}")).text
    assert "Recipient (Art. 19)" in page  # a GDPR request's; under another law, "Recipient"
    rows = task_rows(page)
    assert rows["Web analytics"][1] == "erase"
    assert "Google Ireland Limited, Gordon House, Barrow Street, Dublin 4, Ireland" in rows["Web analytics"]
    assert RECIPIENTS["communication_crm"]["name"] in rows["CRM"]
    assert rows["Billing"][-2] == "—"
    assert "google_analytics" not in page and "communication_crm" not in page
    # Art. 19 is the GDPR's (and the UK GDPR's): a CCPA request's table names no article of it.
    ccpa = await stored(pool, settings, "erasure", regime="ccpa")
    await planned(pool, ccpa, "erase")
    ccpa_page = (await http.get(f"/console/requests/{ccpa}")).text
    assert "Art. 19" not in ccpa_page.split('<table id="tasks">')[1].split("</table>")[0]

    page = (await http.get(f"/console/requests/{objection}")).text
    rows = task_rows(page)
    # Art. 19 tells recipients of an erasure, a rectification or a restriction, not of an objection.
    assert [cells[-2] for cells in rows.values()] == ["—", "—", "—"]
    assert rows["CRM"][1] == "stop the processing objected to"
    assert "Google Ireland" not in page and "communication_crm" not in page


async def test_the_request_page_writes_the_requests_codes_in_words(http, pool, settings):
    objection = await stored(pool, settings, "objection", attested=False, objection_scope="profiling", channel="email")
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{objection}:verified", event_type="verification.succeeded",
                           actor="workflow", request_id=objection, data={"method": "email_code"})
    await pool.execute("UPDATE dsr_requests SET verified_at = now() WHERE id = $1", uuid.UUID(objection))
    restriction = await stored(pool, settings, "restriction", regime="uk_gdpr", country="GB",
                               restriction_grounds=["accuracy_contested"])
    await console_sign_in(http, pool, "compliance")

    page = (await http.get(f"/console/requests/{objection}")).text
    assert "verified (one-time code from the e-mail to the subject)" in page and "email_code" not in page
    assert "<dt>Regime</dt><dd>GDPR / Belgium</dd>" in page
    assert "by e-mail, opened by staff" in page
    assert "<dt>Objection to</dt><dd>profiling (Art. 21(1) GDPR)</dd>" in page
    assert "objection_scope" not in page and "<code>{" not in page

    page = (await http.get(f"/console/requests/{restriction}")).text
    assert "<dt>Regime</dt><dd>UK GDPR / United Kingdom</dd>" in page
    assert "<dt>Restriction asked on the grounds</dt><dd>accuracy contested (Art. 18(1)(a) UK GDPR)</dd>" in page
    assert "accuracy_contested" not in page

    await pool.execute("UPDATE dsr_requests SET status = 'closed_unverified', closed_at = now() WHERE id = $1",
                       uuid.UUID(objection))
    page = (await http.get(f"/console/requests/{objection}")).text
    assert re.search(r'id="status">closed unverified \(identity never confirmed\)', page)


async def test_the_holds_and_deferred_erasures_name_systems_datasets_and_holds_by_the_policys_words(
        http, pool, settings):
    """They showed `billing/invoices`, `be_accounting`, `analytics` and a legal hold's id; the
    Systems table already named each system by its label."""
    email = unique_email("words.holds")
    rid = await stored(pool, settings, "erasure", subject={"email": email})
    await planned(pool, rid, "erase")  # labelled "Web analytics", "CRM", "Billing" by the plan
    hold = await place_claims_hold(pool, settings, email, ["crm"])
    kept = {"system": "billing", "dataset": "invoices", "records": 3, "hold_kind": "statutory",
            "basis": "Art. 17(3)(b) GDPR", "law": "VAT Code Art. 60", "until": "2034-12-31"}
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, kept_records)
                          VALUES ($1, 'billing', 'erase', 'completed', 5, 2, 3, $2)""", uuid.UUID(rid), [kept])
    for system, kind, ref in (("analytics", "statutory", "be_accounting"), ("crm", "legal_claims", str(hold["id"]))):
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind, hold_ref,
                                              policy_version, external_id, submitted_at, failed_at, failure)
               SELECT id, 'x', $2, 'all', 'all', $3, $4, policy_version, $5, now(), now(), 'the job was cancelled'
                 FROM dsr_requests WHERE id = $1""", uuid.UUID(rid), system, kind, ref, str(uuid.uuid4()))
    await console_sign_in(http, pool, "compliance")

    page = html.unescape((await http.get(f"/console/requests/{rid}")).text)
    holds = page.split("<h2>Holds</h2>")[1].split("</div>")[0]
    assert "3 record(s) of invoices in the system “Billing” kept under a statutory hold:" in holds
    assert "on CRM." in holds
    deferred = page.split('id="deferred"')[1].split("</section>")[0]
    rows = {system: re.sub(r"<[^>]+>", " ", row) for system, row in re.findall(
        r'<tr data-system="(\w+)">(.*?)</tr>', deferred, re.S)}
    assert "Web analytics" in rows["analytics"] and "Belgian accounting and tax records" in rows["analytics"]
    assert "legal-claims hold (Dispute over a support contract, claim 2026/17)" in rows["crm"]
    assert ">Ask Web analytics again</button>" in deferred
    assert "How CRM's erasure was carried out" in deferred and "<td>CRM</td>" in deferred
    for code in ("billing/invoices", "be_accounting", str(hold["id"]), ">analytics<", "Ask crm again"):
        assert code not in holds + deferred, code


async def test_a_record_kept_under_a_legal_claims_hold_is_kept_until_its_release_not_its_review_date(
        http, pool, settings):
    """The Holds section read "1 record(s) of all in CRM kept under a legal-claims hold: ...,
    until 2027-03-05": the hold's review date as if it were the day the record goes, and the same
    once the hold was released and the record erased. The evidence pack's Until column gave the
    review date too. Now the hold's release is the end, the review date is named as one, and a
    released hold says when it was released."""
    email = unique_email("words.claims")
    rid = await stored(pool, settings, "erasure", subject={"email": email})
    await planned(pool, rid, "erase")
    hold = await place_claims_hold(pool, settings, email, ["crm"])
    review = long_date(hold["review_date"])
    kept = {"system": "crm", "dataset": "all", "records": 1, "hold_kind": "legal_claims", "hold_ref": str(hold["id"]),
            "basis": "Art. 17(3)(e) GDPR", "law": "a legal claim", "until": hold["review_date"].isoformat()}
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, kept_records)
                          VALUES ($1, 'crm', 'erase', 'completed', 1, 0, 1, $2)""", uuid.UUID(rid), [kept])
    await console_sign_in(http, pool, "compliance")

    def holds(page: str) -> str:
        return " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page).split("<h2>Holds</h2>")[1].split("</div>")[0]).split())

    def until_cell(page: str) -> str:
        table = html.unescape(page).split("<h2>Holds and kept records</h2>")[1].split("</tbody>")[0]
        return " ".join(re.sub(r"<[^>]+>", " ", table.split("<td>")[-1]).split())

    held = holds((await http.get(f"/console/requests/{rid}")).text)
    # The basis and law as the response letter told them (9df7e3f), not as the record stores them.
    assert (f"Everything in the system “CRM” kept under a legal-claims hold: {TOLD_CLAIMS}, until the "
            f"hold's release (to be reviewed by {review}).") in held
    assert f"until {review}." not in held and "record(s) of all" not in held
    evidence = (await http.get(f"/v1/requests/{rid}/evidence.html")).text
    assert until_cell(evidence).startswith("the hold's release (review by ")
    kept_table = html.unescape(evidence).split("<h2>Holds and kept records</h2>")[1].split("</tbody>")[0]
    assert TOLD_CLAIMS in kept_table and "a legal claim" not in kept_table

    await pool.execute("UPDATE legal_holds SET released_at = now() WHERE id = $1", hold["id"])
    held = holds((await http.get(f"/console/requests/{rid}")).text)
    assert f"kept under a legal-claims hold: {TOLD_CLAIMS}. The hold was released on " in held
    assert "what it kept is then erased" in held and "to be reviewed by" not in held
    assert until_cell((await http.get(f"/v1/requests/{rid}/evidence.html")).text).startswith("the hold's release, ")


async def test_a_failed_step_reads_as_what_it_was_doing(http, pool, settings):
    rid = await stored(pool, settings, "erasure")
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{rid}:failed", event_type="step.failed", actor="workflow", request_id=rid,
                           data={"step": "send_letter", "about": "response letter", "message": "the relay refused"})
        await append_event(conn, event_key=f"{rid}:answered", event_type="step.resolved", actor="workflow",
                           request_id=rid, data={"step": "record_event", "about": "approval.granted record",
                                                 "resolution": "run again"})
        await append_event(conn, event_key=f"{rid}:older", event_type="step.failed", actor="workflow",
                           request_id=rid, data={"step": "prepare_request", "message": "no database"})
    await console_sign_in(http, pool, "compliance")

    page = (await http.get(f"/console/requests/{rid}")).text
    assert "A step failed (sending the response letter: the relay refused)" in page
    assert "Failed step answered (recording “Release approved” in the audit trail: run again)" in page
    assert "A step failed (registering the request (its deadlines and its receipt): no database)" in page
    assert "approval.granted" not in page and "prepare_request" not in page


async def test_the_deny_form_offers_each_ground_in_words_and_submits_its_code(http, pool, settings):
    gdpr, ccpa = await stored(pool, settings, "erasure"), await stored(pool, settings, "erasure", regime="ccpa",
                                                                        country="US")
    csrf = await console_sign_in(http, pool, "compliance")

    page = (await http.get(f"/console/requests/{gdpr}")).text
    grounds = page.split('id="deny-reason"')[1].split("</select>")[0]
    assert [(code, html.unescape(words)) for code, words in re.findall(r'<option value="(\w+)">([^<]+)</option>',
                                                                          grounds)] == [
        ("manifestly_unfounded", "manifestly unfounded (Art. 12(5) GDPR)"),
        ("excessive", "manifestly excessive (repetitive) (Art. 12(5) GDPR)"),
        ("identity_not_established", "the subject's identity could not be established (Art. 11(2) and 12(2) GDPR)"),
        ("other", "another ground, given in the explanation")]
    # California's law is not the GDPR: no article of it is cited.
    grounds = (await http.get(f"/console/requests/{ccpa}")).text.split('id="deny-reason"')[1].split("</select>")[0]
    assert '<option value="excessive">manifestly excessive (repetitive)</option>' in grounds

    # Sent back with a refusal (no workflow answers), the form keeps the ground chosen, by its code.
    refused = await http.post(f"/console/requests/{gdpr}/deny", data={
        "csrf_token": csrf, "reason_code": "excessive", "explanation": "The fourth identical request this month"})
    assert refused.status_code >= 400
    assert '<option value="excessive" selected>manifestly excessive (repetitive) (Art. 12(5) GDPR)</option>' in refused.text


async def test_the_queue_and_the_new_request_form_write_regimes_statuses_and_channels_in_words(http, pool, settings):
    email = unique_email("words.queue")
    rid = await stored(pool, settings, "access", regime="uk_gdpr", country="GB", subject={"email": email})
    await pool.execute("UPDATE dsr_requests SET status = 'closed_unverified', closed_at = now() WHERE id = $1",
                       uuid.UUID(rid))
    await console_sign_in(http, pool, "agent")

    page = (await http.get("/console/", params={"subject": email, "status": "closed_unverified"})).text
    row = page.split(f'data-request-id="{rid}"')[1].split("</tr>")[0]
    assert '<td data-label="Status">closed unverified (identity never confirmed)</td>' in row
    assert '<td data-label="Regime">UK GDPR / United Kingdom</td>' in row
    assert re.search(r'value="closed_unverified" checked> closed unverified \(identity never confirmed\)', page)
    assert '<option value="uk_gdpr">UK GDPR</option>' in page and ">uk_gdpr<" not in page

    form = (await http.get("/console/requests/new")).text
    assert '<option value="gdpr" selected>GDPR</option>' in form
    assert '<option value="ccpa">CCPA (California)</option>' in form
    assert '<option value="email" selected>e-mail</option>' in form and '<option value="api">the API</option>' in form
    assert CSRF_FIELD.search(form)


async def test_the_evidence_packs_plan_names_each_art_19_recipient_and_none_for_an_objection(http, pool, settings):
    """The pack's plan table showed the policy's ids ("google analytics") and a recipient for an
    objection, which tells none; it now words them as the request page does, from the policy
    version the request was planned under."""
    erasure = await stored(pool, settings, "erasure")
    await planned(pool, erasure, "erase")
    objection = await stored(pool, settings, "objection", objection_scope="legitimate_interest")
    await planned(pool, objection, "object", "legitimate_interest")
    compliance = await staff_headers(pool, "compliance")

    def plan(page: str) -> dict[str, list[str]]:
        table = page.split('<table id="plan">')[1].split("</table>")[0]
        rows = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in table.split("<tr>")[2:]]
        return {cells[0]: [re.sub(r"<[^>]+>", "", c).strip() for c in cells] for cells in rows}

    page = (await http.get(f"/v1/requests/{erasure}/evidence.html", headers=compliance)).text
    rows = plan(page)
    # Systems by the plan's labels and how each is reached in words, not by their codes ("analytics", "sql").
    assert rows["Web analytics"][1:] == [
        "erase", "directly, in its database", "Google Ireland Limited, Gordon House, Barrow Street, Dublin 4, Ireland"]
    assert rows["CRM"][3] == RECIPIENTS["communication_crm"]["name"] and rows["Billing"][3] == "—"
    assert "google analytics" not in page and "communication crm" not in page
    rows = plan((await http.get(f"/v1/requests/{objection}/evidence.html", headers=compliance)).text)
    assert [cells[3] for cells in rows.values()] == ["—", "—", "—"]
    assert rows["CRM"][1].startswith("stop the processing objected to")


async def test_a_result_for_a_system_the_plan_does_not_name_still_shows_the_page(http, pool, settings):
    """A stored result with no plan entry for its system (the plan not yet stored) made the page a
    500: the Systems table read a recipient only planned systems had."""
    rid = await stored(pool, settings, "erasure")
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed)
                          VALUES ($1, 'billing', 'erase', 'completed', 2, 2)""", uuid.UUID(rid))
    await console_sign_in(http, pool, "compliance")
    page = await http.get(f"/console/requests/{rid}")
    assert page.status_code == 200, page.text[-500:]
    assert task_rows(page.text)["billing"][1] == "erase"
