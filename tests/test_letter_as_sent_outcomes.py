"""What a response lists as done, as a subject receives it (the letter activity's own context,
rendered in every language): records kept are never said to be erased, other requests count what
they found or changed, and the recipients told of it are named (Art. 17(3), 12(1), 19). Split from
tests/test_letter_as_sent.py, which holds the other letters as sent."""

from __future__ import annotations

from typing import Any

import pytest

from dsrflow.i18n import translations
from tests.letters_as_sent import LANGUAGES, LOADED, as_sent, both, erasure_with_kept, kept_records

# --- 8. Records kept are never said to be erased (Art. 17(3), 12(1)) ------------------------
# The SQL connector counts in `changed` the kept records it minimised and marked restricted as
# well as those it deleted (activities/connectors/sql.py): that count is not what was erased.

def _crm_kept(changed: int) -> dict[str, Any]:
    """The CRM's result when a legal-claims hold kept all of it: marked restricted (`changed` 1, as
    the connector reports it) or, as another connector would, nothing changed."""
    kept = [k for k in kept_records() if k["system"] == "crm"]
    return {"system": "crm", "action": "erase", "status": "done", "found": 1, "changed": changed, "kept": 1,
            "datasets": {"contacts": {"found": 1, "changed": changed, "kept": 1, "deleted": 0}},
            "kept_records": kept}


def _billing_mixed() -> dict[str, Any]:
    """Billing: two invoices kept (minimised and restricted) and the customer record deleted."""
    kept = [k for k in kept_records() if k["system"] == "billing"]
    return {"system": "billing", "action": "erase", "status": "done", "found": 3, "changed": 3, "kept": 2,
            "datasets": {"invoices": {"found": 2, "changed": 2, "kept": 2, "deleted": 0},
                         "customers": {"found": 1, "changed": 1, "kept": 0, "deleted": 1}},
            "kept_records": kept}


# What the plain text says was done to a system's datasets, after its label (activities/letter_outcome.py).
_DONE_TO = {"erase": ("%(datasets)s erased (%(num)d record)", "%(datasets)s erased (%(num)d records)"),
            "rectify": ("%(datasets)s corrected (%(num)d record)", "%(datasets)s corrected (%(num)d records)"),
            "restrict": ("processing of %(datasets)s restricted (%(num)d record)",
                         "processing of %(datasets)s restricted (%(num)d records)"),
            "object": ("processing of %(datasets)s stopped, as you objected (%(num)d record)",
                       "processing of %(datasets)s stopped, as you objected (%(num)d records)"),
            "access": ("%(datasets)s found (%(num)d record)", "%(datasets)s found (%(num)d records)")}
_ACTION_WORDS = {"erase": "erased", "rectify": "corrected", "restrict": "restricted",
                 "object": "stopped processing as you objected", "access": "found"}


def _listed(system: str, datasets: str, action: str, records: int, language: str = "en") -> list[str]:
    """A system's line under the actions heading, as `both` reads the text and the HTML table."""
    t = translations(language)
    done = t.ngettext(*_DONE_TO[action], records) % {"datasets": datasets, "num": records}
    line = t.gettext("%(label)s: %(value)s") % {"label": system, "value": done}
    return [" ".join(line.split()), f"{system} {datasets} {t.gettext(_ACTION_WORDS[action])} {records}"]


