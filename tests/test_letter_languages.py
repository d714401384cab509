"""Every letter in every language: rendered from the request's language (our messages through its
catalog, the policy's texts in it), sent through SMTP and read back from the sink's .eml file:
UTF-8, the dsrflow headers and Content-Language, and plain and HTML parts saying the same."""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest

from activities.citations import cited_label
from activities.letter_labels import LETTER_TYPE_LABELS, denial_label, staff_type_label
from activities.letter_message import compose_letter
from activities.letter_outcome import _kept_item
from activities.letter_refusals import remedies_context
from activities.letter_templates import RenderedLetter, render_letter
from activities.letters import message_id_for
from activities.mail import Mailer
from devstack.smtp_sink import MailSink, read_mailbox
from dsrflow.i18n import long_date, translations
from dsrflow.settings import Settings
from policy.model import load_policy
from schemas.vocabulary import PURPOSES, SUBJECT_PURPOSES, Language
from tests.letter_contexts import REQUEST_ID, STORED_KEPT, full_context
from tests.letters_as_sent import as_sent, both
from tests.test_letter_kept_by_processors import _held_whole

LANGUAGES = [lang.value for lang in Language]
_UNFILLED = re.compile(r"\{\{|\}\}|\{%|%\}|%\(\w+\)|\bNone\b|\b[Uu]ndefined\b")
_TAG = re.compile(r"<[^>]+>")
# Loaded once: each test below renders dozens of letters from it (it caches its translations).
POLICY = load_policy()


def _context(purpose: str, language: str) -> dict:
    """The test context of `purpose`, with what the letter activity translates in `language`."""
    policy = POLICY.in_language(language)
    t = translations(language)
    ctx = full_context(purpose)
    kind = ctx["request"]["type"]
    ctx["request"]["type_label"] = (staff_type_label(kind, "gdpr", t) if purpose == "staff_alert"
                                    else cited_label(LETTER_TYPE_LABELS[kind], "gdpr", t))
    ctx["controller"] = policy.controller.model_dump(mode="json")
    if "remedies" in ctx:
        ctx["remedies"] = remedies_context(policy, "gdpr", "BE", appeal=False, t=t)
    if purpose == "denial":
        ctx["reason_label"] = denial_label(ctx["reason_code"], "gdpr", t)
    if purpose == "response":
        # The records kept, read from the evidence as the letter activity reads them.
        ctx["outcome"]["kept"] = [_kept_item(k, policy, "gdpr", t, source=POLICY.policy) for k in STORED_KEPT]
    return ctx


def _given(purpose: str) -> list[str]:
    """What staff or the test wrote (an explanation, a reason), which stays as written. What was
    kept is not: its legal basis and law are the policy's texts and ours, in every language."""
    ctx = full_context(purpose)
    if purpose == "response":
        ctx["outcome"] = {**ctx["outcome"], "kept": []}
    return _strings(ctx)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def _flat(text: str) -> str:
    """Words only: a table row's "Label value" and a line's "Label: value" read the same."""
    return " ".join(re.sub(r"[:,;.\u00a0\u202f]", " ", text).split())


