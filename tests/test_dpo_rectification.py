"""A rectification refused in part, as a data protection officer reads its response. A correction
leaves the records an earlier erasure kept under a hold as the law keeps them (the connectors
count them as `left`: activities/connectors/base.py `left_as_kept`). Before, the letter said
nothing of them: a correction that could change nothing read "We have now completed your
request. We found no personal data about you in our systems.", and one that changed the rest
read as done in full, with no reason and no remedies (Art. 12(4) GDPR; Art. 16)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from activities.citations import cite
from dsrflow.i18n import and_list, worded, wording_of
from policy.systems import dataset_words
from tests.evidence_pages import readable, section
from tests.letters_as_sent import LANGUAGES, LOADED, REGIMES, as_sent, both
from tests.support import console_sign_in, staff_headers, stored_request
from tests.test_letter_citations import _PROCESSOR_CONFIRMED

_HEADING = "What we did not correct, and why"
_NOTHING = ("We have not corrected any of your personal data: the records we hold about you we must keep as they "
            "are, for the reasons given under “%(heading)s” below.")
_EXCEPT = "We have now completed your request, except for the data named under “%(heading)s” below."
_WHY = ("We did not correct the records listed below. When we erased your personal data earlier, we kept these "
        "records because the law obliges us to keep them or because we need them for the establishment, exercise "
        "or defence of legal claims%(citation)s. We keep them as they were when we kept them, until they are "
        "erased: correcting them would change what we must keep.")
# Billing's customer record, kept for the invoices since an erasure, left as it was; its mandate corrected.
# Recorded `done` (the records exist), with nothing found to correct; before, `not_found`.
_BILLING_LEFT = {"system": "billing", "action": "rectify", "status": "done", "found": 0, "changed": 0,
                 "recipient": "financial_services",
                 "datasets": {"customers": {"found": 0, "changed": 0, "left": 1}},
                 "message": "1 record(s) kept under a hold since an erasure were left as kept: the law keeps them "
                            "as they were"}
_BILLING_PART = {**_BILLING_LEFT, "status": "done", "found": 1, "changed": 1,
                 "datasets": {"customers": {"found": 0, "changed": 0, "left": 1},
                              "mandates": {"found": 1, "changed": 1}}}
_CRM = {"system": "crm", "action": "rectify", "status": "done", "found": 2, "changed": 2,
        "datasets": {"contacts": {"found": 2, "changed": 2}}}


def _said(text: str) -> str:
    return " ".join(text.split())


async def _letter(results: list[dict[str, Any]], regime: str, language: str) -> tuple[list[str], Any]:
    letter = await as_sent("response", "rectification", {"report": {"results": results}},
                           regime=regime, language=language)
    return both(letter), worded(language, wording_of(regime))


def _authority(regime: str, language: str) -> str:
    return LOADED.in_language(language).remedies_for(regime, "BE").authority.name


def _uncorrected_line(t: Any, language: str) -> str:
    customers = dataset_words(LOADED.in_language(language).systems, "billing", "customers")
    return f"{customers} ({t.ngettext('%(num)d record', '%(num)d records', 1) % {'num': 1}})"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
async def test_a_correction_that_could_change_only_kept_records_says_so_with_its_reason_and_the_remedies(
        regime, language):
    parts, t = await _letter([_BILLING_LEFT], regime, language)
    heading = t.gettext(_HEADING)
    if language != "en":
        assert heading != _HEADING and t.gettext(_WHY) != _WHY, "not translated"
    for part in parts:
        assert _said(t.gettext(_NOTHING) % {"heading": heading}) in part, (regime, language, part)
        assert _said(t.gettext(_WHY) % {"citation": cite(regime, "17(3)", " (%s)", t)}) in part, (regime, language)
        assert _uncorrected_line(t, language) in part, (regime, language, part)
        # The remedies, naming the authority of the request's law as every refusal does.
        assert _authority(regime, language) in part, (regime, language)
        for untrue in ("We have now completed your request.", "We found no personal data about you in our systems."):
            assert _said(t.gettext(untrue)) not in part, (regime, language, untrue)
        # Billing's recipient is told of no correction (Art. 19): nothing was corrected.
        told = LOADED.in_language(language).recipients["financial_services"]
        assert (told.identity or told.name) not in part, (regime, language)
    if regime == "gdpr" and language == "en":
        assert ("We have not done everything you asked, for the reasons given above. As Article 12(4) GDPR "
                "requires, we set out below the remedies available to you.") in parts[0]
        assert "When we erased your personal data earlier, we kept these records because the law obliges us to " \
               "keep them or because we need them for the establishment, exercise or defence of legal claims " \
               "(Art. 17(3) GDPR)." in parts[0]
        assert "- Billing (customers, invoices, payments, mandates): customers (1 record)" in parts[0]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_correction_done_but_for_kept_records_names_them_apart_from_what_it_corrected(language):
    parts, t = await _letter([_CRM, _BILLING_PART], "gdpr", language)
    heading = t.gettext(_HEADING)
    mandates = dataset_words(LOADED.in_language(language).systems, "billing", "mandates")
    customers = dataset_words(LOADED.in_language(language).systems, "billing", "customers")
    for part in parts:
        assert _said(t.gettext(_EXCEPT) % {"heading": heading}) in part, (language, part)
        assert _uncorrected_line(t, language) in part, (language, part)
        assert _authority("gdpr", language) in part
        # What was corrected (between the opening's heading and the section's) names the mandate
        # alone, not the customer record left as kept.
        done = part.split(heading)[1]
        assert mandates in done and and_list(sorted([customers, mandates]), language) not in done, (language, done)
    text = parts[0]
    if language == "en":
        assert "- Billing (customers, invoices, payments, mandates): mandates corrected (1 record)" in text
        assert "- Billing (customers, invoices, payments, mandates): customers (1 record)" in text


async def test_a_correction_only_a_processor_confirmed_does_not_say_nothing_was_found_or_corrected():
    """A processor asked by e-mail confirms without counting records, and is told (Art. 19): the
    letter neither says it corrected nothing nor that it found nothing beside what it left as kept."""
    parts, t = await _letter([{**_PROCESSOR_CONFIRMED, "action": "rectify"}, _BILLING_LEFT], "gdpr", "en")
    for part in parts:
        assert _said(_EXCEPT % {"heading": _HEADING}) in part, part
        assert "of this rectification (Art. 19 GDPR): Survey service provider." in part
        assert "We have not corrected any" not in part and "We found no personal data" not in part
        assert _uncorrected_line(t, "en") in part


_NOT_CORRECTED = "records kept as an earlier erasure left them, not corrected"


@pytest.mark.parametrize("recorded", ["done", "not_found"])
async def test_a_correction_that_left_every_record_reads_as_not_corrected_not_as_not_found(
        http, pool, settings, recorded):
    """The task of a system whose every record an earlier erasure kept, left as it was, is recorded
    `done` (the connectors: the records exist) and read so: the console's Systems table and the
    evidence pack said "not found", as if the system held nothing about the subject. One recorded
    `not_found` before (2026-12-07) reads the same; a system that did hold nothing still reads so."""
    rid = await stored_request(pool, settings, f"left-{recorded}", type_="rectification", corrections={"city": "Gent"})
    await pool.executemany(
        """INSERT INTO system_tasks (request_id, system, action, status, found, changed, datasets)
           VALUES ($1, $2, 'rectify', $3, 0, 0, $4)""",
        [(uuid.UUID(rid), "billing", recorded, {"customers": {"found": 0, "changed": 0, "left": 1}}),
         (uuid.UUID(rid), "crm", "not_found", {"contacts": {"found": 0, "changed": 0}})])

    pack = (await http.get(f"/v1/requests/{rid}/evidence", headers=await staff_headers(pool))).json()
    words = {t["system"]: (t["status_words"], t["uncorrected"]) for t in pack["results"]}
    assert words == {"billing": (_NOT_CORRECTED, 1), "crm": ("not found", 0)}, words
    page = readable((await http.get(f"/v1/requests/{rid}/evidence.html", headers=await staff_headers(pool))).text)
    results = section(page, "Results per system", "Holds and kept records")
    assert f"billing correct {_NOT_CORRECTED} 0 0" in results and results.count("not found") == 1, results

    await console_sign_in(http, pool, "agent")
    systems = section(readable((await http.get(f"/console/requests/{rid}")).text), "Systems", "Holds")
    assert _NOT_CORRECTED in systems and systems.count("not found") == 1, systems
