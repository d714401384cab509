"""The closing letter of an erasure closed unanswered says what became of what its holds kept as
it stands when the letter is written (activities/letter_kept_closed.py): Ada's erasure, run in
Billing (invoices kept under the accounting statute), the CRM and the survey processor (kept whole
under a legal-claims hold), as tests/test_deferred_closed_unanswered.py runs it.

Before, the letter said "we will not erase it when the claim ends" of what a hold released while
the request was still open had erased days before (the CRM) or asked the processor to erase (the
survey provider), and "we keep them until 31 December 2035" of invoices whose period had ended and
which the sweep had deleted."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.connectors.base import HeldRecord
from activities.connectors.sql_erasure import kept_summary
from activities.deferred import DeferredErasureActivities
from activities.letter_kept_closed import KEPT_AT_CLOSE
from activities.letter_kept_since import (
    _ASKED_AT_RELEASE,
    _ERASING_AT_RELEASE,
    _PERIOD_ENDED_UNERASED,
    _UNCONFIRMED_AT_RELEASE,
    _UNERASED_AT_RELEASE,
    _UNREACHED_AT_RELEASE,
)
from api.read_models.event_lines import describe_event, own_systems
from dsrflow.i18n import and_list, long_date, worded, wording_of
from dsrflow.stores.deferred_store import retry_deferred
from dsrflow.stores.holds_store import release_hold
from dsrflow.stores.requests_store import set_status
from schemas.holds import SweepInput
from schemas.requests import RequestStatus
from tests.evidence_pages import readable
from tests.fanout_stack import api
from tests.letters_as_sent import LANGUAGES, LOADED, as_sent, both
from tests.support import console_sign_in, staff_headers
from tests.test_deferred_closed_unanswered import _kept_part_way, stack  # noqa: F401 (its fixture: Ada, a database of her own)
from workers.dsr_worker import activity_context

CRM, SURVEYS = "CRM (contacts, support requests, live chat)", "Survey service provider"
# ... as a sentence names them after "in" (the policy's `where`).
CRM_IN, SURVEYS_AT = "in our CRM", "at our survey service provider"
BILLING = "Billing (customers, invoices, payments, mandates)"
PARAMS = {"reason": "Withdrawn by phone", "withdrawn": True, "acted_in": ["billing", "crm"], "asked_in": []}
WILL_NOT_ERASE = "we will not erase it when the claim ends"


async def _release_and_sweep(running, pool, hold: dict, as_of: datetime) -> None:
    async with pool.acquire() as conn:
        await release_hold(conn, hold["id"], "compliance:test", reason="The claim was settled out of court")
    sweep = DeferredErasureActivities(activity_context(running.settings, pool)).sweep
    await ActivityEnvironment().run(sweep, SweepInput(reason="test", as_of=as_of))


async def _close(pool, rid: str) -> None:
    async with pool.acquire() as conn:  # as the workflow's close records it (activities/lifecycle.py)
        await set_status(conn, rid, RequestStatus.cancelled, event_key=f"{rid}:closed", actor="subject")


async def _letter(pool, rid: str, **options) -> list[str]:
    return both(await as_sent("cancellation", "erasure", PARAMS, pool=pool, id=rid, **options))


async def _response_tells_what_is_kept_now(pool, rid: str) -> None:
    """Her response, had her erasure completed now rather than been withdrawn: what the hold kept
    and the 2025 records are among what was done, erased or asked, no longer "kept" (before: "We could
    not erase the data listed below ... your data in CRM", the processor "until the hold ends")."""
    tasks = [dict(row) for row in await pool.fetch(
        "SELECT system, action, status, found, changed, kept, datasets, kept_records FROM system_tasks "
        "WHERE request_id = $1::uuid AND action = 'erase'", rid)]
    letter = await as_sent("response", "erasure", {"report": {"results": tasks}}, pool=pool, id=rid)
    erased, kept = letter.text.split("What we erased", 1)[1].split("What we kept, and why", 1)
    for line in (f"- {CRM}: the data the legal-claims hold kept – erased when the hold ended (",
                 f"- {SURVEYS}: the data the legal-claims hold kept – erasure asked of it when the hold ended, not yet "
                 "confirmed\n", f"- {BILLING}: invoices, mandates and payments – erased when the period the law sets for it "
                 "ended (5 records)"):
        assert line in erased, erased
    kept = kept.split("Your rights", 1)[0]  # only her 2026 records, kept still: one item for the law
    assert "legal claims" not in kept and "until the hold ends" not in kept and "2035" not in kept, kept
    assert kept.count("\n- ") == 1 and "Kept until: 31 December 2036\n" in kept, kept
    html = both(letter)[1]
    assert "erasure asked of it when the hold ended, not yet confirmed 0" not in html, html


async def test_a_claim_ended_while_her_erasure_was_open_is_told_as_erased_or_asked(stack, mail_sink):  # noqa: F811
    """The hold released while the request was open: the sweep erased her CRM data and asked the
    survey processor to erase (its e-mail sent, no confirmation yet); run as of 2036, it also deleted
    her billing records of 2025, their period over (those of 2026 stay a year more). The withdrawal
    calls off nothing, and the letter says each as it stands."""
    stack, pool = stack
    rid, hold = await _kept_part_way(stack, pool)
    await _release_and_sweep(stack, pool, hold, datetime(2036, 1, 2, 12, tzinfo=UTC))
    await _response_tells_what_is_kept_now(pool, rid)
    await _close(pool, rid)
    states = dict(await pool.fetch("SELECT system, CASE WHEN bool_and(done_at IS NOT NULL) THEN 'erased' "
                                   "WHEN bool_or(submitted_at IS NOT NULL) THEN 'asked' ELSE 'other' END "
                                   "FROM deferred_erasures WHERE request_id = $1::uuid GROUP BY system", rid))
    states = dict(await pool.fetch("SELECT system || ' ' || coalesce(erase_after::text, ''), bool_and(done_at IS "
                                   "NOT NULL) OR bool_or(submitted_at IS NOT NULL) FROM deferred_erasures "
                                   "WHERE request_id = $1::uuid GROUP BY 1", rid))
    assert states == {"billing 2036-01-01": True, "billing 2037-01-01": False, "crm ": True, "surveys ": True}, states
    for part in await _letter(pool, rid):
        assert WILL_NOT_ERASE not in part, part
        assert (f"We had kept your personal data {CRM_IN} because of a legal claim. That claim has since ended, "
                "and we have erased that data.") in part, part
        assert (f"We had kept your personal data {SURVEYS_AT} because of a legal claim. That claim has since "
                "ended, and we have asked for that data to be erased; we are waiting for confirmation that it "
                "has been.") in part, part
        # Her 2025 documents are gone, her 2026 ones kept: one statement for the law.
        assert part.count("because the law requires us to (Belgian VAT Code") == 1, part
        assert ("we keep them, restricted and reduced to what the law needs, until 31 December 2036, and then "
                "delete them. We have already deleted those we had to keep until 31 December 2035: that period "
                "has ended.") in part, part
    # The survey processor then refuses (or never confirms): the sweep records the failure
    # (activities/deferred_processors.py record_failure). The letter no longer says its
    # confirmation is awaited: asked, not confirmed, followed up.
    await pool.execute("UPDATE deferred_erasures SET failed_at = now(), failure = 'refused: job rejected' "
                       "WHERE request_id = $1::uuid AND system = 'surveys'", rid)
    for part in await _letter(pool, rid):
        assert "waiting for confirmation" not in part and f"{CRM_IN} because of a legal claim. That claim has since ended, " \
            "and we have erased that data." in part, part
        assert f"{SURVEYS_AT} because of a legal claim. That claim has since ended, and we asked for that data to be " \
               "erased, but we have had no confirmation that it has been; we are following this up." in part, part
    # In the words of a law that deletes, and in every language.
    ccpa = (await _letter(pool, rid, regime="ccpa"))[0]
    assert "That claim has since ended, and we have deleted that information." in ccpa, ccpa
    for language, said in (("fr", "Cette action a depuis pris fin, et nous avons effacé ces données."),
                           ("nl", "Die rechtsvordering is inmiddels beëindigd, en wij hebben die gegevens gewist."),
                           ("de", "Dieser Anspruch ist inzwischen beendet, und wir haben diese Daten gelöscht.")):
        assert said in (await _letter(pool, rid, language=language))[0]
    # Billing not reached by the sweep (as activities/deferred.py `_unreached_too_long` records it):
    # its statute's records read `failed`, as a failed erasure's do (the letters' words for it:
    # test_a_statutes_erasure_that_failed_after_its_period_is_not_told_as_under_way).
    await pool.execute("UPDATE deferred_erasures SET unreached_since = now() WHERE request_id = $1::uuid "
                       "AND system = 'billing' AND done_at IS NULL", rid)
    tasks = json.loads(await pool.fetchval(f"SELECT {KEPT_AT_CLOSE}::text FROM dsr_requests r WHERE r.id = $1::uuid",
                                           rid))
    assert {(k["until"], k["fate"]) for task in tasks if task["system"] == "billing" for k in task["kept"]} == {
        ("2035-12-31", "erased"), ("2036-12-31", "failed")}, tasks
    # The CRM not reached by the sweep once the claim ended (its row as `_unreached_too_long` leaves
    # it: not done, unreached_since, nobody asked): `unreached`, told as not yet erased and followed
    # up (before: `released`, "we have not erased that data" of data the sweep was trying to erase).
    await pool.execute("UPDATE deferred_erasures SET done_at = NULL, unreached_since = now() "
                       "WHERE request_id = $1::uuid AND system = 'crm'", rid)
    tasks = json.loads(await pool.fetchval(f"SELECT {KEPT_AT_CLOSE}::text FROM dsr_requests r WHERE r.id = $1::uuid",
                                           rid))
    assert {k["fate"] for task in tasks if task["system"] == "crm" for k in task["kept"]} == {"unreached"}, tasks
    for part in await _letter(pool, rid):
        assert UNERASED % {"where": CRM_IN} in " ".join(part.split()), part
    # The CRM's erasure then fails, and compliance asks again (retried_at): our own system, whose
    # erasure the sweep runs again, is told as being erased, not as asked of anyone and awaiting a
    # confirmation; the trail says the sweep erases it, not that a processor was asked.
    await pool.execute("UPDATE deferred_erasures SET unreached_since = NULL, failed_at = now(), failure = 'refused' "
                       "WHERE request_id = $1::uuid AND system = 'crm'", rid)
    await retry_deferred(pool, rid, "crm", actor="compliance:test")
    for part in await _letter(pool, rid):
        part = " ".join(part.split())
        assert ERASING % {"where": CRM_IN} in part and ASKED % {"where": CRM_IN} not in part, part
    retried = await pool.fetchrow("SELECT event_type, data::text AS data FROM audit_events WHERE request_id = $1::uuid "
                                  "AND event_type = 'erasure.deferred_retried'", rid)
    assert describe_event({"event_type": retried["event_type"], "data": json.loads(retried["data"])}, {},
                          {"crm": CRM}) == f"Deferred erasure asked again by staff: the sweep erases it in our own system ({CRM})"
    # The evidence pack's scheduled erasures: the CRM's tried again, not "asked 2 times" of a processor;
    # the console's panel: its rows asked again of the sweep, not "being sent to the processor".
    async with api(stack) as http:
        page = readable((await http.get(f"/v1/requests/{rid}/evidence.html",
                                        headers=await staff_headers(pool, "compliance"))).text)
        scheduled = page[page.find("Scheduled erasures"):][:3000]
        assert "tried 2 times, asked again by staff" in scheduled and "asked 2 times" not in page, scheduled
        # A retry recorded before its event carried `own_system` is told by the connector of the
        # pack's rows (their policy version's): the CRM is ours, the survey provider a processor.
        pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=await staff_headers(pool, "compliance"))).json()
        own = own_systems(pack["holds"]["deferred_erasures"])
        for system, label, said in (("crm", CRM, "Deferred erasure asked again by staff: the sweep erases it in our "
                                     "own system"), ("surveys", SURVEYS, "Processor asked again to carry out the "
                                                     "deferred erasure")):
            assert describe_event({"event_type": "erasure.deferred_retried", "data": {"system": system, "attempt": 2}},
                                  {}, {system: label}, own_systems=own) == f"{said} ({label})", own
        await console_sign_in(http, pool, "compliance")
        console = (await http.get(f"/console/requests/{rid}")).text
    crm = readable(console.split('<tr data-system="crm">', 1)[1].split("</tr>", 1)[0])
    assert "asked again, not yet erased: the sweep did not start" in crm and "processor" not in crm, crm
    # Its button (offered again: the sweep never started) says what it does; it read "Ask CRM (…) again",
    # asking nobody. The survey provider's, a processor's, is not offered here (asked, awaited).
    panel = readable(console.split('id="deferred"', 1)[1].split("</section>", 1)[0])
    assert f"Erase it again in the system “{CRM}”" in panel and f"Ask {CRM} again" not in panel, panel
    assert f"Nobody is asked: the sweep erases them in the system “{CRM}” again, now." in panel, panel