def _sentences(text: str) -> list[str]:
    """The plain text's sentences of six words or more (rows of data and headings left out)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("- "):
            continue  # a row of data: the HTML shows it as a table
        found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", line.strip()) if len(s.split()) >= 6]
    return found


async def test_every_letter_in_every_language_reads_back_from_its_eml(mail_sink: MailSink, settings: Settings):
    policy = POLICY.policy
    mailer = Mailer(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": mail_sink.port}))
    sent: dict[tuple[str, str], RenderedLetter] = {}
    for language in LANGUAGES:
        for purpose in PURPOSES:
            rendered = render_letter(purpose, _context(purpose, language), language)
            await mailer.send(compose_letter(policy, rendered, recipient="jane.doe@example.org",
                                             message_id=message_id_for(f"languages:{language}:{purpose}"),
                                             request_id=REQUEST_ID, purpose=purpose, language=language))
            sent[(language, purpose)] = rendered
    by_id = {m["Message-ID"]: m for m in read_mailbox(mail_sink.directory)}
    for (language, purpose), rendered in sent.items():
        mail = by_id[message_id_for(f"languages:{language}:{purpose}")]
        where = f"{purpose} in {language}"
        assert mail["Content-Language"] == language, where
        assert (mail["X-DSR-Purpose"], mail["X-DSR-Request-Id"]) == (purpose, REQUEST_ID), where
        assert str(mail["Subject"]) == rendered.subject, where  # a long one folded and unfolded
        plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert plain.get_content_charset() == html.get_content_charset() == "utf-8", where
        # SMTP carries lines ending in CRLF.
        assert plain.get_content().replace("\r\n", "\n") == rendered.text, where
        assert html.get_content().replace("\r\n", "\n") == rendered.html, where
        for part in (rendered.subject, rendered.text, rendered.html):
            assert not _UNFILLED.search(part), f"{where}: unfilled placeholder: {_UNFILLED.search(part)}"
        # The two parts say the same: every sentence of the plain text is in the HTML (which may
        # add headings and captions).
        html_text = _flat(unescape(_TAG.sub(" ", rendered.html)))
        missing = [sentence for sentence in _sentences(rendered.text) if _flat(sentence) not in html_text]
        assert missing == [], f"{where}: plain sentences not in the HTML: {missing[:3]}"


@pytest.mark.parametrize("language", ["nl", "fr", "de"])
@pytest.mark.parametrize("purpose", SUBJECT_PURPOSES)
def test_a_subject_letter_is_written_in_the_requests_language(purpose, language):
    """Nothing falls back to English: each sentence of the English letter is gone from the
    translated one, and dates are written the language's way."""
    english = render_letter(purpose, _context(purpose, "en"), "en")
    translated = render_letter(purpose, _context(purpose, language), language)
    t = translations(language)
    sign_off = "Kind regards,"
    assert t.gettext(sign_off) != sign_off, f"the {language} catalog does not translate {sign_off!r}"
    assert sign_off not in translated.text and t.gettext(sign_off) in translated.text
    english_sentences = {s.strip() for s in re.split(r"(?<=[.!?])\s+", english.text) if len(s.split()) >= 6}
    # What staff or the test wrote (an explanation, a decision) stays as written; our sentences may not.
    given = " ".join(_given(purpose))
    left = [s for s in english_sentences if s in translated.text and s not in given]
    assert left == [], f"{purpose} in {language}: English left: {left[:3]}"
    english_kept = [text for k in _context(purpose, "en").get("outcome", {}).get("kept", [])
                    for text in (k["basis"], k["law"]) if text]  # a legal-claims hold has no law
    assert [text for text in english_kept if text in translated.text] == [], f"{purpose} in {language}"
    assert long_date(date(2026, 1, 31), language) in translated.text


