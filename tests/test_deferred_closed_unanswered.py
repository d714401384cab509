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
from dsrflow.stores.deferred_store import deferred_erasures, kept_records
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
                and "we keep them, restricted and reduced to what the law needs, each until the end of its period "
                    "(31 December 2035 and 31 December 2036), and then delete them." in part), part  # one statement
        assert ("We had kept your personal data in our CRM and at our survey service provider because of a legal "
                "claim. As your request is closed, we will not erase it when the claim "
                "ends: it stays as it is, and we keep it only as long as our privacy policy says.") in part, part
    # In every language, and in the words of a law that deletes (the CCPA: "personal information").
    for language, said in (("fr", "en raison d'une action en justice"), ("nl", "vanwege een rechtsvordering"),
                           ("de", "wegen eines Rechtsanspruchs")):
        assert said in (await as_sent("cancellation", "erasure", params, pool=pool, id=rid, language=language)).text
    ccpa = (await as_sent("cancellation", "erasure", params, pool=pool, id=rid, regime="ccpa")).text
    assert "We had kept your personal information in our CRM" in ccpa and "we will not delete it when the claim" in ccpa

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


# What a legal-claims hold kept in the CRM was marked restricted there (activities/connectors/sql_erasure.py).
RESTRICTED = f"SELECT count(*) FILTER (WHERE restricted) AS marked, count(*) AS n FROM contacts WHERE email = '{EMAIL}'"
UNRESTRICTED = ("SELECT data FROM audit_events WHERE request_id = $1 "
                "AND event_type = 'erasure.called_off_unrestricted'")


async def _withdrawn(stack, pool) -> tuple[str, dict, int]:
    """Ada's erasure kept part-way (`_kept_part_way`), then withdrawn: its id, the hold, and how
    many CRM contacts of hers the hold kept (restricted there)."""
    rid, hold = await _kept_part_way(stack, pool)
    (crm,) = await fetch_rows(stack.databases["crm"], RESTRICTED)
    assert crm["marked"] == crm["n"] > 0
    async with pool.acquire() as conn:
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:closed", actor="subject")
    return rid, hold, crm["n"]


async def test_a_released_hold_lifts_the_restriction_on_what_a_called_off_erasure_kept(stack):
    """Before, her CRM contacts stayed restricted for ever once the hold was released, no hold
    nor request keeping them so; a correction of her phone number left them out as 'held'; and
    the evidence pack's kept-records table still gave them until 'the hold's release'."""
    stack, pool = stack
    rid, hold, contacts = await _withdrawn(stack, pool)
    version = str(await pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))
    # Called off, they are kept by no hold: neither a correction nor an access request leaves them out.
    assert not [k for k in await kept_records(pool, system=("crm", version)) if k.startswith("crm.")]
    held = await kept_records(pool, subject_hash=subject_hash(load_secret_key(stack.settings), EMAIL))
    assert held and {k.split(".")[0] for k in held} == {"billing"}, held  # what the statute keeps still is
    # The hold is still in force: what it kept stays restricted until it is released.
    sweep = DeferredErasureActivities(activity_context(stack.settings, pool)).sweep
    await ActivityEnvironment().run(sweep, SweepInput(reason="test", as_of=AS_OF))
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == contacts
    assert await pool.fetch(UNRESTRICTED, rid) == []

    await _release_and_sweep(stack, pool, hold)
    (crm,) = await fetch_rows(stack.databases["crm"], RESTRICTED)
    assert (crm["marked"], crm["n"]) == (0, contacts)  # unrestricted, and kept as they were
    (event,) = await pool.fetch(UNRESTRICTED, rid)
    data = json.loads(event["data"]) if isinstance(event["data"], str) else event["data"]
    assert data["system"] == "crm" and data["records"] >= contacts
    await _release_and_sweep(stack, pool, hold)  # a sweep again: nothing more
    assert len(await pool.fetch(UNRESTRICTED, rid)) == 1

    # A correction of her phone number now reaches them.
    fix = await stored_request(pool, stack.settings, "withdrawn", "rectification", email=EMAIL,
                               corrections={"phone": "+32 470 12 34 56"})
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    plan = await fanout._plan(StartRequest(request_id=fix, policy_version=version))
    (task,) = [t for t in plan.tasks if t.system == "crm"]
    result = await fanout._run(TaskInput(request_id=fix, policy_version=plan.policy_version, task=task, record=True))
    assert result.status == "done" and result.changed >= contacts and "kept" not in (result.message or ""), result
    phones = await fetch_rows(stack.databases["crm"], f"SELECT phone FROM contacts WHERE email = '{EMAIL}'")
    assert {p["phone"] for p in phones} == {"+32 470 12 34 56"}

    # The evidence pack's kept records no longer say 'until the hold's release'; the timeline says so.
    async with api(stack) as http:
        headers = await staff_headers(pool, "compliance")
        text = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=headers)).text)
        await console_sign_in(http, pool, "compliance")  # and the request's page, no longer "then erased"
        page = readable((await http.get(f"/console/requests/{rid}")).text)
    assert page.count("Its erasure was called off on") == 4 and "what it kept is then erased" not in page, page
    kept = section(text, "Holds and kept records", "Letters sent")
    assert "the hold's release" not in kept, kept
    assert kept.count("not erased when the hold ends: called off") == 4, kept
    assert "Records of the called-off erasure no longer restricted: the hold was released" in text