async def test_a_called_off_erasure_is_told_as_kept_then_as_not_erased_once_the_claim_ends(stack):  # noqa: F811
    """Withdrawn with the hold in force: called off, the letter says it will not be erased when the
    claim ends; written again once the hold is released (a letter retried after the release), it
    says the claim has ended and the data was not erased, as it was not. The invoices stay kept
    until their periods end (her documents of 2025 and 2026: two end dates), in one statement that
    names the law once (before, a sentence per date, the same but for it)."""
    stack, pool = stack
    rid, hold = await _kept_part_way(stack, pool)
    await _close(pool, rid)
    kept = ("because of a legal claim. As your request is closed, we will not erase it when the claim ends: it "
            "stays as it is, and we keep it only as long as our privacy policy says.")
    statute = ("because the law requires us to (Belgian VAT Code Art. 60 §4 and Income Tax Code (CIR 92) Art. 315; "
               "Code of Economic Law Art. III.86 and III.88 (accounting records): 7 years for documents of 2022 and "
               "earlier, 10 years for documents of 2023 and later (Law of 20 November 2022)): we keep them, restricted "
               "and reduced to what the law needs, each until the end of its period (31 December 2035 and 31 December "
               "2036), and then delete them.")
    for part in await _letter(pool, rid):
        assert f"{CRM_IN} and {SURVEYS_AT} {kept}" in part and part.count(statute) == 1, part
    await _release_and_sweep(stack, pool, hold, datetime.now(UTC))
    assert await pool.fetchval("SELECT bool_and(called_off_at IS NOT NULL AND done_at IS NULL) FROM deferred_erasures "
                               "WHERE request_id = $1::uuid AND hold_kind = 'legal_claims'", rid)
    for part in await _letter(pool, rid):
        assert WILL_NOT_ERASE not in part and "we have erased" not in part, part
        assert (f"We had kept your personal data {CRM_IN} and {SURVEYS_AT} because of a legal claim. That claim has "
                "since ended. As your request is closed, we have not erased that data: we keep it only as long as "
                "our privacy policy says.") in part, part
        assert part.count(statute) == 1, part


