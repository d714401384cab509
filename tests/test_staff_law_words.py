"""Staff read a request's kind in the words of its law, as its letters do (hCV): under every law but
the GDPR and the UK GDPR a "deletion" and a "correction", not an "erasure" and a "rectification"
(dsrflow/i18n `deletes`, `corrects`), on the console's queue, request page, timeline and deferred
panel (its refusals too, hCZ; the processor's words and the system's label as they are), in the
evidence pack's page and JSON and in the REST API's words, while the codes (`type`, actions,
statuses) stay as they are. And the portal's page of a package deleted with the subject's data says
what the law of the erasure that deleted it says: "we deleted your data" under the CCPA.

Requests stored as intake stores them, no workflow running (tests/test_console_words.py's way):
each page shows the stored request."""

from __future__ import annotations

import html
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from activities.letter_labels import kind_word, staff_type_label
from api.read_models.event_words import words_for
from api.read_models.evidence_results import task_words
from dsrflow.crypto.hashing import token_hash
from dsrflow.domain.audit import append_event
from dsrflow.i18n import ENGLISH, in_law_words, translations
from dsrflow.stores.deferred_store import DeferredStale
from dsrflow.stores.kept_copies import ERASED
from schemas.staff_answers import STALE_ANSWER
from tests.support import console_sign_in, staff_headers, stored_request, unique_email
from tests.test_console_words import planned

US_AND_OTHERS = ["ccpa", "vcdpa", "ctdpa", "cpa", "pipeda", "lgpd"]
# A correction an earlier erasure's hold left as it was: its status as staff read it.
LEFT = {"system": "billing", "action": "rectify", "status": "done", "found": 0, "changed": 0,
        "datasets": {"invoices": {"found": 0, "changed": 0, "left": 1}}}


@pytest.mark.parametrize("regime", US_AND_OTHERS)
def test_every_law_but_the_gdprs_names_a_deletion_and_a_correction(regime):
    assert (kind_word("erasure", regime), kind_word("rectification", regime)) == ("deletion", "correction")
    assert staff_type_label("rectification", regime, ENGLISH) == "correction"
    assert in_law_words("Processor asked to erase what a hold had kept; kept from an erasure", regime) == \
        "Processor asked to delete what a hold had kept; kept from a deletion"
    words = words_for(regime)
    assert (words["action_words"]("erase"), words["action_words"]("rectify")) == ("delete", "correct")
    assert words["restriction_words"](["unlawful_processing"]) == "unlawful processing, deletion opposed"


@pytest.mark.parametrize("regime", ["gdpr", "uk_gdpr"])
def test_the_gdprs_words_stay(regime):
    assert (kind_word("erasure", regime), kind_word("rectification", regime)) == ("erasure", "rectification")
    assert staff_type_label("erasure", regime, ENGLISH).startswith("erasure (Art. 17 ")
    assert in_law_words("an erasure; rectified", regime) == "an erasure; rectified"
    assert words_for(regime)["action_words"]("erase") == "erase"


def test_the_staff_language_names_a_correction_as_its_law_does():
    # Staff alerts are in the staff language: Dutch says "correctie", French and German their usual word.
    words = {lang: kind_word("rectification", "ccpa", translations(lang)) for lang in ("nl", "fr", "de")}
    assert words == {"nl": "correctie", "fr": "rectification", "de": "Berichtigung"}
    assert kind_word("rectification", "gdpr", translations("nl")) == "rectificatie"


def test_the_apis_status_words_speak_the_law_of_the_request():
    assert task_words(LEFT, "ccpa")["status_words"] == "records kept as an earlier deletion left them, not corrected"
    assert task_words(LEFT, "gdpr")["status_words"] == "records kept as an earlier erasure left them, not corrected"


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


async def _timeline_events(pool, rid: str) -> None:
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{rid}:asked", event_type="processor.asked", actor="workflow",
                           request_id=rid, data={"system": "crm", "action": "erase"})
        await append_event(conn, event_key=f"{rid}:deferred", event_type="erasure.deferred_submitted",
                           actor="workflow", request_id=rid, data={"system": "crm"})