async def test_another_hold_or_her_restriction_keeps_a_called_off_erasures_records_restricted(stack):
    """Released, the hold that kept them no longer does, but another placed over the CRM since
    does, and then a restriction she asked for, in force there: they stay restricted until both
    have ended. A new erasure of hers then erases them (so it did before: an erasure never read
    what holds keep)."""
    stack, pool = stack
    rid, hold, contacts = await _withdrawn(stack, pool)
    other = await place_claims_hold(pool, stack.settings, EMAIL, ["crm"])
    restriction = await stored_request(pool, stack.settings, "withdrawn", "restriction", email=EMAIL,
                                       restriction_grounds=["accuracy_contested"])
    await pool.execute("""INSERT INTO restrictions (request_id, subject_hash, grounds, systems, keeps_from_erasure)
                          VALUES ($1::uuid, $2, '{accuracy_contested}', '{crm}', false)""",
                       restriction, subject_hash(load_secret_key(stack.settings), EMAIL))
    await pool.execute("UPDATE dsr_requests SET status = 'completed', closed_at = now() WHERE id = $1::uuid",
                       restriction)
    for ended in (hold, other):
        await _release_and_sweep(stack, pool, ended)
        assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == contacts
        assert await pool.fetch(UNRESTRICTED, rid) == []
    await pool.execute("UPDATE restrictions SET lifted_at = now() WHERE request_id = $1::uuid", restriction)
    await _release_and_sweep(stack, pool, other)
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == 0
    assert len(await pool.fetch(UNRESTRICTED, rid)) == 1

    # A new erasure of hers, no hold in force now, erases them as any record of hers (it never read
    # what holds keep: called off, they carry her identities still).
    again = await stored_request(pool, stack.settings, "withdrawn", "erasure", email=EMAIL)
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    plan = await fanout._plan(StartRequest(request_id=again, policy_version=str(await pool.fetchval(
        "SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", again))))
    (task,) = [t for t in plan.tasks if t.system == "crm"]
    result = await fanout._run(TaskInput(request_id=again, policy_version=plan.policy_version, task=task, record=True))
    assert result.status == "done" and not result.kept, result
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["n"] == 0


async def test_a_sweep_killed_once_the_restriction_is_lifted_records_it_once_at_its_next_run(stack):
    """Killed after the CRM committed and before the record: the next run lifts again (changing
    nothing) and records it once; the rows are marked unrestricted only with that record."""
    stack, pool = stack
    rid, hold, contacts = await _withdrawn(stack, pool)
    async with pool.acquire() as conn:
        await release_hold(conn, hold["id"], "compliance:test", reason="The claim was settled out of court")
    await sweep_killed_at(stack.settings, "called-off-unrestricted", AS_OF)
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == 0
    assert await pool.fetch(UNRESTRICTED, rid) == []
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid "
                               "AND unrestricted_at IS NOT NULL", rid) == 0
    for _ in range(2):
        await _release_and_sweep(stack, pool, hold)
    assert len(await pool.fetch(UNRESTRICTED, rid)) == 1
    assert await pool.fetchval("SELECT count(*) FROM deferred_erasures WHERE request_id = $1::uuid AND system = 'crm' "
                               "AND unrestricted_at IS NULL", rid) == 0
    assert dict((await fetch_rows(stack.databases["crm"], RESTRICTED))[0]) == {"marked": 0, "n": contacts}