async def test_a_period_ended_and_not_yet_erased_is_told_as_being_deleted():
    """A statute's period over when the letter is written, the sweep not yet run on it (it runs
    daily, and a system it cannot reach waits): neither letter says "we keep them until" a day
    past. Pure rendering: the tasks' kept records as KEPT_AT_CLOSE reads them."""
    held = [HeldRecord("invoices", "INV-1", "statutory", "be_accounting", date(2025, 12, 31)),
            HeldRecord("invoices", "INV-2", "statutory", "be_accounting", date(2035, 12, 31))]
    kept = [{**k, "fate": "kept"} for k in kept_summary(LOADED.policy, "billing", held, {})]
    facts = {"kept_at_close": [{"system": "billing", "whole": False, "kept": kept}], "stopped_runs": [], "done_systems": []}
    closing = await as_sent("cancellation", "erasure", PARAMS, **facts)
    for part in both(closing):
        assert ("we keep them, restricted and reduced to what the law needs, until 31 December 2035, and then delete "
                "them. The period for those we had to keep until 31 December 2025 has ended: we are deleting them.") in part
    alone = {**facts, "kept_at_close": [{"system": "billing", "whole": False, "kept": kept[:1]}]}
    for part in both(await as_sent("cancellation", "erasure", PARAMS, **alone)):
        assert "), until 31 December 2025: that period has ended, and we are deleting them." in part, part
    task = {"system": "billing", "action": "erase", "status": "done", "found": 2, "kept": 2,
            "datasets": {"invoices": {"found": 2, "kept": 2}}, "kept_records": kept}
    response = (await as_sent("response", "erasure", {"report": {"results": [task]}}, **facts)).text
    assert f"- {BILLING}: invoices – being erased: the period the law sets for it has ended (1 record)" in response
    assert "Kept until: 31 December 2035" in response and "2025" not in response.split("What we kept", 1)[1], response