def _section(text: str, heading: str, headings: tuple[str, ...]) -> str:
    """The plain text under `heading`, up to the next of `headings`."""
    after = text.split(heading, 1)[1]
    ends = [after.index(h) for h in headings if h in after]
    return after[:min(ends)] if ends else after


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("changed", [0, 1])
async def test_a_system_whose_records_were_all_kept_is_not_listed_as_erased(changed, language):
    t = translations(language)
    # The CRM as the kept item names it, after its records ("in our CRM": policy `where`).
    crm, billing = LOADED.in_language(language).systems["crm"].where, LOADED.in_language(language).systems["billing"].label
    erased, kept = t.gettext("What we erased"), t.gettext("What we kept, and why")
    only_kept = await as_sent("response", "erasure", {"report": {"results": [_crm_kept(changed)]}}, language=language)
    # Nothing was erased: no "What we erased" at all; the CRM is named under what we kept.
    for part in both(only_kept):
        assert erased not in part and t.gettext("erased") + " (" not in part
        assert crm in part.split(kept, 1)[1]
    mixed = await as_sent("response", "erasure", {"report": {"results": [_crm_kept(changed), _billing_mixed()]}},
                          language=language)
    billing_system = LOADED.in_language(language).systems["billing"]  # its datasets in the letter's words
    for part, line in zip(both(mixed), _listed(billing, billing_system.dataset_label("customers"), "erase", 1, language),
                          strict=True):
        listed = _section(part, erased, (kept,))
        assert crm not in listed
        # Billing erased the customer record only; its two invoices are under what we kept.
        assert billing_system.dataset_label("invoices") not in listed.replace(billing, "")
        assert line in listed
        assert crm in part.split(kept, 1)[1] and billing in part.split(kept, 1)[1]


@pytest.mark.parametrize(("request_type", "action", "result", "records"), [
    ("access", "access", {"found": 5, "changed": 0}, 5),
    ("rectification", "rectify", {"found": 2, "changed": 1}, 1),
    ("restriction", "restrict", {"found": 3, "changed": 0}, 3),
    ("objection", "object", {"found": 4, "changed": 4}, 4),
])
async def test_other_requests_still_count_what_they_found_or_changed(request_type, action, result, records):
    letter = await as_sent("response", request_type, {"report": {"results": [
        {"system": "crm", "action": action, "status": "done", "datasets": {"contacts": {**result, "kept": 0}},
         **result}]}})
    crm = LOADED.policy.systems["crm"].label
    for part, line in zip(both(letter), _listed(crm, "contacts", action, records), strict=True):
        assert line in part


async def test_a_correction_that_changed_nothing_it_found_says_nothing_needed_correcting():
    """Records a correction found already as asked (a sql row holding the value) are not
    "corrected" (the letter said "contacts corrected (2 records)"): they held nothing to correct,
    and the system's recipient is not named as told of a rectification (Art. 19) it was not sent."""
    def task(changed: int) -> dict[str, Any]:
        counts = {"found": 2, "changed": changed}
        return {"system": "crm", "action": "rectify", "status": "done", "recipient": "financial_services",
                "datasets": {"contacts": counts}, **counts}

    letter = await as_sent("response", "rectification", {"report": {"results": [task(0)]}})
    crm = LOADED.policy.systems["crm"].label
    told = LOADED.policy.recipients["financial_services"]
    text, html = both(letter)
    assert f"{crm}: contacts – nothing to correct (2 records)" in text, text
    assert f"{crm} contacts nothing to correct 2" in html, html
    assert "corrected (" not in text and " corrected " not in html
    assert (told.identity or told.name) not in text and (told.identity or told.name) not in html
    # Nor does the letter say recipients were told of it in general (Art. 19): nothing changed.
    assert "of this rectification" not in text and "of this rectification" not in html
    # One that changed a record there tells its recipient, as before.
    assert (told.identity or told.name) in both(await as_sent("response", "rectification", {"report": {
        "results": [task(1)]}}))[0]


async def test_a_sql_restriction_names_what_it_restricted_and_found_restricted_already():
    """As the sql connector counts a restriction: every dataset with a restriction column is set,
    and counts `changed: 0` where its rows were restricted already (a second restriction). Those
    rows' processing is restricted, and the letter says so, as before; unlike an http lookup's
    datasets that no step touches, they are not "nothing to restrict" (schemas/dataset_split.py).
    A dataset holding nothing of the subject is not named (it was: "contacts, support requests and
    chat transcripts")."""
    counts = {"contacts": {"found": 2, "changed": 0}, "support_requests": {"found": 0, "changed": 0},
              "chat_transcripts": {"found": 0, "changed": 0}}
    text, html = both(await as_sent("response", "restriction", {"report": {"results": [
        {"system": "crm", "action": "restrict", "status": "done", "found": 2, "changed": 0, "datasets": counts}]}}))
    crm = LOADED.policy.systems["crm"].label
    assert f"{crm}: processing of contacts restricted (2 records)" in text, text
    assert f"{crm} contacts restricted 2" in html, html
    for part in (text, html):
        told = part.replace(crm, "")  # its label lists its datasets in brackets
        assert "nothing to restrict" not in told and "support requests" not in told and "chat" not in told, told