async def test_the_console_and_the_evidence_pack_say_the_laws_words(http, pool, settings):
    email = unique_email("law-words")
    ids = {regime: await stored_request(pool, settings, "law-words", "erasure", regime=regime, email=email,
                                        **({"country": "US"} if regime == "ccpa" else {}))
           for regime in ("ccpa", "gdpr")}
    correction = await stored_request(pool, settings, "law-words", "rectification", regime="ccpa", email=email,
                                      country="US", corrections={"name": "Ada King"})
    for rid in ids.values():
        await planned(pool, rid, "erase")
        await _timeline_events(pool, rid)
        # A record a statutory hold kept, whose erasure waits for the hold's end (the deferred panel).
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, erase_after, policy_version)
               VALUES ($1, 'h', 'crm', 'contacts', 'k1', 'statutory', 'be_accounting', '2034-01-01', 'v')""",
            uuid.UUID(rid))
    await console_sign_in(http, pool, "compliance")

    queue = (await http.get("/console/", params={"subject": email})).text
    types = dict(re.findall(r'data-request-id="([^"]+)".*?<td data-label="Type">([^<]*)</td>', queue, re.S))
    assert types == {ids["ccpa"]: "deletion", ids["gdpr"]: "erasure", correction: "correction"}

    page = (await http.get(f"/console/requests/{ids['ccpa']}")).text
    said = _text(page.split('id="other-requests"')[0])
    assert "<h1>Deletion request</h1>" in page and "Deletions deferred by a hold" in said
    assert "Processor asked to delete what a hold had kept (CRM)" in said and "(CRM, to delete)" in said
    assert not re.search(r"\b(erasure|erase|erased)\b", said, re.I), re.findall(r".{40}\beras\w+.{40}", said, re.I)
    others = page.split('id="other-requests"')[1]
    assert f'<a class="mono" href="/console/requests/{correction}">' in others and "<td>correction</td>" in others
    assert "<td>erasure</td>" in others  # the subject's GDPR request, in its own law's words
    assert "<h1>Correction request</h1>" in (await http.get(f"/console/requests/{correction}")).text

    gdpr = _text((await http.get(f"/console/requests/{ids['gdpr']}")).text)
    assert "Erasure request" in gdpr and "Processor asked to erase what a hold had kept" in gdpr
    assert "Erasures deferred by a hold" in gdpr

    evidence = _text((await http.get(f"/v1/requests/{ids['ccpa']}/evidence.html")).text)
    assert "Type deletion " in evidence and "CRM, to delete" in evidence and "Scheduled deletions: " in evidence
    assert not re.search(r"\b(erasure|erase|erased)\b", evidence, re.I), \
        re.findall(r".{40}\beras\w+.{40}", evidence, re.I)
    assert "Type erasure (Art. 17 GDPR)" in _text((await http.get(f"/v1/requests/{ids['gdpr']}/evidence.html")).text)

    headers = await staff_headers(pool, "compliance")
    packs = {rid: (await http.get(f"/v1/requests/{rid}/evidence", headers=headers)).json()["request"]
             for rid in (ids["ccpa"], ids["gdpr"], correction)}
    # The codes stay; the words beside them are the law's.
    assert [(p["type"], p["type_words"]) for p in packs.values()] == [
        ("erasure", "deletion"), ("erasure", "erasure"), ("rectification", "correction")]



# A processor's answer, which no law's words reword ("erase" stays under the CCPA).
CRM_SAID = "contact locked: cannot erase while a ticket is open"
# The app's policy names no system (tests/conftest.py), so a refusal names none (never the address's id).
SYSTEM = "this system"


def test_a_stale_deferred_answer_leaves_the_systems_label_and_the_processors_words():
    stale = DeferredStale("crm", "attempt 1, asked", "attempt 1, failed", CRM_SAID)
    assert stale.words("Erasure queue", lambda text: in_law_words(text, "ccpa")) == (
        f"Erasure queue's deferred deletion this was sent for (attempt 1, asked) has been answered or has changed "
        f"since, and stands now at attempt 1, failed ({CRM_SAID}): {STALE_ANSWER}")
    assert str(stale).startswith("crm's deferred erasure this was sent for")  # the REST API's, by the system's id


async def test_the_deferred_panels_refusals_say_the_laws_words(http, pool, settings):
    """The deferred panel's refusals (api/console/deferred.py `_refused`) name the request's
    law's "deletion" as its heading does; the processor's failure stays as it is. Shown on the
    page for a stale answer; the others read from the signed address the page shows them from
    (a page is ~1 s)."""
    email = unique_email("law-refusals")
    ids = {regime: await stored_request(pool, settings, "law-refusals", "erasure", regime=regime, email=email,
                                        **({"country": "US"} if regime == "ccpa" else {}))
           for regime in ("ccpa", "gdpr")}
    for rid in ids.values():  # the CRM did not erase what a hold had kept, once the hold ended
        await pool.execute(
            """INSERT INTO deferred_erasures (request_id, subject_hash, system, dataset, record_key, hold_kind,
                                              hold_ref, erase_after, policy_version, failed_at, failure)
               VALUES ($1, 'h', 'crm', 'contacts', 'k1', 'statutory', 'be_accounting', '2020-01-01', 'v', now(), $2)""",
            uuid.UUID(rid), CRM_SAID)
    csrf = await console_sign_in(http, pool, "compliance")

    async def refusal(rid: str, post: str, **fields: str) -> str:
        answer = await http.post(f"/console/requests/{rid}/deferred/{post}", data={"csrf_token": csrf, **fields})
        assert answer.status_code == 303, answer.text[:2000]
        return parse_qs(urlsplit(answer.headers["location"]).query)["deferred_error"][0]

    # Sent for the erasure as asked, it stands failed: stale, in the law's words but the processor's.
    stale = {"attempt": "1", "state": "asked", "note": "Done by phone."}
    answer = await http.post(f"/console/requests/{ids['ccpa']}/deferred/crm/settle", data={"csrf_token": csrf, **stale})
    page = _text((await http.get(answer.headers["location"])).text)
    assert (f"{SYSTEM}'s deferred deletion this was sent for (attempt 1, asked) has been answered or has changed since, "
            f"and stands now at attempt 1, failed ({CRM_SAID}): nothing was done") in page, page
    assert await refusal(ids["gdpr"], "crm/settle", **stale) == (
        f"{SYSTEM}'s deferred erasure this was sent for (attempt 1, asked) has been answered or has changed since, "
        f"and stands now at attempt 1, failed ({CRM_SAID}): {STALE_ANSWER} (the panel shows it now).")
    # A form that does not say what its page showed; a system no hold deferred anything in.
    for regime, word in (("ccpa", "deletion"), ("gdpr", "erasure")):
        assert await refusal(ids[regime], "crm/retry") == (
            f"Not done: this form does not say which attempt of {SYSTEM}'s deferred {word} it answers (a page from "
            "before forms did): reload the page and answer what it shows.")
        assert await refusal(ids[regime], "billing/retry", attempt="1", state="failed") == \
            f"Not done: no {word} in {SYSTEM} was deferred by a hold for this request."


async def _deleted_package(pool, settings, erasure_regime: str) -> str:
    """An access package deleted because an erasure under `erasure_regime` erased the subject's
    data (as dsrflow/stores/kept_copies.py `purge_subject_copies` records it): its link's token."""
    email = unique_email("erased-copy")
    access = await stored_request(pool, settings, "erased-copy", "access", email=email)
    erasure = await stored_request(pool, settings, "erased-copy", "erasure", regime=erasure_regime, email=email,
                                   **({} if erasure_regime == "gdpr" else {"country": "US"}))
    token, package = secrets.token_hex(32), uuid.uuid4()
    await pool.execute(
        """INSERT INTO packages (id, request_id, kind, path, size_bytes, records, token_hash, expires_at,
                                 purged_at, purge_reason)
           VALUES ($1, $2, 'access', '/nonexistent', 20480, 42, $3, $4, now(), $5)""",
        package, uuid.UUID(access), token_hash(token), datetime.now(UTC) + timedelta(days=7), ERASED)
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{access}:package-purged:{package}", request_id=access,
                           event_type="package.purged", actor="workflow",
                           data={"package_id": str(package), "reason": ERASED, "erasure_request_id": erasure})
    return token


