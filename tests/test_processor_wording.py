"""An e-mail to a processor names the parties as the law of the request does: a "data subject", the
"controller" and its "processor" under the GDPR, the UK GDPR and the LGPD; a "consumer", the
controller and its processor under the VCDPA, the CTDPA and the CPA; a "consumer", the "business"
and its "service provider or contractor", "personal information", under the CCPA; an "individual",
the "organisation" responsible for the "personal information" and the "third party" processing
it under PIPEDA. In every staff language, which is the one processors read.

Every processor e-mail (request and reminder, each action, each objection's scope) is rendered as
the connector renders it (tests/test_regime_citations_processor_mail.py `processor_mail`), in process, and read
as its reader reads it: its subject line, its text and its HTML's text.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from activities.letter_templates import PROCESSOR_PURPOSES, letter_wording
from activities.processor_mail import REQUEST_PURPOSE
from dsrflow.domain.references import short_reference
from dsrflow.i18n import CONSUMER, DELETION, LOCALES, SERVICE_PROVIDER, THIRD_PARTY, catalog_path
from schemas.vocabulary import Language, Regime
from tests.letter_cases import LETTER_CASES, TOLD_OF_THE_OTHER, _render_case
from tests.test_regime_citations import REQUEST_ID, read
from tests.test_regime_citations_processor_mail import _EVERY_PROCESSOR_MAIL, composed_for_surveys, processor_mail

LANGUAGES = [language.value for language in Language]
WORDINGS = {Regime.vcdpa: CONSUMER, Regime.ctdpa: CONSUMER, Regime.cpa: CONSUMER, Regime.ccpa: SERVICE_PROVIDER,
            Regime.pipeda: THIRD_PARTY}
# The GDPR's words for the person whose request it is, in each language.
DATA_SUBJECT = {"en": ("data subject", "data-subject", "Data-subject"), "fr": ("personne concernée",),
                "nl": ("betrokkene",), "de": ("betroffene",)}
# The GDPR's "controller", "processor" (and its agreement) and "personal data", which the CCPA and
# PIPEDA do not say: Dutch and German keep their usual term for the data.
GDPR_PARTIES = {"en": ("controller", "processor", "data processing agreement", "personal data"),
                "fr": ("responsable du traitement", "sous-traitant", "à caractère personnel"),
                "nl": ("verwerkingsverantwoordelijke", "verwerker"),
                "de": ("Verantwortliche", "Auftragsverarbeit")}
# What every e-mail of a wording says, in each language: the person, and whom the e-mail writes to.
SAID = {
    CONSUMER: {"en": ("consumer", "as our processor ("), "fr": ("consommateur", "en qualité de sous-traitant ("),
               "nl": ("consument", "als onze verwerker ("), "de": ("Verbraucher", "als unser")},
    SERVICE_PROVIDER: {"en": ("consumer", "as our service provider or contractor ("),
                       "fr": ("consommateur", "en qualité de prestataire de services ou de contractant ("),
                       "nl": ("consument", "dienstverlener of contractant"),
                       "de": ("Verbraucher", "Dienstleister oder Auftragnehmer")},
    THIRD_PARTY: {"en": ("individual", "third party"), "fr": ("individu", "tierce partie"),
                  "nl": ("persoon", "als derde"), "de": ("Person", "Dritte")},
}


def mail_read(purpose: str, action: str, scope: str | None, regime: str, language: str) -> str:
    mail = processor_mail(purpose, action, scope, regime, language)
    return "\n".join([mail.subject, " ".join(mail.text.split()), read(mail.html.split("<body", 1)[1])])


def test_one_question_decides_a_processor_emails_wording():
    assert {regime.value: letter_wording(purpose, regime) for regime in Regime for purpose in PROCESSOR_PURPOSES
            if letter_wording(purpose, regime)} == WORDINGS
    # The subject's letters keep theirs: "personal information" under the CCPA and PIPEDA only, the
    # deletion the VCDPA grants (tests/test_letter_deletion_name.py); staff alerts the language's own.
    assert letter_wording("response", "vcdpa") == DELETION and letter_wording("staff_alert", "ccpa") is None


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", list(WORDINGS))
def test_processor_emails_name_the_parties_as_the_law_does(regime, language):
    person, recipient = SAID[WORDINGS[regime]][language]
    for purpose, action, scope in _EVERY_PROCESSOR_MAIL:
        text = mail_read(purpose, action, scope, regime, language)
        where = (purpose, action, scope)
        said = [words for words in DATA_SUBJECT[language] if words.lower() in text.lower()]
        if WORDINGS[regime] != CONSUMER:  # the controller-and-processor laws keep those two words
            said += [words for words in GDPR_PARTIES[language] if words.lower() in text.lower()]
        assert said == [], (*where, said, text)
        assert person in text and recipient in text, (*where, text)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", ["gdpr", "uk_gdpr", "lgpd"])
def test_processor_emails_under_the_gdprs_words_keep_them(regime, language):
    for purpose, action, scope in _EVERY_PROCESSOR_MAIL:
        text = mail_read(purpose, action, scope, regime, language)
        assert any(words in text for words in DATA_SUBJECT[language]), (purpose, action, scope, text)


def test_an_erasure_is_a_deletion_to_a_service_provider():
    """The CCPA's right to delete (Cal. Civ. Code § 1798.105), as the subject's letters name it."""
    text = mail_read(REQUEST_PURPOSE, "erase", None, "ccpa", "en")
    assert f"Consumer request {short_reference(REQUEST_ID)}: deletion — please act and confirm" in text
    assert ("Delete all personal information of the consumer below that you process for us, including copies, "
            "and stop any processing of it.") in text
    assert "is the business for which you process personal information as our service provider or contractor" in text
    assert "Erase" not in text and "erasure" not in text
    # Under PIPEDA, in French: the individual and the third party, "renseignements personnels".
    french = mail_read("processor_reminder", "access", None, "pipeda", "fr")
    assert "en qualité de tierce partie traitant des renseignements personnels pour notre compte" in french
    assert "tous les renseignements personnels de l'individu mentionné ci-dessous" in french


@pytest.mark.parametrize("language", ["en", "nl"])
@pytest.mark.parametrize("regime", [Regime.ccpa, Regime.vcdpa, Regime.pipeda, Regime.lgpd, Regime.gdpr])
def test_a_rectification_is_a_correction_where_the_law_names_the_parties_otherwise(regime, language):
    """The CCPA's, the state laws' and PIPEDA's right to correct, as the subject's letters name it
    (tests/test_letter_correction_name.py): the e-mail's subject and heading said "rectification"
    ("rectificatie"), and the Dutch instruction "rectificeren" (hCM). The LGPD's and the GDPR's
    e-mails keep the GDPR's words for the parties and the action."""
    text = mail_read(REQUEST_PURPOSE, "rectify", None, regime, language)
    reworded = regime in WORDINGS
    assert ("rectific" in text.lower()) is not reworded, text
    if reworded:
        assert {"en": ": correction — please act and confirm", "nl": "correctie"}[language] in text