async def test_a_correction_names_no_recipient_told_where_the_system_had_nothing_to_apply():
    """A correction of the city, which the analytics system holds no field for: its task is done
    with nothing counted ("no field in this system for: city"), and nothing was corrected there, so
    its recipient (Google Ireland) was told nothing; the CRM, which corrected a contact, names its
    own. Before, both were named as told (hCO's finding in the evidence pack)."""
    policy = LOADED.policy
    nothing = {"system": "analytics", "action": "rectify", "status": "done", "found": 0, "changed": 0,
               "recipient": "google_analytics", "datasets": {}, "message": "no field in this system for: city"}
    corrected = {"system": "crm", "action": "rectify", "status": "done", "found": 1, "changed": 1,
                 "recipient": "communication_crm", "datasets": {"contacts": {"found": 1, "changed": 1}}}
    text, html = both(await as_sent("response", "rectification", {"report": {"results": [nothing, corrected]}}))
    google = " ".join(str(policy.recipients["google_analytics"].identity).split())
    for part in (text, html):
        assert policy.recipients["communication_crm"].name in part, part
        assert google not in part, part

async def test_a_restriction_counts_every_record_restricted_not_only_those_set_now():
    """Two of the subject's three contacts were restricted already (an earlier request), one is set
    now: all three are restricted, and the letter says so. It read "(1 record)", the count changed."""
    counts = {"contacts": {"found": 3, "changed": 1}}
    text, html = both(await as_sent("response", "restriction", {"report": {"results": [
        {"system": "crm", "action": "restrict", "status": "done", "found": 3, "changed": 1, "datasets": counts}]}}))
    crm = LOADED.policy.systems["crm"].label
    assert f"{crm}: processing of contacts restricted (3 records)" in text, text
    assert f"{crm} contacts restricted 3" in html, html

async def test_a_correction_that_changed_nothing_anywhere_opens_saying_so():
    """One system held nothing to correct, another's records an earlier erasure kept as they were:
    nothing was corrected, and the letter opens so ("We have not corrected any of your personal
    data"), with no general word of recipients told. Before, the "nothing to correct" line counted
    as an action, and it opened "We have now completed your request, except for ..."."""
    unchanged = {"system": "crm", "action": "rectify", "status": "done", "found": 2, "changed": 0,
                 "datasets": {"contacts": {"found": 2, "changed": 0}}}
    left = {"system": "billing", "action": "rectify", "status": "done", "found": 0, "changed": 0,
            "datasets": {"customers": {"found": 0, "changed": 0, "left": 1}}}
    text, html = both(await as_sent("response", "rectification", {"report": {"results": [unchanged, left]}}))
    for part in (text, html):
        assert "We have not corrected any of your personal data" in part, part
        assert "We have now completed your request" not in part and "of this rectification" not in part



