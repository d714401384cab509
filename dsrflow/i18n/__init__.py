"""The subject's language: gettext catalogs and Babel's locale-aware formatting.

Messages are written in English in the templates and the code (the source language); each other
language has a Babel catalog, `locales/<language>/LC_MESSAGES/messages.po`, committed as source
and compiled in memory the first time the language is used (no build step, no stale `.mo`). A
fuzzy entry is never used: until a translator confirms it, it fails the catalog test.

Dates, numbers and lists are formatted by Babel for the language ("30 december 2026",
"30 décembre 2026", "30. Dezember 2026"). English uses the British forms the letters always had
("30 December 2026").

A moment (a datetime) is written in the controller's timezone, the one its deadline days are
counted in, with the zone named so a subject elsewhere can convert it: "31 December 2026, 00:30
CET (UTC+1)". See `zone_name` for why the offset is always given.

The laws that say "personal information" where the GDPR says "personal data" (the CCPA, PIPEDA:
"renseignements personnels" in its French version) have their words in a small catalog per
language, `locales/<language>/LC_MESSAGES/personal_information.po`, holding only the messages
that differ; `worded` looks a message up there before the language's own catalog. The e-mails to
processors name the parties as the law of the request does too ("consumer" and "service provider
or contractor" under the CCPA): a catalog per such wording, `consumer.po`, `service_provider.po`
and `third_party.po`, in every language (processors read the staff language, any of them).

Every law but the GDPR and the UK GDPR grants the *deletion* of personal data where the GDPR
grants its *erasure* (Art. 17; Cal. Civ. Code § 1798.105, Va. Code § 59.1-577(A)(3), LGPD Art. 18,
VI): their letters say "delete", "deleted", "deletion" ("supprimer", "verwijderen"), through
`deletion.po`, looked up before the language's catalog. The laws of `personal_information.po`
delete too: that catalog says both their words and is looked up before `deletion.po`.

The same laws grant the *correction* of inaccurate personal data where the GDPR grants its
*rectification* (Art. 16; Cal. Civ. Code § 1798.106, Va. Code § 59.1-577(A)(2), C.R.S.
§ 6-1-1306(1)(c), LGPD Art. 18, III "correção", PIPEDA Schedule 1, clause 4.9.5): their letters
say "correction" ("correctie"), through `correction.po`, looked up after `deletion.po`. French
("rectification", the ordinary word) and German ("Berichtigung") need none.
"""

from __future__ import annotations

import gettext
import io
import re
import unicodedata
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from schemas.vocabulary import Language, Regime

LOCALES = Path(__file__).with_name("locales")
DOMAIN = "messages"
SOURCE_LANGUAGE = Language.en
# The Babel locale each language formats with.
_FORMAT_LOCALE = {Language.en: "en_GB", Language.nl: "nl", Language.fr: "fr", Language.de: "de"}


# The wording of the laws that define "personal information" where the GDPR defines "personal
# data": the CCPA (Cal. Civ. Code § 1798.140(v)) and PIPEDA (s. 2(1); "renseignements personnels"
# in French). Not the other US state laws: the VCDPA, the CTDPA and the CPA define "personal data",
# as the UK GDPR does and the LGPD ("dados pessoais").
PERSONAL_INFORMATION = "personal_information"
# The laws that grant the deletion of personal data, not the GDPR's erasure (its "right to be
# forgotten"): every one but the GDPR and the UK GDPR.
DELETION = "deletion"
# The same laws grant the correction of inaccurate personal data, not the GDPR's rectification.
CORRECTION = "correction"
_WORDINGS: dict[str, str] = {Regime.ccpa: PERSONAL_INFORMATION, Regime.pipeda: PERSONAL_INFORMATION,
                             Regime.vcdpa: DELETION, Regime.ctdpa: DELETION, Regime.cpa: DELETION,
                             Regime.lgpd: DELETION}
# A wording whose laws also speak another's words: its catalog is read first, then that one's
# (the CCPA and PIPEDA say "personal information" and delete; every deleting law corrects).
_WITHIN: dict[str, str] = {PERSONAL_INFORMATION: DELETION, DELETION: CORRECTION}
# The words of the e-mails to processors, where the law names the person, us and the processor
# otherwise than the GDPR's "data subject", "controller" and "processor". The VCDPA, the CTDPA and
# the CPA: a "consumer", the "controller" and its "processor" (Va. Code § 59.1-575, Conn. Gen. Stat.
# § 42-515, C.R.S. § 6-1-1303). The CCPA: a "consumer", the "business" and its "service provider"
# or "contractor", "personal information" (Cal. Civ. Code § 1798.140(d), (i), (j), (ag), (v)).
# PIPEDA: an "individual", the "organization" responsible for the personal information, also
# where "transferred to a third party for processing" (Schedule 1, clause 4.1.3). The UK GDPR and
# the LGPD (whose "titular" and "operador" English renders as the GDPR's words) keep the GDPR's.
CONSUMER, SERVICE_PROVIDER, THIRD_PARTY = "consumer", "service_provider", "third_party"
_PROCESSOR_WORDINGS: dict[str, str] = {Regime.ccpa: SERVICE_PROVIDER, Regime.vcdpa: CONSUMER,
                                       Regime.ctdpa: CONSUMER, Regime.cpa: CONSUMER, Regime.pipeda: THIRD_PARTY}


