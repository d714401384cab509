"""Every letter, in every regime, reads well: nothing unfilled, no empty section, no sentence
twice. Its cases (`LETTER_CASES`, rendered by `_render_case`: tests/letter_cases.py) are also the
letters whose content in each regime, the remedies included, tests/test_letter_regime_content.py
checks."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from html import unescape

import pytest

from activities.letter_templates import RenderedLetter
from activities.processor_mail import REMINDER_PURPOSE as MANUAL_REMINDER
from activities.processor_mail import REQUEST_PURPOSE as MANUAL_REQUEST
from activities.processor_mail import WITHDRAWAL_PURPOSE as MANUAL_WITHDRAWAL
from schemas.vocabulary import PURPOSES, Language, Regime
from tests.letter_cases import LETTER_CASES, TOLD_OF_THE_OTHER, _render_case, applies


def test_the_reading_check_covers_every_letter_purpose():
    """A purpose added later (a cancellation letter, say) must be added to the cases (tests/letter_cases.py)."""
    covered = {purpose for purpose, _ in LETTER_CASES.values()}
    assert covered == {*PURPOSES, MANUAL_REQUEST, MANUAL_REMINDER, MANUAL_WITHDRAWAL}


_UNFILLED = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\bNone\b|\b[Uu]ndefined\b|\[missing|\bnan\b")
_TEXT_HEADING = re.compile(r"^(?P<title>\S.*)\n-+$", re.MULTILINE)
_HTML_BLOCK = re.compile(r"<(?:br|/?p|/?li|/?ul|/?tr|/?h[12]|/?table|/?caption)\b[^>]*>", re.IGNORECASE)
_HTML_CELL = re.compile(r"</t[dh]>", re.IGNORECASE)  # a table row reads as one line: its cells are data
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"“])")
# Shorter sentences ("Kind regards,", a list item) may legitimately repeat.
_MIN_SENTENCE = 20


def _html_as_text(html: str) -> str:
    body = html.split("<body", 1)[1]  # the <title> repeats the subject line by design
    return unescape(re.sub(r"<[^>]+>", "", _HTML_BLOCK.sub("\n", _HTML_CELL.sub(" | ", body))))


def _text_sections(text: str) -> list[tuple[str, str]]:
    """(heading, content) of each underlined heading of a text letter, up to the next or the footer."""
    body = text.split("\n--\n", 1)[0]
    heads = list(_TEXT_HEADING.finditer(body))
    ends = [h.start() for h in heads[1:]] + [len(body)]
    return [(h["title"], body[h.end():ends[i]]) for i, h in enumerate(heads)]


def _html_sections(html: str) -> list[tuple[str, str]]:
    """(heading, text) of each h1/h2 of an HTML letter, up to the next heading or the end of the body cell."""
    main = html.split("<h1", 1)[1].split("</td>\n</tr>\n<tr>", 1)[0]
    parts = re.split(r"<h[12]\b[^>]*>(.*?)</h[12]>", "<h1" + main, flags=re.DOTALL)
    return [(parts[i], re.sub(r"<[^>]+>", "", parts[i + 1])) for i in range(1, len(parts) - 1, 2)]


def _sentences(text: str) -> list[str]:
    """The prose of a letter: fields ("Request reference: ..."), headings and list items do not
    end like a sentence and are data, shown again where useful (the footer repeats the reference)."""
    out = []
    for line in text.splitlines():
        for sentence in _SENTENCE_END.split(" ".join(line.split())):
            if len(sentence) >= _MIN_SENTENCE and sentence[-1] in ".!?":
                out.append(sentence)
    return out


def _same_sentence(a: str, b: str) -> bool:
    """Equal, or the same words but for a word or two ("We have now completed..." twice)."""
    a, b = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    return SequenceMatcher(None, a, b).ratio() >= 0.9


def _problems(letter: RenderedLetter) -> list[str]:
    problems = []
    for name, part in (("subject", letter.subject), ("text", letter.text), ("html", letter.html)):
        problems += [f"{name}: unfilled {m.group()!r}" for m in _UNFILLED.finditer(part)]
    for name, sections in (("text", _text_sections(letter.text)), ("html", _html_sections(letter.html))):
        problems += [f"{name}: empty section {title!r}" for title, content in sections
                     if not title.strip() or not content.strip()]
    problems += [f"html: empty element {m.group()!r}"
                 for m in re.finditer(r"<(p|li|h[12]|th|caption)\b[^>]*>\s*</\1>", letter.html)]
    for name, text in (("text", letter.text), ("html", _html_as_text(letter.html))):
        sentences = _sentences(text)
        problems += [f"{name}: repeated {a!r} / {b!r}" for i, a in enumerate(sentences)
                     for b in sentences[i + 1:] if _same_sentence(a, b)]
    return problems


@pytest.mark.parametrize(("case", "regime"), [(case, r.value) for case in LETTER_CASES for r in Regime
                                              if applies(case, r.value)])
def test_every_letter_reads_well_in_every_regime(case, regime):
    """No empty section, no unfilled placeholder, no sentence said twice: in text and in HTML."""
    assert _problems(_render_case(case, regime)) == []


@pytest.mark.parametrize("language", [language.value for language in Language])
@pytest.mark.parametrize("regime", [r.value for r in Regime])
def test_what_a_processor_reads_of_a_restriction_and_its_lift_reads_well_in_its_language(regime, language):
    """The sentences a restriction's and a lift's e-mails (and their reminders) say of each other
    (`TOLD_OF_THE_OTHER`) in every language a processor may read: there (its e-mail without them
    reads otherwise), and read as well as the English letters above."""
    for case in [case for case in LETTER_CASES if case.partition("-")[2] in TOLD_OF_THE_OTHER]:
        purpose, told = case.split("-", 1)
        mail = _render_case(case, regime, language)
        without = _render_case(f"{purpose}-{TOLD_OF_THE_OTHER[told][0]}", regime, language)
        assert (mail.text != without.text and mail.html != without.html), case
        assert _problems(mail) == [], case


def test_the_reading_check_finds_what_it_looks_for():
    """The checks above catch each fault (so a passing run means the letters, not a blind check)."""
    good = _render_case("response-erasure-kept", "gdpr")
    assert _problems(good) == []
    opening = "We have now completed your request, except for the data named under “What we kept, and why” below."
    assert opening in good.text
    repeated = RenderedLetter(good.subject, good.text.replace(opening, f"{opening} {opening}"), good.html)
    assert any("repeated" in p for p in _problems(repeated))
    empty = RenderedLetter(good.subject, good.text.replace("Your rights\n-----------\n", "Your rights\n-----------\n\nMore\n----\n"),
                           good.html.replace("</h2>", "</h2><h2>More</h2>", 1))
    assert {p.split(":")[0] for p in _problems(empty) if "empty section" in p} == {"text", "html"}
    unfilled = RenderedLetter(good.subject, good.text + "Kept until: None\n", good.html.replace("</p>", "{{ x }}</p>", 1))
    assert {p.split(":")[0] for p in _problems(unfilled) if "unfilled" in p} == {"text", "html"}