# What the portal's page says, per language, of a package an erasure deleted: in the GDPR's words,
# and in those of a law that deletes (the catalogs' deletion.po; German says "gelöscht" under both).
SAID = {
    "en": ("because we erased your data at your request", "because we deleted your data at your request"),
    "fr": ("car nous avons effacé vos données", "car nous avons supprimé vos données"),
    "nl": ("op uw verzoek hebben gewist", "op uw verzoek hebben verwijderd"),
    "de": ("weil wir Ihre Daten auf Ihren Antrag hin gelöscht haben",
           "weil wir Ihre Daten auf Ihren Antrag hin gelöscht haben"),
}


async def test_a_package_deleted_with_the_subjects_data_says_the_erasures_law(http, pool, settings):
    tokens = {regime: await _deleted_package(pool, settings, regime) for regime in ("gdpr", "ccpa")}
    for language, (erased, deleted) in SAID.items():
        for regime, words in (("gdpr", erased), ("ccpa", deleted)):
            page = await http.get(f"/portal/packages/{tokens[regime]}", params={"lang": language})
            assert page.status_code == 410 and words in _text(page.text), (language, regime)
    # The public API's problem says it in English, in the same words, and names no law.
    for regime, words in (("gdpr", SAID["en"][0]), ("ccpa", SAID["en"][1])):
        problem = (await http.get(f"/v1/public/packages/{tokens[regime]}")).json()
        assert words in problem["detail"] and "wording" not in problem and regime not in str(problem)