# The provision of each law that obliges the processor (the CCPA's service provider or contractor)
# to assist with what it is asked: Cal. Civ. Code § 1798.105(c)(3) ("shall cooperate with the
# business in responding to a verifiable consumer request" to delete), § 1798.130(a)(3)(A) ("shall
# provide assistance ... including ... by providing to the business the consumer's personal
# information ... and by correcting inaccurate information"); Conn. Gen. Stat. § 42-521(a)(1) and
# C.R.S. § 6-1-1305(2)(a) (the processor assists the controller to respond to consumer rights
# requests: access, correction and deletion among them). Restriction, its end and objection are
# no such request; the VCDPA's, the LGPD's and PIPEDA's e-mails rest on the contract alone.
_ASSISTED = ("access", "rectify", "erase")
DUTIES = {("ccpa", "erase"): "Cal. Civ. Code § 1798.105(c)(3)",
          ("ccpa", "access"): "Cal. Civ. Code § 1798.130(a)(3)(A)", ("ccpa", "rectify"): "Cal. Civ. Code § 1798.130(a)(3)(A)",
          **{("ctdpa", action): "Conn. Gen. Stat. § 42-521(a)(1)" for action in _ASSISTED},
          **{("cpa", action): "C.R.S. § 6-1-1305(2)(a)" for action in _ASSISTED}}
# How the sentence that asks for assistance sets the provision beside the contract, in each language.
BESIDE_THE_CONTRACT = {"en": "and {} provide", "fr": "et à la loi ({})", "nl": "en in {}, vragen wij u",
                       "de": "und {} bitten wir Sie"}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", [*WORDINGS, Regime.lgpd])
def test_processor_emails_cite_the_laws_duty_to_assist(regime, language):
    """Outside the GDPR and the UK GDPR (tests/test_regime_citations_processor_mail.py), an e-mail cites the
    provision of its law that obliges the processor to assist, with the contract, in its text and
    its HTML; where the law has none for the action, it rests on the contract and cites no code."""
    for purpose, action, scope in _EVERY_PROCESSOR_MAIL:
        mail = processor_mail(purpose, action, scope, regime, language)
        cited = DUTIES.get((regime.value, action))
        for part in (" ".join(mail.text.split()), read(mail.html.split("<body", 1)[1])):
            if cited:
                assert BESIDE_THE_CONTRACT[language].format(cited) in part, (purpose, action, part)
            else:
                assert "§" not in part, (purpose, action, scope, part)