# A legal claim's erasure that failed once the claim ended (`_FATE` "failed"): at a processor it
# was asked and refused or never confirmed; in our own CRM the sweep could not erase. Neither is
# "waiting for confirmation that it has been" (before: both were, as a processor simply asked).
UNCONFIRMED = ("We had kept your personal data %(where)s because of a legal claim. That claim has since ended, and "
               "we asked for that data to be erased, but we have had no confirmation that it has been; we are "
               "following this up.")
UNERASED = ("We had kept your personal data %(where)s because of a legal claim. That claim has since ended, but we "
            "have not yet been able to erase that data; we are following this up.")
ASKED = ("We had kept your personal data %(where)s because of a legal claim. That claim has since ended, and we "
         "have asked for that data to be erased; we are waiting for confirmation that it has been.")
# ... and in our own system, its failed erasure asked again by staff (`_FATE` "asked", retried_at): the
# sweep runs it; nobody was asked (before: ASKED, as of a processor).
ERASING = ("We had kept your personal data %(where)s because of a legal claim. That claim has since ended, and "
           "that data is being erased.")


def _crm_and_surveys_named(language: str) -> tuple[Any, tuple[str, str], tuple[str, str]]:
    """A GDPR letter's words in `language`, and the CRM and the survey processor as it names them:
    by label (a list's item) and after a verb (`where`)."""
    policy = LOADED.in_language(language)
    crm, surveys = policy.systems["crm"], policy.systems["surveys"]
    assert crm.where and surveys.where  # the shipped policy gives every system its phrase
    return worded(language, wording_of("gdpr")), (crm.label, surveys.label), (crm.where, surveys.where)