async def test_lifting_her_restriction_leaves_restricted_what_a_hold_in_force_keeps(stack):
    """Not a withdrawal: Ada's erasure kept her CRM contacts whole under a legal-claims hold still
    in force (marked restricted there). She then restricts the CRM's processing of her data and
    compliance lifts it: the lift leaves the hold's records restricted, at a task's lift as at the
    start sweep's held one (both read `kept_records`). Before, the lift freed them, the hold in force."""
    stack, pool = stack
    rid, _ = await _kept_part_way(stack, pool)
    (crm,) = await fetch_rows(stack.databases["crm"], RESTRICTED)
    fanout = FanoutActivities(activity_context(stack.settings, pool))
    restriction = await stored_request(pool, stack.settings, "withdrawn", "restriction", email=EMAIL,
                                       restriction_grounds=["accuracy_contested"])
    plan = await fanout._plan(StartRequest(request_id=restriction, policy_version=str(await pool.fetchval(
        "SELECT policy_version FROM dsr_requests WHERE id = $1::uuid", rid))))
    (task,) = [t for t in plan.tasks if t.system == "crm"]
    for action in ("restrict", "lift_restriction"):
        result = await fanout._run(TaskInput(request_id=restriction, policy_version=plan.policy_version, record=True,
                                             task=task.model_copy(update={"action": action})))
        assert result.status == "done", result
    assert (await fetch_rows(stack.databases["crm"], RESTRICTED))[0]["marked"] == crm["marked"] == crm["n"]


# Her CRM records per dataset: the contacts carry marketing data, her support requests and chats do not.
PER_DATASET = f"""
    SELECT 'contacts' AS dataset, count(*) FILTER (WHERE restricted) AS marked, count(*) AS n
      FROM contacts WHERE email = '{EMAIL}'
    UNION ALL SELECT 'support_requests', count(*) FILTER (WHERE s.restricted), count(*)
      FROM support_requests s JOIN contacts c ON c.id = s.contact_id WHERE c.email = '{EMAIL}'
    UNION ALL SELECT 'chat_transcripts', count(*) FILTER (WHERE t.restricted), count(*)
      FROM chat_transcripts t JOIN contacts c ON c.id = t.contact_id WHERE c.email = '{EMAIL}'"""


async def _per_dataset(stack) -> dict[str, tuple[int, int]]:
    return {r["dataset"]: (r["marked"], r["n"]) for r in await fetch_rows(stack.databases["crm"], PER_DATASET)}


@pytest.mark.parametrize("withdrawn", [True, False], ids=["called-off", "erasure"])
async def test_another_hold_keeps_only_the_categories_it_covers(stack, withdrawn):
    """Another hold over the CRM's marketing data only (her contacts carry it; her support requests
    and chats do not) keeps what it covers, and nothing else, once the first hold is released: the
    called-off erasure's support requests and chats are unrestricted, the open erasure's erased, and
    her contacts stay restricted until it is released too. Before, any hold over the CRM kept all."""
    stack, pool = stack
    if withdrawn:
        rid, hold, _ = await _withdrawn(stack, pool)
    else:
        rid, hold = await _kept_part_way(stack, pool)
    before = await _per_dataset(stack)
    assert all(n > 0 and marked == n for marked, n in before.values()), before
    other = await place_claims_hold(pool, stack.settings, EMAIL, ["crm"], categories=["marketing"])
    await _release_and_sweep(stack, pool, hold)
    after = await _per_dataset(stack)
    assert after["contacts"] == before["contacts"], after  # the marketing hold keeps them, restricted
    others = ("support_requests", "chat_transcripts")
    if withdrawn:
        assert {d: after[d] for d in others} == {d: (0, before[d][1]) for d in others}, after
        (event,) = await pool.fetch(UNRESTRICTED, rid)
        data = json.loads(event["data"]) if isinstance(event["data"], str) else event["data"]
        assert data["records"] == sum(before[d][1] for d in others), data
    else:
        assert {d: after[d][1] for d in others} == {d: 0 for d in others}, after  # erased as the hold ended
    await _release_and_sweep(stack, pool, other)
    last = await _per_dataset(stack)
    assert last["contacts"] == ((0, before["contacts"][1]) if withdrawn else (0, 0)), last
