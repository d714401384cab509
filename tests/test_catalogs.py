"""The message catalogs are complete: every message the code and templates use (extracted now, as
`pybabel extract` does with babel.cfg) is in the committed template and translated in every
language's catalog, none fuzzy, empty or with placeholders that differ from the English."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from dsrflow.i18n import LOCALES, catalog_path
from schemas.vocabulary import Language

ROOT = Path(__file__).resolve().parent.parent
TRANSLATED = [lang.value for lang in Language if lang != Language.en]
# The extraction command the README gives; the keywords must match what the code marks.
EXTRACT = ["extract", "-F", "babel.cfg", "-k", "N_", "-k", "pgettext:1c,2", "--no-location", "--sort-output",
           "--add-comments=Translators:", "--project=dsrflow", "--copyright-holder=dsrflow"]


def _read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


@pytest.fixture(scope="module")
def extracted_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    pybabel = Path(sys.executable).with_name("pybabel")
    subprocess.run([str(pybabel), *EXTRACT, "-o", str(out), "."], cwd=ROOT, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def extracted(extracted_file: Path) -> Catalog:
    return _read(extracted_file)


def _ids(catalog: Catalog) -> set[object]:
    return {(m.context, m.id) for m in catalog if m.id}


def test_the_committed_template_holds_every_message_in_use(extracted: Catalog):
    committed = _read(LOCALES.parent / "messages.pot")
    missing = sorted(str(i) for i in _ids(extracted) - _ids(committed))
    assert missing == [], f"run `pybabel extract` (docs/extending.md): new messages {missing[:5]}"


def _undated(template: str) -> str:
    return re.sub(r'^"POT-Creation-Date: .*"$', "", template, flags=re.MULTILINE)


def test_the_committed_template_is_what_the_extraction_writes(extracted_file: Path):
    """Byte for byte but its date: messages added by hand at its end, or left there after their
    code went, drift from what the README's command writes, and the next person to run it gets a
    diff of hundreds of lines that are not theirs."""
    committed = (LOCALES.parent / "messages.pot").read_text()
    assert _undated(committed) == _undated(extracted_file.read_text()), (
        "dsrflow/i18n/messages.pot is not what `pybabel extract` writes: run the command of docs/languages.md")


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(extracted: Catalog, language: str):
    catalog = _read(catalog_path(language), language)
    missing = sorted(str(i) for i in _ids(extracted) - _ids(catalog))
    assert missing == [], f"{language}: run `pybabel update`; missing {missing[:5]}"
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert fuzzy == [], f"{language}: fuzzy entries {fuzzy[:5]}"
    empty = [m.id for m in catalog if m.id and not all(m.string if isinstance(m.string, tuple) else (m.string,))]
    assert empty == [], f"{language}: untranslated {empty[:5]}"
    problems = [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()]
    assert problems == [], f"{language}: placeholders differ from the English: {problems[:3]}"


def test_a_gap_in_a_catalog_is_found(tmp_path: Path, extracted: Catalog):
    """The check above can fail: a catalog missing one message, or with a fuzzy one, is caught."""
    catalog = _read(catalog_path("nl"), "nl")
    first = next(m for m in catalog if m.id)
    catalog.delete(first.id, context=first.context)
    assert _ids(extracted) - _ids(catalog)
    second = next(m for m in catalog if m.id)
    second.flags.add("fuzzy")
    assert [m for m in catalog if m.id and m.fuzzy]