def _claims_at_crm_and_surveys(fate: str, others: list[dict] | None = None) -> tuple[dict, list[dict]]:
    """A letter's facts (the request's kept records at the close) and its erasure tasks: a legal
    claim kept the CRM and the survey processor whole, its erasure now at `fate` (KEPT_AT_CLOSE),
    after the `others` systems' kept records."""
    claims = {"hold_kind": "legal_claims", "hold_ref": "0b9f8f1e-1111-4222-8333-444455556666", "dataset": "all",
              "records": 0, "basis": "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims",
              "law": "a legal claim", "until": "2027-06-30", "fate": fate}
    kept = [*(others or []), *({"system": system, "whole": True, "kept": [{**claims, "system": system}]}
                               for system in ("crm", "surveys"))]
    tasks = [{"system": task["system"], "action": "erase", "status": "done", "found": 1, "kept": 1,
              "kept_records": task["kept"]} for task in kept]
    return {"kept_at_close": kept, "stopped_runs": [], "done_systems": []}, tasks


async def test_a_claims_erasure_that_failed_is_not_told_as_awaiting_confirmation():
    """Pure rendering, in every language: the closing letter and the response, the processor's
    and the CRM's erasures failed after the claim ended, the statute's records kept still."""
    held = [HeldRecord("invoices", "INV-2", "statutory", "be_accounting", date(2035, 12, 31))]
    billing = [{**k, "fate": "kept"} for k in kept_summary(LOADED.policy, "billing", held, {})]
    facts, tasks = _claims_at_crm_and_surveys("failed", [{"system": "billing", "whole": False, "kept": billing}])
    for language in LANGUAGES:
        t, (crm, surveys), (crm_in, surveys_at) = _crm_and_surveys_named(language)
        closing = await as_sent("cancellation", "erasure", PARAMS, language=language, **facts)
        for part in both(closing):
            for message, where in ((UNCONFIRMED, surveys_at), (UNERASED, crm_in)):
                assert " ".join((t.gettext(message) % {"where": where}).split()) in part, part
            assert " ".join(t.gettext(ASKED).split()[-6:]) not in part, part
        response = (await as_sent("response", "erasure", {"report": {"results": tasks}}, language=language,
                                  **facts)).text
        erased = response.split("\n" + t.gettext("What we kept, and why") + "\n")[0]  # the heading, not the opening
        for system, done in ((surveys, _UNCONFIRMED_AT_RELEASE), (crm, _UNERASED_AT_RELEASE)):
            assert any(line.startswith(f"- {system}") and line.endswith(f" – {t.gettext(done)}")
                       for line in erased.splitlines()), erased
        assert t.gettext("erasure asked of it when the hold ended, not yet confirmed") not in response


