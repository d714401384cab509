"""The e-mail that tells a processor asked by e-mail that its request closed unanswered (withdrawn,
cancelled, denied) before it confirmed: our instruction is withdrawn, do not act on it
(activities/connectors/manual_email.py `_withdraw`, templates processor_withdrawal.*.j2). In every
staff language, the one processors read, and in the words of the request's law, as the e-mail that
asked it; with nothing about the subject but our reference. Rendered in process."""

from __future__ import annotations

from datetime import date

import pytest

from activities.processor_mail import WITHDRAWAL_PURPOSE, asked_of_processor, render_processor_mail
from dsrflow.domain.references import short_reference
from dsrflow.i18n import CONSUMER
from schemas.vocabulary import Regime
from tests.letters_as_sent import LOADED
from tests.test_letter_reading import _problems
from tests.test_processor_wording import DATA_SUBJECT, GDPR_PARTIES, LANGUAGES, SAID, WORDINGS
from tests.test_regime_citations import REQUEST_ID, read

# What the e-mail says in each language: the instruction withdrawn.
_WITHDRAWN = {"en": "we withdraw our instruction: please do not act on it.",
              "fr": "nous retirons notre instruction : veuillez ne pas y donner suite.",
              "nl": "wij trekken onze instructie in: geef er geen gevolg aan.",
              "de": "wir ziehen unsere Weisung zurück: Bitte setzen Sie ihn nicht um."}


def _withdrawal(action: str, regime: str, language: str):
    title, instruction = asked_of_processor(action, None, regime, language)
    return render_processor_mail(WITHDRAWAL_PURPOSE, {
        "controller": LOADED.policy.controller.model_dump(mode="json"),
        "processor": {"label": "Survey service provider", "contact_name": None},
        "request": {"id": REQUEST_ID, "due_date": date(2026, 3, 2), "regime": regime},
        "action": action, "action_title": title, "instruction": instruction, "corrections": [],
        "subject_email": "jane@example.org", "confirm_url": "https://privacy.example.test/v1/callbacks/manual/tok",
        "reminder_days": 3, "upload": None, "first_sent_at": date(2026, 2, 3),
    }, language)


def _read(mail) -> str:
    return "\n".join([mail.subject, " ".join(mail.text.split()), " ".join(read(mail.html.split("<body", 1)[1]).split())])


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", [r.value for r in Regime])
def test_a_processor_is_told_the_request_is_withdrawn_in_its_language_and_the_laws_words(regime, language):
    for action in ("erase", "rectify", "object", "access"):
        mail = _withdrawal(action, regime, language)
        assert _problems(mail) == [], (action, _problems(mail))
        text = _read(mail)
        assert text.count(_WITHDRAWN[language]) == 2, (action, text)  # its text and its HTML
        # Nothing about the subject: the reference, and what we had asked.
        assert "jane@example.org" not in text and "tok" not in text.split("https://privacy.example.test")[0]
        assert asked_of_processor(action, None, regime, language)[0] in mail.subject
        wording = WORDINGS.get(Regime(regime))
        if wording is None:
            continue
        person, recipient = SAID[wording][language]
        said = [words for words in DATA_SUBJECT[language] if words.lower() in text.lower()]
        if wording != CONSUMER:  # the controller-and-processor laws keep those two words
            said += [words for words in GDPR_PARTIES[language] if words.lower() in text.lower()]
        assert said == [] and recipient in text, (action, said, text)
        if language != "fr":  # French says "demande d'exercice de droits" under every law, as the reminder
            assert person in text, (action, text)


def test_the_withdrawal_reads_as_the_gdpr_and_the_ccpa_say_it():
    gdpr = " ".join(_withdrawal("erase", "gdpr", "en").text.split())
    assert ("On 3 February 2026 we asked you, as our processor (Survey service provider), to act on the "
            "data-subject request below. That request is now closed, and we "
            "withdraw our instruction: please do not act on it.") in gdpr
    ccpa = _withdrawal("erase", "ccpa", "en")
    assert "as our service provider or contractor (Survey service provider), to act on the consumer request" in \
        " ".join(ccpa.text.split())
    assert ccpa.subject == f"Request {short_reference(REQUEST_ID)} withdrawn: deletion — please do not act on it " \
        f"({LOADED.policy.controller.name})"
