"""The policy's languages: each supported language has every text subjects read, and a translation
that misses one, or names something that is not such a text, is refused naming the path."""

from __future__ import annotations

import copy
from datetime import date, datetime
from pathlib import Path

import pytest

from dsrflow.i18n import and_list, long_date, long_datetime, translations
from policy.languages import translatable_texts
from policy.model import DEFAULT_POLICY, PolicyError, load_policy, parse_policy
from tests.yaml_files import dump_yaml, read_yaml


def _shipped() -> dict:
    return read_yaml(DEFAULT_POLICY)


def _translation(language: str) -> dict:
    return read_yaml(DEFAULT_POLICY.parent / f"connexeon.{language}.yaml")


def test_the_default_policy_speaks_four_languages_with_the_belgian_authority_in_each():
    loaded = load_policy()
    assert [lang.value for lang in loaded.policy.languages.supported] == ["en", "nl", "fr", "de"]
    names = {lang: loaded.in_language(lang).supervisory_authorities["BE"].name for lang in ("nl", "fr", "de")}
    assert names["nl"].startswith("Gegevensbeschermingsautoriteit")
    assert names["fr"].startswith("Autorité de protection des données")
    assert names["de"].startswith("Datenschutzbehörde")
    # English stays the policy as written.
    assert loaded.in_language("en") is loaded.policy


@pytest.mark.parametrize("language", ["nl", "fr", "de"])
def test_every_text_for_subjects_is_translated_and_differs_from_the_english(language):
    english = translatable_texts(_shipped())
    translated = translatable_texts(load_policy().in_language(language).model_dump(mode="json", exclude_none=True))
    assert set(english) <= set(translated)
    # Official names, addresses and statute citations may stay as they are; sentences may not.
    same = [path for path, text in english.items() if translated[path] == text and len(text.split()) > 4
            and not path.endswith((".name", ".address", ".rule"))]
    assert same == []


def test_a_missing_text_is_named(tmp_path: Path):
    nl = _translation("nl")
    del nl["remedies"]["gdpr"]["judicial"]
    content = _shipped()
    content["translations"]["nl"] = nl
    with pytest.raises(PolicyError, match=r"translations\.nl: missing remedies\.gdpr\.judicial"):
        parse_policy(content)


def test_a_path_that_is_not_a_text_for_subjects_is_named():
    nl = _translation("nl")
    nl["systems"]["crm"]["connector"] = "http"  # a translation may not change how a system is reached
    content = _shipped()
    content["translations"]["nl"] = nl
    with pytest.raises(PolicyError, match=r"translations\.nl\.systems\.crm\.connector: not a text"):
        parse_policy(content)


def test_a_supported_language_without_a_translation_is_refused():
    content = _shipped()
    del content["translations"]["de"]
    with pytest.raises(PolicyError, match=r"translations\.de: missing; languages\.supported lists it"):
        parse_policy(content)


def test_a_translation_of_an_unsupported_language_is_refused():
    content = _shipped()
    content["languages"]["supported"] = ["en", "nl", "fr"]
    with pytest.raises(PolicyError, match=r"translations\.de: not a supported language"):
        parse_policy(content)


def test_the_default_language_must_be_supported():
    content = _shipped()
    content["languages"]["default"] = "de"
    content["languages"]["supported"] = ["en"]
    content.pop("translations")
    with pytest.raises(PolicyError, match=r"languages: .*default: 'de' is not among the supported"):
        parse_policy(content)


def test_a_missing_translation_file_is_named(tmp_path: Path):
    content = _shipped()
    content["translations"]["nl"] = {"file": "nowhere.nl.yaml"}
    path = tmp_path / "policy.yaml"
    path.write_text(dump_yaml(content))
    with pytest.raises(PolicyError, match=r"translations\.nl\.file: nowhere\.nl\.yaml not found"):
        load_policy(path)


def test_an_english_only_policy_needs_no_translations():
    content = copy.deepcopy(_shipped())
    content["languages"] = {"supported": ["en"]}
    content.pop("translations")
    assert parse_policy(content).in_language("en").controller.name


@pytest.mark.parametrize(("language", "day", "moment", "listed"), [
    ("en", "30 December 2026", "2 March 2026, 15:05 CET (UTC+1)", "a, b and c"),
    ("nl", "30 december 2026", "2 maart 2026, 15:05 CET (UTC+1)", "a, b en c"),
    ("fr", "30 décembre 2026", "2 mars 2026, 15:05 CET (UTC+1)", "a, b et c"),
    ("de", "30. Dezember 2026", "2. März 2026, 15:05 CET (UTC+1)", "a, b und c"),
])
def test_dates_and_lists_are_written_the_languages_way(language, day, moment, listed):
    assert long_date(date(2026, 12, 30), language) == day
    assert long_datetime(datetime(2026, 3, 2, 14, 5), language, "Europe/Brussels") == moment
    assert and_list(["a", "b", "c"], language) == listed


def test_an_unknown_language_has_no_catalog():
    with pytest.raises(ValueError, match="'it' is not a valid Language"):
        translations("it")