@pytest.mark.parametrize("recipient", ["jane.doe@example.org", "zoë.dupré@exämple.fr"])
async def test_a_long_accented_subject_and_sender_read_back_whatever_the_address(
        mail_sink: MailSink, settings: Settings, recipient: str):
    """Letters to an ASCII address are written with the classic email API, those to an
    internationalised one with the modern API (SMTPUTF8); both carry a long accented subject and
    sender name, and their text, unchanged."""
    loaded = POLICY.policy
    policy = loaded.model_copy(update={"controller": loaded.controller.model_copy(
        update={"name": "Connexeon Bévé Gesellschaft für Datenschutz und Überwachung mbH"})})
    rendered = RenderedLetter(
        subject="Votre demande d’effacement de vos données à caractère personnel — référence ABCD-EFGH-12",
        text="Bonjour Zoë,\n\n" + "Nous avons reçu votre demande. " * 12 + "\n", html="<p>Bonjour Zoë,</p>\n<p>Reçu.</p>\n")
    mailer = Mailer(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": mail_sink.port}))
    key = message_id_for(f"accented:{recipient}")
    await mailer.send(compose_letter(policy, rendered, recipient=recipient, message_id=key, request_id=REQUEST_ID,
                                     purpose="acknowledgement", language="fr"))
    mail = next(m for m in read_mailbox(mail_sink.directory) if m["Message-ID"] == key)

    def utf8(header: str) -> str:  # SMTPUTF8 headers are raw UTF-8, which the parser keeps escaped
        return header.encode("utf-8", "surrogateescape").decode("utf-8")

    assert (utf8(str(mail["Subject"])), utf8(str(mail["To"]))) == (rendered.subject, recipient)
    assert utf8(str(mail["From"])) == f"{policy.controller.name} <{policy.controller.sender_email}>"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == rendered.text
    assert mail.get_body(("html",)).get_content().replace("\r\n", "\n") == rendered.html


@pytest.mark.parametrize(("language", "separator"), [("en", "; "), ("nl", "; "), ("de", "; "), ("fr", "\u202f; ")])
def test_recipients_are_listed_as_the_language_sets_a_semicolon(language, separator):
    """French sets a narrow no-break space before ";": "a ; b", never "a; b" nor a line that
    starts with the semicolon."""
    context = full_context("restriction_lift")
    context["restriction"]["recipients"] = ["Payroll Services NV, Brussels", "Accounting provider"]
    letter = render_letter("restriction_lift", context, language)
    listed = f"Payroll Services NV, Brussels{separator}Accounting provider"
    for shown in (letter.text, unescape(letter.html)):
        assert listed in re.sub(r"[ \n]+", " ", shown), shown  # lines joined, the separator's own space kept


@pytest.mark.parametrize(("language", "late"), [("en", "Days late"), ("nl", "Dagen te laat")])
def test_an_overdue_alert_counts_the_days_late_not_negative_days_left(language, late):
    """The daily reminder of a request past its due date read "Days left: -3"."""
    context = full_context("staff_alert", kind="overdue", days_left=-3, detail="Waiting for: approval.")
    letter = render_letter("staff_alert", context, language)
    assert f"{late}: 3" in letter.text and "-3" not in letter.text, letter.text
    assert f">{late}</th>" in letter.html and ">-3<" not in letter.html


# A subject not yet known by name (`greeted_name`) is greeted in the formal register of the letter's
# language, as its "Sie" and its sign-off are: German's was "Guten Tag," beside "Madame, Monsieur,".
UNNAMED = {"en": "Hello,", "fr": "Madame, Monsieur,", "nl": "Geachte heer, mevrouw,",
           "de": "Sehr geehrte Damen und Herren,"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_subject_not_known_by_name_is_greeted_formally(language):
    letter = render_letter("acknowledgement", full_context("acknowledgement", subject={"name": None,
                                                                                      "email": "a@example.org"}),
                           language)
    assert letter.text.startswith(UNNAMED[language] + "\n"), letter.text[:80]
    assert f">{UNNAMED[language]}</p>" in letter.html


# A request closed part-way names the systems that had acted on it, in a sentence of the language
# (German said "waren wir ihm bereits nachgekommen in: CRM", "complied with it in": neither idiom
# nor true of a request done in part; French and Dutch, "donné suite dans : CRM", "gevolg aan
# gegeven in: CRM").
ACTED_IN = {"fr": "nous y avions déjà donné suite dans les systèmes suivants : CRM",
            "nl": "hadden wij er in de volgende systemen al gevolg aan gegeven: CRM",
            "de": "hatten wir ihn in folgenden Systemen bereits umgesetzt: CRM"}
# An OpenDSR processor still asked at the close is called off (activities/letter_stopped.py CALLED_OFF_KINDS).
STILL_ASKED = {"de": "Außerdem hatten wir folgende Systeme gebeten, ihn umzusetzen, und ziehen diese Bitte nun "
                     "zurück; Systeme, die bereits begonnen hatten, können schon gehandelt haben: "}


@pytest.mark.parametrize("language", sorted(ACTED_IN))
async def test_a_closing_letter_names_the_systems_that_acted_in_the_languages_words(language):
    letter = await as_sent("cancellation", "erasure", {"reason": "Withdrawn by phone", "withdrawn": True,
                                                       "acted_in": ["crm"], "asked_in": ["email_marketing"]},
                           language=language)
    for part in both(letter):
        assert ACTED_IN[language] in part, part
        assert STILL_ASKED.get(language, "") in part and "nachgekommen" not in part


async def test_a_german_erasure_cut_short_says_the_rest_stays_stored_not_kept_under_a_keeping():
    """"Diese Daten werden im Rahmen dieser Aufbewahrung aufbewahrt": kept under the keeping (the
    German letter names the legal-claims hold "Aufbewahrung für Rechtsansprüche")."""
    letter = await as_sent("response", "erasure", {"report": {"results": [_held_whole("email_marketing", 3, 1)]}},
                           language="de")
    for part in both(letter):
        assert "haben wir nicht gebeten: Diese Daten bleiben aufgrund dieser Aufbewahrung gespeichert." in part
        assert "Aufbewahrung aufbewahrt" not in part