def catalog_path(language: str, domain: str = DOMAIN) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{domain}.po"


def _compiled(path: Path, language: str, domain: str) -> gettext.GNUTranslations:
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=domain)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language` (the source language needs none). An unknown language
    raises ValueError naming it, a language whose catalog file is missing LookupError."""
    # One catalog per language however it is named: the cache keys `Language.nl` apart from "nl",
    # and compiled each catalog twice.
    return _translations(Language(language).value)


@cache
def _translations(language: str) -> gettext.NullTranslations:
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    path = catalog_path(language)
    if not path.is_file():
        raise LookupError(f"no catalog for language {language!r}: {path} is missing")
    return _compiled(path, language, DOMAIN)


def _wordings(regime: str | None) -> set[str]:
    """The wordings `regime`'s law speaks: its own and those it is within (`_WITHIN`)."""
    found, wording = set(), _WORDINGS.get(regime) if regime else None
    while wording is not None:
        found.add(wording)
        wording = _WITHIN.get(wording)
    return found


def deletes(regime: str | None) -> bool:
    """Whether `regime`'s law grants the deletion of personal data where the GDPR grants its
    erasure: the one question every letter, page and label that names an erasure asks."""
    return DELETION in _wordings(regime)


def corrects(regime: str | None) -> bool:
    """Whether `regime`'s law grants the correction of inaccurate personal data where the GDPR
    grants its rectification (every law but the GDPR and the UK GDPR)."""
    return CORRECTION in _wordings(regime)


# The GDPR's words for its erasure and rectification in staff's English (the console, the evidence
# pack, the REST API's words), and the words of the laws that grant a deletion and a correction
# instead. Staff pages are English only, not catalogued: these words are one table, not a catalog.
_DELETION_WORDS = {"erasure": "deletion", "erasures": "deletions", "erase": "delete", "erased": "deleted",
                   "erases": "deletes", "erasing": "deleting"}
_CORRECTION_WORDS = {"rectification": "correction", "rectifications": "corrections", "rectify": "correct",
                     "rectified": "corrected", "rectifies": "corrects", "rectifying": "correcting"}
_GDPR_WORDS = re.compile(r"\b(?:(an|An) )?(" + "|".join([*_DELETION_WORDS, *_CORRECTION_WORDS]) + r")\b", re.IGNORECASE)


def in_law_words(text: str, regime: str | None) -> str:
    """Staff's English `text` (dsrflow's own words, never a note, a processor's answer or a policy's
    label) as the law of `regime` says it: "Processor asked to erase what a hold had kept" is
    "... to delete ..." under every law that `deletes`, "an erasure" "a deletion", "rectification"
    "correction" under every law that `corrects`; the GDPR's and the UK GDPR's words unchanged."""
    words = {**(_DELETION_WORDS if deletes(regime) else {}), **(_CORRECTION_WORDS if corrects(regime) else {})}
    if not words:
        return text

    def said(found: re.Match[str]) -> str:
        article, word = found.group(1), found.group(2)
        if (law := words.get(word.lower())) is None:
            return found.group(0)
        law = law.capitalize() if word[0].isupper() else law
        # Every law's word begins with a consonant: "an erasure" is "a deletion".
        return f"{article[0]} {law}" if article else law

    return _GDPR_WORDS.sub(said, text)


def wording_of(regime: str | None, *, to_processor: bool = False) -> str | None:
    """The wording family of `regime`'s law (`PERSONAL_INFORMATION`, `DELETION`), None for the GDPR's words;
    `to_processor`: the words of an e-mail to a processor (`CONSUMER`, `SERVICE_PROVIDER`,
    `THIRD_PARTY`); None for no regime too (one not on record)."""
    return None if regime is None else (_PROCESSOR_WORDINGS if to_processor else _WORDINGS).get(regime)


def worded(language: str, wording: str | None) -> gettext.NullTranslations:
    """`language`'s catalog as a law of `wording` words it: that wording's catalog first, the
    language's for every message it does not hold (Dutch holds only the words of deletion and
    correction: its usual terms are these laws' too). A language without one, and `wording` None,
    give the language's catalog."""
    return _worded(Language(language).value, wording)


@cache
def _worded(language: str, wording: str | None) -> gettext.NullTranslations:
    if wording is None:
        return translations(language)
    below = _worded(language, _WITHIN.get(wording))
    if not (path := catalog_path(language, wording)).is_file():
        return below
    override = _compiled(path, language, wording)
    override.add_fallback(below)
    return override


def _local_time(value: datetime, timezone: str) -> datetime:
    """`value` on the clock of `timezone` (an IANA name). A naive datetime is taken to be UTC
    already (activities work in UTC)."""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(ZoneInfo(timezone))


def zone_name(local: datetime) -> str:
    """The zone of a local time as every language writes it: the tz database's abbreviation with
    its offset from UTC ("CET (UTC+1)", "CEST (UTC+2)", "PDT (UTC−7)"), the offset alone where the
    zone has no abbreviation ("UTC+3" in Istanbul), "UTC" or "GMT" alone at offset zero.

    The offset is always there: it is what a subject elsewhere converts with, and it makes an
    ambiguous abbreviation unambiguous ("CST" is Chicago's and Shanghai's, "IST" Dublin's summer
    and India's). Babel's localized names are not used: they differ between the copies of one
    letter (CET in English and Dutch, MEZ in German, "+0100" in French; "Pacific Standard Time"
    in British English, "-0800" elsewhere), where a letter and its portal page should read alike
    in every language. A minus sign (U+2212), not a hyphen: a line never breaks after it."""
    offset = local.utcoffset()
    if offset is None:
        raise ValueError("a zone name needs an aware datetime")
    minutes = int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    sign = "+" if minutes > 0 else "\N{MINUS SIGN}"
    utc = f"UTC{sign}{hours}{f':{rest:02d}' if rest else ''}" if minutes else "UTC"
    abbreviation = local.tzname() or ""
    if not abbreviation.isalpha():  # "+03": the zone has no abbreviation of its own
        return utc
    return abbreviation if not minutes and abbreviation in ("UTC", "GMT") else f"{abbreviation} ({utc})"


def long_date(value: date | datetime, language: str = SOURCE_LANGUAGE, timezone: str | None = None) -> str:
    """``date(2026, 12, 30)`` -> "30 December 2026" / "30 december 2026" / "30 décembre 2026" /
    "30. Dezember 2026". A datetime gives the date it fell on in `timezone`, which it needs: 23:30
    UTC on 30 December is 31 December in Amsterdam."""
    if isinstance(value, datetime):
        if timezone is None:
            raise TypeError("the date of a datetime depends on the timezone: name the controller's")
        value = _local_time(value, timezone).date()
    if not isinstance(value, date):
        raise TypeError(f"a long date needs a date, got {type(value).__name__}")
    written = format_date(value, format="long", locale=_FORMAT_LOCALE[Language(language)])
    # French writes the first of the month as an ordinal ("1er mars"); Babel does not.
    return f"1er{written[1:]}" if Language(language) == Language.fr and value.day == 1 else written


def long_datetime(value: datetime, language: str, timezone: str, *, seconds: bool = False) -> str:
    """A moment in `timezone` (the controller's), the zone named: "31 December 2026, 00:30 CET
    (UTC+1)", "31 décembre 2026, 00:30 CET (UTC+1)" (the date and time as the language writes
    them; the zone as every language does, `zone_name`); `seconds` for a staff page's audit times."""
    if not isinstance(value, datetime):
        raise TypeError(f"a long date and time needs a datetime, got {type(value).__name__}")
    local = _local_time(value, timezone)
    clock = format_time(local, format="HH:mm:ss" if seconds else "HH:mm", locale=_FORMAT_LOCALE[Language(language)])
    return f"{long_date(local.date(), language)}, {clock} {zone_name(local)}"


def language_name(language: str, in_language: str | None = None) -> str:
    """The language's name in itself: "English", "Nederlands", "Français", "Deutsch"; or in
    `in_language` ("Dutch" in English)."""
    name = Locale.parse(_FORMAT_LOCALE[Language(language)]).get_display_name(in_language or language) or language
    return name.split(" (")[0].capitalize()


def without_accents(text: str) -> str:
    """`text` with its letters' accents dropped ("Égypte" -> "Egypte", "d’Accès" -> "d’Acces"):
    for comparing and sorting words as a reader takes them, whatever their accents."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def and_list(items: list[str], language: str = SOURCE_LANGUAGE) -> str:
    """"a, b and c" in the language ("a, b en c", "a, b et c", "a, b und c")."""
    return format_list(items, locale=_FORMAT_LOCALE[Language(language)])


# French sets a narrow no-break space before a semicolon (as before ; : ! ?), which a line never
# breaks from its word; the other languages none.
_SERIES_SEPARATOR = {Language.fr: "\u202f; "}


def series(items: list[str], language: str = SOURCE_LANGUAGE) -> str:
    """Items that may hold commas of their own (a recipient's name and address, a purpose) one
    after the other, by semicolons as the language sets them: "a; b" or, in French, "a ; b"."""
    return _SERIES_SEPARATOR.get(Language(language), "; ").join(items)


def N_(message: str) -> str:
    """Marks a message for the catalogs where it is defined (a table of labels); it is translated
    where it is used, once the language is known: `translator.gettext(TABLE[key])`."""
    return message


Translator = gettext.NullTranslations
ENGLISH: Translator = gettext.NullTranslations()