def test_a_service_provider_is_asked_under_the_ccpa_and_a_processor_under_the_state_laws():
    deletion = mail_read(REQUEST_PURPOSE, "erase", None, "ccpa", "en")
    assert ("A consumer has exercised a right under the privacy law that applies to their request; as our contract "
            "with you and Cal. Civ. Code § 1798.105(c)(3) provide, we ask you to assist us.") in deletion
    export = mail_read("processor_reminder", "access", None, "ccpa", "fr")
    assert ("est l'entreprise ; conformément à notre contrat avec vous et à la loi (Cal. Civ. Code § 1798.130(a)(3)(A)), "
            "nous vous prions de nous prêter assistance sans tarder.") in export
    correction = mail_read(REQUEST_PURPOSE, "rectify", None, "ctdpa", "en")
    assert ("A consumer has exercised a right under the data protection law that applies to their request; as our data "
            "processing agreement and Conn. Gen. Stat. § 42-521(a)(1) provide, we ask you to assist us.") in correction
    assert "gemäß unserem Auftragsverarbeitungsvertrag und C.R.S. § 6-1-1305(2)(a) bitten wir Sie, uns unverzüglich" in (
        mail_read("processor_reminder", "erase", None, "cpa", "de"))
    # No duty in the law for an objection: the contract alone.
    objection = mail_read(REQUEST_PURPOSE, "object", "profiling", "cpa", "en")
    assert "as our data processing agreement provides, we ask you to assist us." in objection
    assert "as our contract with you provides, we ask you to assist us." in mail_read(
        REQUEST_PURPOSE, "erase", None, "pipeda", "en")


async def test_the_connector_writes_in_the_words_of_the_stored_requests_law(monkeypatch):
    message = await composed_for_surveys(monkeypatch, "ccpa")
    assert isinstance(message, EmailMessage) and str(message["Subject"]).startswith("Consumer request ")
    body = message.get_body(("plain",))
    assert body is not None
    text = " ".join(body.get_content().split())
    assert "The consumer below objects to profiling: stop profiling the consumer." in text
    assert "data subject" not in text and "personal data" not in text


PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
_CATALOGS = sorted(path for wording in (CONSUMER, SERVICE_PROVIDER, THIRD_PARTY)
                   for path in LOCALES.glob(f"*/LC_MESSAGES/{wording}.po"))


def test_every_staff_language_has_each_wordings_catalog():
    assert [(p.parts[-3], p.stem) for p in _CATALOGS] == sorted(
        (language, wording) for language in LANGUAGES for wording in (CONSUMER, SERVICE_PROVIDER, THIRD_PARTY))


@pytest.mark.parametrize("path", _CATALOGS, ids=lambda p: f"{p.parts[-3]}-{p.stem}")
def test_each_processor_wording_names_only_known_messages_with_their_placeholders(path: Path):
    """Each message in messages.pot, none empty or fuzzy, every placeholder of the English kept (a
    dropped `%(citation)s` would lose the article without an error)."""
    with (LOCALES.parent / "messages.pot").open("rb") as pot, path.open("rb") as source:
        known = {m.id for m in read_po(pot) if m.id}
        override = [m for m in read_po(source, locale=path.parts[-3]) if m.id]
    assert override and {m.id for m in override} <= known
    assert [m.id for m in override if not m.string or m.fuzzy] == []
    assert [m.id for m in override if set(PLACEHOLDER.findall(str(m.id))) != set(PLACEHOLDER.findall(m.string))] == []
    assert catalog_path(path.parts[-3], path.stem) == path


# hEE/hEG's sentences of a restriction and a lift of the same person (tests/letter_cases.py
# TOLD_OF_THE_OTHER): the GDPR's e-mail says "this person's data" there; under the other laws the
# data is named as the rest of the e-mail names it, the law's word for it and for the person.
THIS_PERSONS_DATA = {"en": "restriction of this person's data", "fr": "limitation des données de cette personne",
                     "nl": "beperking van de gegevens van deze persoon", "de": "Einschränkung der Daten dieser Person"}
THE_LAWS_DATA = {
    CONSUMER: {"en": "the consumer's personal data", "fr": "données à caractère personnel du consommateur",
               "nl": "persoonsgegevens van de consument", "de": "personenbezogenen Daten des Verbrauchers"},
    SERVICE_PROVIDER: {"en": "the consumer's personal information", "fr": "renseignements personnels du consommateur",
                       "nl": "persoonsgegevens van de consument", "de": "personenbezogenen Daten des Verbrauchers"},
    THIRD_PARTY: {"en": "the individual's personal information", "fr": "renseignements personnels de l'individu",
                  "nl": "persoonsgegevens van de persoon", "de": "personenbezogenen Daten der Person"},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_what_a_restriction_and_its_lift_tell_a_processor_of_each_other_is_in_the_laws_words(language):
    """Each e-mail saying a restriction supersedes a lift e-mail, or that another restriction stands
    (request and reminder), says of the data what the law says where another law is the request's;
    the GDPR's keeps "this person's data" (so the check reads the sentences it means)."""
    cases = [case for case in LETTER_CASES if case.partition("-")[2] in TOLD_OF_THE_OTHER]
    assert len(cases) == 6
    for case in cases:
        gdpr = _render_case(case, "gdpr", language)
        assert THIS_PERSONS_DATA[language] in " ".join(gdpr.text.split()), (case, gdpr.text)
        for regime, wording in WORDINGS.items():
            mail = _render_case(case, regime.value, language)
            for text in (" ".join(mail.text.split()), read(mail.html.split("<body", 1)[1])):
                assert THIS_PERSONS_DATA[language] not in text, (case, regime, text)
                assert THE_LAWS_DATA[wording][language] in text, (case, regime, text)
