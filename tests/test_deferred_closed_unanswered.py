"""An erasure closed unanswered (withdrawn by the subject, cancelled or denied by staff) part-way
through its fan-out, after systems had kept records under holds: Billing kept Ada's invoices under
the accounting statute (minimised), the CRM and the survey processor kept everything under a
legal-claims hold, and the e-mail marketing processor was never reached. The tasks run as the
workflow runs them (tests/test_closed_request_tries.py), the sweep as its schedule runs it.

The subject no longer asks for the erasure: what the legal-claims hold kept is called off at the
close (one `erasure.deferred_called_off` event), and the hold's release erases nothing of hers nor
asks the processor to. What the statute kept, minimised already and kept for that obligation only,
is still erased when its period ends (docs/holds.md "A request closed unanswered"). Before, the
release erased her CRM contacts and e-mailed the survey processor to erase, against her withdrawal.
Her closing letter says both, and no longer names the CRM, whose records the hold kept as they
were, as acted on (before, it said nothing of what was kept).
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import pytest
from temporalio.testing import ActivityEnvironment

from activities.deferred import DeferredErasureActivities
from activities.fanout import FanoutActivities
from api.read_models.evidence import assemble_evidence
from dsrflow.crypto.hashing import subject_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.deferred_store import deferred_erasures
from dsrflow.stores.holds_store import release_hold
from dsrflow.stores.requests_store import set_status
from schemas.holds import SweepInput
from schemas.requests import RequestStatus
from schemas.workflow import StartRequest, TaskInput
from tests.evidence_pages import readable, section
from tests.fanout_stack import api, fanout_stack_alone
from tests.letters_as_sent import as_sent, both
from tests.process_support import sweep_killed_at
from tests.support import console_sign_in, fetch_rows, letters_for, place_claims_hold, staff_headers, stored_request
from workers.dsr_worker import activity_context

EMAIL = "ada@example.com"
AS_OF = datetime(2036, 1, 2, 12, tzinfo=UTC)  # Ada's 2025 invoices are kept until 31 Dec 2035
CONTACTS = f"SELECT count(*) AS n FROM contacts WHERE email = '{EMAIL}'"
CALLED_OFF = "SELECT data FROM audit_events WHERE request_id = $1 AND event_type = 'erasure.deferred_called_off'"


@pytest.fixture
async def stack(postgres, settings, dev_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DSRFLOW_SURVEYS_PRIVACY_EMAIL", "privacy@surveys.example")
    # A database of its own: the sweep takes every due record of its database.
    async with fanout_stack_alone(postgres, settings, dev_server.client, tmp_path, "withdrawn",
                                  keep_manual=("surveys",)) as running:
        yield running


async def _kept_part_way(stack, pool) -> tuple[str, dict]:
    """Ada's erasure, under a legal-claims hold over the CRM and the survey processor, run in
    Billing, the CRM and the survey processor only: its id and the hold."""
    stack_settings = stack.settings
    hold = await place_claims_hold(pool, stack_settings, EMAIL, ["crm", "surveys"])
    fanout = FanoutActivities(activity_context(stack_settings, pool))
    rid = await stored_request(pool, stack_settings, "withdrawn", "erasure", email=EMAIL)
    plan = await fanout._plan(StartRequest(request_id=rid, policy_version=str(await pool.fetchval(
        "SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))))
    for task in plan.tasks:
        if task.system in ("billing", "crm", "surveys"):
            result = await fanout._run(TaskInput(request_id=rid, policy_version=plan.policy_version, task=task,
                                                 record=True))
            assert result.status == "done" and result.kept, result
    kinds = {(r["system"], r["hold_kind"]) for r in await pool.fetch(
        "SELECT system, hold_kind FROM deferred_erasures WHERE request_id = $1::uuid", rid)}
    assert kinds == {("billing", "statutory"), ("crm", "legal_claims"), ("surveys", "legal_claims")}
    return rid, hold


async def _release_and_sweep(stack, pool, hold) -> None:
    async with pool.acquire() as conn:
        await release_hold(conn, hold["id"], "compliance:test", reason="The claim was settled out of court")
    sweep = DeferredErasureActivities(activity_context(stack.settings, pool)).sweep
    await ActivityEnvironment().run(sweep, SweepInput(reason="test", as_of=AS_OF))


async def test_a_withdrawal_calls_off_what_a_legal_claims_hold_kept_and_not_what_a_statute_kept(
        stack, mail_sink):
    stack, pool = stack
    rid, hold = await _kept_part_way(stack, pool)
    (before,) = await fetch_rows(stack.databases["crm"], CONTACTS)
    assert before["n"] > 0
    await pool.execute("UPDATE dsr_requests SET details = details || '{\"withdrawn_by_subject\": true}' "
                       "WHERE id = $1::uuid", rid)
    async with pool.acquire() as conn:  # as the workflow's close records it (activities/lifecycle.py)
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:closed", actor="subject")

    # At the close: called off, once, where the legal-claims hold kept; Billing's statute still runs.
    (event,) = await pool.fetch(CALLED_OFF, rid)
    called_off = json.loads(event["data"]) if isinstance(event["data"], str) else event["data"]
    assert set(called_off["systems"]) == {"crm", "surveys"} and called_off["systems"]["surveys"] == 1
    listed = {d["system"]: d for d in await deferred_erasures(pool, rid)}
    assert listed["crm"]["state"] == listed["surveys"]["state"] == "called_off"
    assert listed["crm"]["actions"] == listed["surveys"]["actions"] == []
    assert listed["billing"]["state"] == "held"
    pack = await assemble_evidence(pool, rid, secret=load_secret_key(stack.settings))
    assert pack is not None
    scheduled = pack["holds"]["deferred_erasures"]
    assert all(e["called_off"] == (e["records"] if e["hold_kind"] == "legal_claims" else 0) for e in scheduled)
    # The evidence pack, the REST listing and the console's panel say so, in words.
    async with api(stack) as http:
        headers = await staff_headers(pool, "compliance")
        text = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)).text)
        kept = section(text, "Holds and kept records", "Letters sent")
        legal = sum(1 for e in pack["holds"]["deferred_erasures"] if e["hold_kind"] == "legal_claims")
        assert kept.count("no longer to be erased when it ends") == legal == 4, kept
        assert "the request was closed unanswered, so these records are not erased when the hold ends" in kept
        assert "Deferred erasure called off: the request was closed unanswered" in text
        rest = (await http.get(f"/v1/requests/{rid}/deferred-erasures", headers=headers)).json()
        assert {d["system"]: d["state"] for d in rest} == {
            "billing": "held", "crm": "called_off", "surveys": "called_off"}, rest
        await console_sign_in(http, pool, "compliance")
        page = html.unescape((await http.get(f"/console/requests/{rid}")).text)
        panel = " ".join(re.sub(r"<[^>]+>", " ", page.split('<section id="deferred"', 1)[1].split("</table>")[0]).split())
        assert panel.count("not to be erased: the request was closed unanswered (called off)") == 2, panel
        assert 'id="deferred-retry-' not in page and 'id="deferred-settle-' not in page
    # The cancellation letter names Billing as acted on, not the CRM whose records the hold kept
    # as they were, and says what was kept and what becomes of it: Billing's invoices deleted when
    # the statute's period ends, the CRM's and the processor's data no longer erased with the claim.
    params = {"reason": "Withdrawn by phone", "withdrawn": True, "acted_in": ["billing", "crm"], "asked_in": []}
    letter = await as_sent("cancellation", "erasure", params, pool=pool, id=rid)
    for part in both(letter):
        assert "when the hold" not in part and "Kept until" not in part, part
        acted = part.split("we had already acted on it in: ", 1)[1].split(".", 1)[0]
        assert acted.startswith("Billing") and "CRM" not in acted, acted
        assert ("because the law requires us to (Belgian VAT Code Art. 60 §4" in part
                and "we keep them, restricted and reduced to what the law needs, until 31 December 2035, and "
                    "then delete them." in part), part
        assert ("We had kept your personal data in CRM (contacts, support requests, live chat) and Survey service "
                "provider because of a legal claim. As your request is closed, we will not erase it when the claim "
                "ends: it stays as it is, and we keep it only as long as our privacy policy says.") in part, part
    # In every language, and in the words of a law that deletes (the CCPA: "personal information").
    for language, said in (("fr", "en raison d'une action en justice"), ("nl", "vanwege een rechtsvordering"),
                           ("de", "wegen eines Rechtsanspruchs")):
        assert said in (await as_sent("cancellation", "erasure", params, pool=pool, id=rid, language=language)).text
    ccpa = (await as_sent("cancellation", "erasure", params, pool=pool, id=rid, regime="ccpa")).text
    assert "We had kept your personal information in CRM" in ccpa and "we will not delete it when the claim" in ccpa

    await _release_and_sweep(stack, pool, hold)
    # Her CRM contacts stay, the survey processor is not asked; Billing's 2025 invoices, their
    # period over, are erased as the statute's end requires.
    assert (await fetch_rows(stack.databases["crm"], CONTACTS))[0]["n"] == before["n"]
    assert letters_for(mail_sink, rid, "processor_request") == []
    states = {(r["system"], r["state"]) for r in await pool.fetch(
        """SELECT system, CASE WHEN done_at IS NOT NULL THEN 'erased' WHEN called_off_at IS NOT NULL
                               THEN 'called_off' ELSE 'held' END AS state
             FROM deferred_erasures WHERE request_id = $1::uuid""", rid)}
    assert {("crm", "called_off"), ("surveys", "called_off"), ("billing", "erased")} <= states
    assert not {s for s in states if s[0] != "billing" and s[1] != "called_off"}, states
    assert len(await pool.fetch(CALLED_OFF, rid)) == 1


async def test_a_sweep_killed_calling_off_a_denied_erasure_leaves_it_whole_for_the_next(stack):
    """A denial whose close did not call off (recorded before this change, or a try that kept
    records after it): the sweep does, before it erases. Killed there, it leaves nothing marked
    and nothing recorded; the next run calls off once and erases nothing the hold kept."""
    stack, pool = stack
    rid, hold = await _kept_part_way(stack, pool)
    (before,) = await fetch_rows(stack.databases["crm"], CONTACTS)
    await pool.execute("UPDATE dsr_requests SET status = 'denied', closed_at = now() WHERE id = $1::uuid", rid)
    async with pool.acquire() as conn:
        await release_hold(conn, hold["id"], "compliance:test", reason="The claim was settled out of court")

    await sweep_killed_at(stack.settings, "deferred-called-off", AS_OF)
    assert await pool.fetch(CALLED_OFF, rid) == []
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid "
                               "AND (called_off_at IS NOT NULL OR done_at IS NOT NULL)", rid) == 0
    assert (await fetch_rows(stack.databases["crm"], CONTACTS))[0]["n"] == before["n"]

    for _ in range(2):
        await _release_and_sweep(stack, pool, hold)
    (event,) = await pool.fetch(CALLED_OFF, rid)
    assert (await fetch_rows(stack.databases["crm"], CONTACTS))[0]["n"] == before["n"]
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid "
                               "AND hold_kind = 'legal_claims' AND called_off_at IS NULL", rid) == 0
    assert subject_hash(load_secret_key(stack.settings), EMAIL) not in str(event["data"])
