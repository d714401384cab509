"""What an erasure's letter says was done with the data a hold kept, by who holds it.

A legal-claims hold keeps what a processor holds for us as it is: we do not ask the processor to
delete it (an erasure cut short asks it for the rest of it only), nor to reduce or restrict it,
and we ask it to erase it when the hold ends (activities/fanout.py `_erase`,
activities/deferred_processors.py). A statute's records kept in a processor's service (Stripe's
invoices) are not restricted there either. Only in our own databases are kept records reduced
and restricted (activities/connectors/sql_erasure.py `minimise`). The letter said of everything
kept, "We have reduced it to what that purpose requires and restricted it", which was false of
what processors hold. Pure rendering, as the letter activity builds each letter
(tests/letters_as_sent.py).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from activities.connectors.base import HeldRecord
from activities.connectors.sql_erasure import kept_summary
from policy.model import DEFAULT_POLICY, load_policy
from tests.letters_as_sent import LANGUAGES, LOADED, as_sent, both, kept_records
from tests.saas_support import http_policy, http_system
from tests.support import english_only
from tests.yaml_files import dump_yaml, read_yaml

HOLD = "0b9f8f1e-1111-4222-8333-444455556666"
_LEGAL = {HOLD: {"basis": "Art. 17(3)(e) GDPR: establishment, exercise or defence of legal claims",
                 "review_date": date(2026, 6, 30)}}
OLD = "We have reduced it to what that purpose requires and restricted it"
OURS = ("What we keep in our own systems we have reduced to what that purpose requires, and we have restricted "
        "its processing: it is used for no other purpose.")
HELD = ("The data of yours listed below that the legal-claims hold keeps is held for us in our e-mail marketing "
        "system, by a processor of ours. We have not asked it to delete that data, reduce it or restrict its processing: "
        "it stays there as it is until the hold ends, when we will ask it to erase it.")
# The same in each language: the processor in the Regulation's term, named by its phrase (`where`),
# what was not asked of it.
HELD_IN = {"fr": ("sont détenues pour nous dans notre outil de marketing par e-mail, par l'un de nos sous-traitants",
                  "Nous ne lui avons demandé ni de supprimer ces données, ni de les réduire, ni d'en limiter le "
                  "traitement"),
           "nl": ("worden in ons e-mailmarketingsysteem voor ons bewaard door een verwerker van ons",
                  "Wij hebben die verwerker niet gevraagd die gegevens te verwijderen"),
           "de": ("speichert ein Auftragsverarbeiter für uns in unserem E-Mail-Marketing-System",
                  "Wir haben ihn nicht gebeten, diese Daten zu löschen, auf das Erforderliche zu beschränken oder "
                  "ihre Verarbeitung einzuschränken")}


def _held_whole(system: str, found: int, changed: int) -> dict[str, Any]:
    """A processor's erasure under a legal-claims hold (`_erase`): kept whole, or cut short after
    the processor accepted the deletion of the data under `changed` of its `found` identifiers."""
    kept = kept_summary(LOADED.policy, system, [HeldRecord("all", "all", "legal_claims", HOLD, None)], _LEGAL)
    return {"system": system, "action": "erase", "status": "done", "found": found, "changed": changed,
            "kept": 1, "kept_records": kept}


def _billing() -> dict[str, Any]:
    return {"system": "billing", "action": "erase", "status": "done", "found": 4, "changed": 2, "kept": 2,
            "kept_records": [k for k in kept_records() if k["system"] == "billing"]}


@pytest.mark.parametrize("language", LANGUAGES)
async def test_data_a_processor_keeps_under_a_hold_is_not_said_to_be_reduced_and_restricted(language):
    """Invoices kept in our billing database, and all that the e-mail marketing processor holds
    kept under a legal-claims hold: each is said to be treated as it was."""
    letter = await as_sent("response", "erasure", {"report": {"results": [_billing(), _held_whole("email_marketing", 0, 0)]}},
                           language=language)
    for part in both(letter):
        if language == "en":
            assert OLD not in part
            assert OURS in part and HELD in part, part
        else:
            assert all(words in part for words in HELD_IN[language]), part


async def test_an_erasure_a_hold_cut_short_at_a_processor_says_nothing_was_restricted():
    """Only a processor's data kept (the hold cut its erasure short after it accepted one of three
    identifiers): the letter claims no reduction or restriction of our own."""
    letter = await as_sent("response", "erasure", {"report": {"results": [_held_whole("email_marketing", 3, 1)]}})
    for part in both(letter):
        assert "deletion requested and accepted" in part
        assert HELD in part and OURS not in part and OLD not in part and "reduced" not in part.replace(HELD, "")


async def test_a_statutes_records_kept_in_a_processors_service_are_not_said_to_be_restricted(tmp_path, monkeypatch):
    """Stripe's invoices, accounting documents kept under the statute in Stripe (http_holds.py):
    not restricted there, and not said to be, nor reduced ("Law: <statute>; minimised to what that
    law requires" said so of every statute's records)."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_letter")
    loaded = http_policy(tmp_path, {"billing_stripe": http_system("http/stripe.yaml", "Stripe billing")})
    held = [HeldRecord("invoices", "in_1", "statutory", "be_accounting", date(2033, 12, 31))]
    stripe = {"system": "billing_stripe", "action": "erase", "status": "done", "found": 2, "changed": 1, "kept": 1,
              "kept_records": kept_summary(loaded.policy, "billing_stripe", held, {})}
    letter = await as_sent("response", "erasure", {"report": {"results": [stripe]}}, loaded=loaded)
    for part in both(letter):
        assert OLD not in part and OURS not in part
        assert ("The records listed below that the law obliges us to keep are held for us in our system “Stripe "
                "billing”, by a processor of ours. We have not asked it to delete them or to restrict their processing.") in part, part
        assert "Data the law obliges us to keep is erased when its period, given below, ends." in part
        assert "minimised" not in part and "reduced" not in part, part


@pytest.mark.parametrize(("regime", "language", "said"), [
    ("ccpa", "en", "is held for us in our e-mail marketing system, by a service provider of ours."),
    ("pipeda", "fr", "sont détenues pour nous dans notre outil de marketing par e-mail, par l'un de nos fournisseurs "
                     "de services.")])
async def test_under_the_ccpa_and_pipeda_the_processor_is_a_service_provider(regime, language, said):
    """Neither law says "processor": the CCPA's "service provider" (Cal. Civ. Code § 1798.140(ag)),
    PIPEDA's information "transferred to a third party for processing" (Schedule 1, cl. 4.1.3)."""
    letter = await as_sent("response", "erasure", {"report": {"results": [_held_whole("email_marketing", 3, 1)]}},
                           regime=regime, language=language)
    for part in both(letter):
        assert said in part, part
        assert "processor" not in part and "sous-traitant" not in part, part


async def test_a_dataset_of_ours_that_cannot_mark_a_record_restricted_is_not_said_to_restrict_it(tmp_path):
    """A billing database whose invoices have no `restricted_column`: the statute's invoices are
    minimised and kept, and nothing marks them restricted (sql_erasure.py `minimise`)."""
    content = english_only(read_yaml(DEFAULT_POLICY))
    invoices = next(d for d in content["systems"]["billing"]["datasets"] if d["name"] == "invoices")
    del invoices["restricted_column"]
    path = tmp_path / "policy.yaml"
    path.write_text(dump_yaml(content, sort_keys=False))
    letter = await as_sent("response", "erasure", {"report": {"results": [_billing()]}}, loaded=load_policy(path))
    for part in both(letter):
        assert OURS not in part and OLD not in part
        assert ("Data in our billing system cannot be marked as restricted: what that system keeps we have reduced to what that purpose requires, but its processing there is not "
                "restricted.") in part, part
