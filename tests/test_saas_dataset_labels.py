"""The SaaS (http) systems' datasets, as subjects read them: by the label their configuration gives
(policy/http/*.yaml `datasets.<name>.label`), translated like a sql system's dataset's
(tests/test_dataset_labels.py). Before, an erasure response under the demo SaaS policy read
"Mailchimp (newsletters), members: data erased" and "Stripe ..., charges, customers", the
configuration's identifiers, in every language."""

from __future__ import annotations

import copy

import pytest

from devstack.saas.policy import write_demo_saas_policy
from policy.model import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from tests.letters_as_sent import as_sent, both

# The demo SaaS systems' datasets, in each language the shipped translations give.
WORDS = {
    "en": {"members": "newsletter subscriptions", "customers": "customer details", "charges": "card payments"},
    "nl": {"members": "inschrijvingen op de nieuwsbrief", "customers": "klantgegevens", "charges": "kaartbetalingen"},
    "fr": {"members": "abonnements aux lettres d'information", "customers": "données client",
           "charges": "paiements par carte"},
    "de": {"members": "Newsletter-Abonnements", "customers": "Kundendaten", "charges": "Kartenzahlungen"},
}
_ERASURE = {"report": {"results": [
    {"system": "newsletter_mailchimp", "action": "erase", "status": "done", "found": 1, "changed": 1,
     "datasets": {"members": {"found": 1, "deleted": 1, "changed": 1}}},
    {"system": "billing_stripe", "action": "erase", "status": "done", "found": 3, "changed": 3,
     "datasets": {"customers": {"found": 1, "deleted": 1, "changed": 1},
                  "charges": {"found": 2, "deleted": 2, "changed": 2}}},
]}}


@pytest.fixture(scope="module")
def demo_saas(tmp_path_factory):
    """The shipped policy with the demo SaaS systems, in all its languages (`dsrflow up --demo-saas`)."""
    return load_policy(write_demo_saas_policy(DEFAULT_POLICY, tmp_path_factory.mktemp("demo-saas")))


@pytest.mark.parametrize("language", list(WORDS))
async def test_an_erasure_response_names_a_saas_systems_datasets_by_their_labels(demo_saas, language):
    letter = await as_sent("response", "erasure", _ERASURE, language=language, loaded=demo_saas)
    words = WORDS[language]
    for text in both(letter):
        for dataset in ("members", "charges", "customers"):
            assert words[dataset] in text, (dataset, text)
        for identifier in ("members", "charges", "customers"):
            assert f", {identifier}" not in text and f"{identifier}:" not in text, (identifier, text)


def test_a_saas_dataset_label_without_its_translation_fails_the_load_naming_it(demo_saas):
    content = copy.deepcopy(demo_saas.content)
    del content["translations"]["de"]["systems"]["newsletter_mailchimp"]["config"]
    with pytest.raises(PolicyError, match=r"translations\.de: missing systems\.newsletter_mailchimp\.config"
                                          r"\.datasets\.members\.label"):
        parse_policy(content, "policy.yaml")