async def test_a_restriction_names_no_recipient_told_where_it_restricted_nothing():
    """Art. 19 tells a recipient of a restriction carried out. An http system whose lookup read its
    datasets and whose steps set none of them ("nothing to restrict") told its recipient nothing:
    the letter does not name it among those told, nor say in general that recipients were told. A
    system that restricted something still names its own. Before, both were named as told."""
    policy = LOADED.policy
    read_only = {"system": "billing", "action": "restrict", "status": "done", "found": 2, "changed": 0,
                 "recipient": policy.systems["billing"].recipient,
                 "datasets": {"customers": {"found": 1}, "invoices": {"found": 1}}}
    unneeded = policy.recipients[policy.systems["billing"].recipient].name
    text, html = both(await as_sent("response", "restriction", {"report": {"results": [read_only]}}))
    for part in (text, html):
        assert "nothing to restrict" in part, part
        assert unneeded not in part and "of this restriction" not in part, part
    restricted = {"system": "analytics", "action": "restrict", "status": "done", "found": 1, "changed": 1,
                  "recipient": "google_analytics", "datasets": {"events": {"found": 1, "changed": 1}}}
    text, html = both(await as_sent("response", "restriction", {"report": {"results": [read_only, restricted]}}))
    for part in (text, html):
        assert " ".join(str(policy.recipients["google_analytics"].identity).split()) in part, part
        assert unneeded not in part, part

# The erasure of tests/letters_as_sent.py `erasure_with_kept`: Billing's customer record and a
# mandate erased, its invoices kept. Its system's label lists its datasets in brackets; the line
# read "Billing (customers, invoices, payments, mandates), customers, mandates: erased (2 records)",
# one list of the label's datasets and those erased, and alike in each language.
_ERASED_LINE = {
    "en": ("- Billing (customers, invoices, payments, mandates): customers and mandates erased (2 records)",
           "Billing (customers, invoices, payments, mandates) customers and mandates erased 2"),
    "fr": ("- Facturation (clients, factures, paiements, mandats)\xa0: 2 enregistrements effacés (clients et mandats)",
           "Facturation (clients, factures, paiements, mandats) clients et mandats données effacées 2"),
    "nl": ("- Facturatie (klanten, facturen, betalingen, mandaten): klanten en mandaten gewist (2 records)",
           "Facturatie (klanten, facturen, betalingen, mandaten) klanten en mandaten gewist 2"),
    "de": ("- Abrechnung (Kunden, Rechnungen, Zahlungen, Mandate): Kunden und Mandate gelöscht (2 Datensätze)",
           "Abrechnung (Kunden, Rechnungen, Zahlungen, Mandate) Kunden und Mandate gelöscht 2"),
}


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_datasets_acted_on_read_apart_from_the_systems_label(language):
    letter = await as_sent("response", "erasure", erasure_with_kept(), language=language)
    text_line, table_row = _ERASED_LINE[language]
    assert text_line in letter.text.splitlines(), letter.text
    assert table_row in both(letter)[1]
    label = LOADED.in_language(language).systems["billing"].label
    for part in both(letter):
        assert label + "," not in part and label + " ," not in part


# --- 9. The Art. 19 recipients told, named by who they are where we know it ------------------

_ASK_WHO = "Where we name a recipient by the kind of service it provides, we will tell you who it is if you ask us."


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_recipients_told_are_named_by_who_they_are_or_offered_on_request(language):
    """Art. 19 GDPR: the subject is told about the recipients if they ask. The policy knows who the
    analytics recipient is (Google Ireland Limited) and only the kind of the CRM's provider: the
    letter names the one and offers the other. Before, it named both by kind and offered nothing."""
    policy, t = LOADED.in_language(language), translations(language)
    erased = {"action": "erase", "status": "done", "found": 1, "changed": 1}
    both_told = await as_sent("response", "erasure", {"report": {"results": [
        {"system": "analytics", "recipient": "google_analytics", **erased},
        {"system": "crm", "recipient": "communication_crm", **erased}]}}, language=language)
    identity = policy.recipients["google_analytics"].identity
    assert identity
    for part in both(both_told):
        assert " ".join(identity.split()) in part and policy.recipients["google_analytics"].name not in part
        assert policy.recipients["communication_crm"].name in part
        assert t.gettext(_ASK_WHO) in part
    named_only = await as_sent("response", "erasure", {"report": {"results": [
        {"system": "analytics", "recipient": "google_analytics", **erased}]}}, language=language)
    for part in both(named_only):
        assert " ".join(identity.split()) in part and t.gettext(_ASK_WHO) not in part