# A statute's records past their period whose erasure failed, or whose system the sweep has not
# reached since (`_FATE` "failed": failed_at, or unreached_since on a statutory row). Before, both
# letters said "we are deleting them" / "being erased", as of records the sweep had simply not
# reached yet: untrue of a system that refuses or is down.
PERIOD_UNERASED = ("The period for those we had to keep until %(dates)s has ended, but we have not yet been able to "
                   "delete them; we are following this up.")
ALL_UNERASED = ("We had kept some of your records %(where)s because the law required us to (%(law)s), until "
                "%(dates)s: that period has ended, but we have not yet been able to delete them; we are following "
                "this up.")


async def test_a_statutes_erasure_that_failed_after_its_period_is_not_told_as_under_way():
    """Pure rendering, in every language: Billing's invoices of 2024 past their period, their erasure
    failed; those of 2035 still kept. The closing letter, with and without the kept ones, and the
    response's line of what was done."""
    held = [HeldRecord("invoices", "INV-1", "statutory", "be_accounting", date(2024, 12, 31)),
            HeldRecord("invoices", "INV-2", "statutory", "be_accounting", date(2035, 12, 31))]
    kept = [{**k, "fate": "failed" if k["until"] < "2026" else "kept"}
            for k in kept_summary(LOADED.policy, "billing", held, {})]
    facts = {"kept_at_close": [{"system": "billing", "whole": False, "kept": kept}], "stopped_runs": [], "done_systems": []}
    alone = {**facts, "kept_at_close": [{"system": "billing", "whole": False, "kept": kept[:1]}]}
    task = {"system": "billing", "action": "erase", "status": "done", "found": 2, "kept": 2,
            "datasets": {"invoices": {"found": 2, "kept": 2}}, "kept_records": kept}
    for language in LANGUAGES:
        t, policy = worded(language, wording_of("gdpr")), LOADED.in_language(language)
        day = long_date(date(2024, 12, 31), language)
        for part in both(await as_sent("cancellation", "erasure", PARAMS, language=language, **facts)):
            assert t.ngettext(PERIOD_UNERASED, PERIOD_UNERASED, 1) % {"dates": day} in part, part
            assert language != "en" or "we are deleting them" not in part, part
        for part in both(await as_sent("cancellation", "erasure", PARAMS, language=language, **alone)):
            said = t.ngettext(ALL_UNERASED, ALL_UNERASED, 1).split("%(dates)s", 1)[1]
            assert f"{day}{said}" in part, part
        response = (await as_sent("response", "erasure", {"report": {"results": [task]}}, language=language,
                                  **facts)).text
        billing = policy.systems["billing"].label
        assert any(line.startswith(f"- {billing}") and f" – {t.gettext(_PERIOD_ENDED_UNERASED)} (" in line
                   for line in response.splitlines()), response
        assert t.gettext("being erased: the period the law sets for it has ended") not in response, response


