"""The portal's words in each language the controller writes in (issue 16): every message of its
templates and code, each translated with its placeholders, and the main heading in the page's
language. The catalogs are being translated: the tests that check the words themselves are marked
WORDING and skip, saying so, until the language's catalog translates the message they need. The
portal's pages in each language: tests/test_portal_languages.py.
"""

from __future__ import annotations

import re
from functools import cache
from html import unescape

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from dsrflow.i18n import catalog_path
from tests.test_portal_languages import ROOT

TRANSLATED = ("nl", "fr", "de")
HEADING = "Ask about your personal data"  # the portal's main heading (portal/request_form.html)


@cache
def _catalog(language: str) -> Catalog | None:
    path = catalog_path(language)
    if not path.is_file():
        return None
    with path.open("rb") as source:
        return read_po(source, locale=language)


def catalog_has(language: str, msgid: str) -> bool:
    """Whether `language`'s catalog translates `msgid` (an entry with a translation, not fuzzy)."""
    catalog = _catalog(language)
    message = catalog.get(msgid) if catalog is not None else None
    if message is None or message.fuzzy:
        return False
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)


def translation(language: str, msgid: str) -> str:
    catalog = _catalog(language)
    assert catalog is not None
    message = catalog.get(msgid)
    assert message is not None
    return str(message.string)


def heading(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match
    return unescape(match.group(1)).strip()


# -- the words (WORDING: these run once each language's catalog translates them) --------------------


def _portal_messages() -> dict[str, set[str]]:
    """Every message of the portal's templates and Python code (a plural by its singular, as the
    catalogs key it) -> its placeholders."""
    found: dict[str, set[str]] = {}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2), "N_": None}
    jinja = {"extensions": "jinja2.ext.i18n", "trimmed": "true"}
    files = [(path, "jinja2.ext:babel_extract", jinja)
             for path in [*sorted((ROOT / "api/templates/portal").glob("*.html")),
                          ROOT / "api/templates/_request_form.html"]]
    files += [(path, "python", {}) for path in [*sorted((ROOT / "api/public").glob("portal*.py")),
                                                ROOT / "api/request_form.py"]]
    for path, method, options in files:
        for _, messages, _, _ in extract_from_file(method, str(path), keywords=keywords, options=options):
            forms = [form for form in (messages if isinstance(messages, tuple) else (messages,)) if form]
            if forms:
                found[forms[0]] = {name for form in forms for name in re.findall(r"%\((\w+)\)", form)}
    return found


def test_the_portal_has_messages_to_translate():
    messages = _portal_messages()
    assert HEADING in messages and "Send my request" in messages
    assert messages["You have %(num)d attempt left."] == {"num"}
    assert all(not message.startswith(" ") and "\n" not in message for message in messages)  # trimmed


def _once_translated(language: str):
    """WORDING: `language` as a test parameter that skips until its catalog translates the portal's
    main heading (the portal's messages merged into the catalogs and translated)."""
    return pytest.param(language, marks=pytest.mark.skipif(
        not catalog_has(language, HEADING), reason=f"WORDING: the {language} catalog does not translate "
        f"the portal yet ({HEADING!r})"))


@pytest.mark.parametrize("language", [_once_translated(language) for language in TRANSLATED])
def test_wording_each_portal_message_is_translated_with_its_placeholders(language):
    catalog = _catalog(language)
    assert catalog is not None
    for msgid, placeholders in _portal_messages().items():
        entry = catalog.get(msgid)
        assert entry is not None and catalog_has(language, msgid), f"{language}: not translated: {msgid!r}"
        for string in entry.string if isinstance(entry.string, tuple) else (entry.string,):
            assert set(re.findall(r"%\((\w+)\)", string)) == placeholders, (language, msgid, string)


# The portal's main heading, as each language is expected to say it (its key word).
MAIN_HEADING = {"nl": "gegevens", "fr": "données", "de": "Daten"}


@pytest.mark.parametrize("language", [_once_translated(language) for language in TRANSLATED])
async def test_wording_the_main_heading_is_in_the_pages_language(http, language):
    r = await http.get("/portal", params={"lang": language})
    words = translation(language, HEADING)
    assert heading(r.text) == words != HEADING
    assert MAIN_HEADING[language] in words
    assert f"<title>{words} · " in unescape(r.text)


# The status look-up takes an appeal's or a complaint's reference as well as a request's, and their
# letters call it "Appeal reference" / "Complaint reference" (letters/_reference_words.j2): labelled
# "Request reference", the field named one of the three. Each language's words for the three.
LOOK_UP_NAMES = {"en": ("request", "appeal", "complaint"), "nl": ("verzoek", "beroep", "klacht"),
                 "fr": ("demande", "recours", "réclamation"), "de": ("Antrag", "Einspruch", "Beschwerde")}


@pytest.mark.parametrize("language", ["en", *[_once_translated(language) for language in TRANSLATED]])
async def test_the_status_look_up_is_labelled_for_a_request_an_appeal_or_a_complaint(http, language):
    r = await http.get("/portal", params={"lang": language})
    label = re.search(r'<label for="reference">(.*?)</label>', r.text, re.S)
    assert label, r.text
    assert all(name in unescape(label.group(1)) for name in LOOK_UP_NAMES[language]), label.group(1)
