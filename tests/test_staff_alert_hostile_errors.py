"""A staff alert quoting what a hostile or careless processor (or the relay) said, as a DPO and a
low-privilege staff member read it, in all four languages. The error is data: HTML is not markup,
template syntax is not evaluated, a line break does not start a header or a line, and whatever
the processor echoed of the subject (their e-mail address as written or encoded in a URL, their
name) is not in an alert that "deliberately contains no personal data of the data subject". A
100 kB error page is quoted in part, and what staff can do still follows it. Before, the subject's
name and their URL-encoded address reached staff, a long error pushed the instructions out of the
2,000 characters kept, and finding addresses in it took seconds per 10 kB (quadratic)."""

from __future__ import annotations

import time

import pytest

from activities.letter_templates import render_letter
from activities.staff_alert_words import QUOTED_CHARS
from policy.model import load_policy
from schemas.vocabulary import ALERT_NEEDS_ATTENTION, Language
from schemas.workflow import TaskResult
from tests.letter_contexts import full_context
from tests.test_staff_alert_reading import DETAIL
from workflows.task_fanout import stuck_facts

SYSTEMS = {system: spec.label for system, spec in load_policy().policy.systems.items()}
SUBJECT = {"name": "Ada Lovelace", "email": "ada.lovelace@example.org"}
HOSTILE = ("<b>500</b> {{ 7*7 }} {% raw %} no contact 'ADA LOVELACE' for ada.lovelace@example.org "
           "(GET /contacts?email=ada.lovelace%40example.org&name=Ada+Lovelace)\r\nBcc: all@evil.example\r\n"
           "Subject: hijacked\n")
# What staff are told to do after a system's task needs them, in each language (its start).
WHAT_TO_DO = {"en": "On the request's page, retry it", "nl": "Voer de taak op de pagina", "fr": "Sur la page",
              "de": "Führen Sie die Aufgabe"}


def _alert(message: str, language: str):
    facts = stuck_facts(TaskResult(system="crm", action="erase", status="needs_attention", attempt=1,
                                   message=message))
    return render_letter("staff_alert", full_context("staff_alert", kind=ALERT_NEEDS_ATTENTION, days_left=3,
                                                     facts=facts, systems=SYSTEMS, subject=SUBJECT), language)


@pytest.mark.parametrize("language", [language.value for language in Language])
def test_an_error_quoted_to_staff_is_data_and_carries_nothing_of_the_subject(language):
    letter = _alert(HOSTILE, language)
    detail = DETAIL.search(letter.text)
    assert detail is not None, letter.text
    said = detail.group(1)
    for whole in (letter.subject, letter.text, letter.html):
        low = whole.lower()
        assert "ada" not in low.replace("aanvraag", "").replace("canada", ""), whole
        assert "lovelace" not in low and "example.org" not in low and "all@evil" not in low, whole
        assert "hijacked" not in letter.subject and "\n" not in letter.subject
    # Template syntax came through as it was written, never evaluated; HTML is text in the HTML letter.
    assert "{{ 7*7 }} {% raw %}" in said and "49" not in said, said
    assert "&lt;b&gt;500&lt;/b&gt;" in letter.html and "<b>500</b>" not in letter.html
    # The header-like text stayed inside the quoted line.
    assert not any(line.startswith(("Bcc:", "Subject:")) for line in letter.text.splitlines()), letter.text
    assert "Bcc: <address>" in said, said
    assert WHAT_TO_DO[language] in said, said


@pytest.mark.parametrize("language", ["en", "nl"])
def test_a_100_kb_error_page_is_quoted_in_part_quickly_and_staff_are_still_told_what_to_do(language):
    page = "Internal error " + "x" * 100_000 + " at ada.lovelace@example.org"
    started = time.process_time()
    letter = _alert(page, language)
    spent = time.process_time() - started
    said = DETAIL.search(letter.text).group(1)
    assert spent < 2, f"{spent:.1f} s to render one alert"
    assert "Internal error xxx" in said and "x" * (QUOTED_CHARS + 1) not in said, said[:200]
    assert "lovelace" not in letter.text and "lovelace" not in letter.html
    assert WHAT_TO_DO[language] in said, said[-300:]
    assert len(said) < QUOTED_CHARS + 600, len(said)