async def test_a_claims_data_the_sweep_has_not_reached_is_not_told_as_kept_or_released():
    """Pure rendering, in every language: the claim ended, the sweep has not reached the CRM nor
    the survey processor since (`_FATE` "unreached": nobody asked). The closing letter says the
    claim has ended and the data is not yet erased, followed up, of both (not "we asked", of the
    processor never asked); the response lists them among what was done so, not under "What we
    kept, and why" ("until the hold ends"), as it did."""
    facts, tasks = _claims_at_crm_and_surveys("unreached")
    for language in LANGUAGES:
        t, (crm, surveys), (crm_in, surveys_at) = _crm_and_surveys_named(language)
        for part in both(await as_sent("cancellation", "erasure", PARAMS, language=language, **facts)):
            part = " ".join(part.split())
            said = " ".join((t.gettext(UNERASED) % {"where": and_list([crm_in, surveys_at], language)}).split())
            assert said in part, part
            for other in (UNCONFIRMED, ASKED):
                assert " ".join(t.gettext(other).split("%(where)s")[1].split()) not in part, part
        response = (await as_sent("response", "erasure", {"report": {"results": tasks}}, language=language,
                                  **facts)).text
        heading = "\n" + t.gettext("What we kept, and why") + "\n"
        assert heading not in response, response
        for system in (crm, surveys):
            assert any(line.startswith(f"- {system}") and line.endswith(f" – {t.gettext(_UNREACHED_AT_RELEASE)}")
                       for line in response.splitlines()), response


async def test_a_claims_erasure_asked_again_is_told_as_under_way_in_our_system_and_asked_of_the_processor():
    """Pure rendering, in every language: compliance asked again for the claim's failed erasures
    (`_FATE` "asked") in the CRM and at the survey processor. The closing letter says the CRM's data
    is being erased and the processor's asked and awaited; the response lists each so among what
    was done."""
    facts, tasks = _claims_at_crm_and_surveys("asked")
    for language in LANGUAGES:
        t, (crm, surveys), (crm_in, surveys_at) = _crm_and_surveys_named(language)
        for part in both(await as_sent("cancellation", "erasure", PARAMS, language=language, **facts)):
            part = " ".join(part.split())
            for message, where in ((ERASING, crm_in), (ASKED, surveys_at)):
                assert " ".join((t.gettext(message) % {"where": where}).split()) in part, part
            assert " ".join((t.gettext(ASKED) % {"where": and_list([crm_in, surveys_at], language)}).split()) not in part
        response = (await as_sent("response", "erasure", {"report": {"results": tasks}}, language=language,
                                  **facts)).text
        erased = response.split("\n" + t.gettext("What we kept, and why") + "\n")[0]
        for system, done in ((crm, _ERASING_AT_RELEASE), (surveys, _ASKED_AT_RELEASE)):
            assert any(line.startswith(f"- {system}") and line.endswith(f" – {t.gettext(done)}")
                       for line in erased.splitlines()), erased
    # In the words of a law that deletes.
    ccpa = " ".join((await _letter_of(facts, regime="ccpa")).split())
    assert "That claim has since ended, and that information is being deleted." in ccpa, ccpa


async def _letter_of(facts: dict, **options) -> str:
    return both(await as_sent("cancellation", "erasure", PARAMS, **facts, **options))[0]
