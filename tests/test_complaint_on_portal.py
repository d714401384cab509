"""The LGPD's right to complain is written once (policy `remedies.lgpd.complaint`): the letters say
it, and the portal's page of a late request says it too, with the policy's `complaint_on_portal`
words in place of the letters' "keep this e-mail" (a page is no e-mail). Before, the portal's
paragraph was a second copy of the letters', in each language, which a change to the letters'
missed. In process: the letter as the letter activity builds it, the page's words as the status
page reads them (api/public/status_words.py `late_remedies`)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.public.status_words import late_remedies
from policy.model import DEFAULT_POLICY, PolicyError, load_policy
from tests.letters_as_sent import as_sent, both
from tests.yaml_files import dump_yaml, read_yaml

RAW = read_yaml(DEFAULT_POLICY)
# The petition's first words in each language the policy ships, and a DPO's new wording of them.
CHANGED = {"en": ("You have the right to petition", "You may at any time petition"),
           "fr": ("Vous avez le droit de saisir", "Vous pouvez à tout moment saisir")}
KEPT = {"en": ("keep this e-mail", "keep our e-mails about this request"),
        "fr": ("conservez cet e-mail", "conservez nos e-mails concernant cette demande")}


def _policy_files(tmp_path: Path, change) -> Path:
    """The shipped policy and its translations under `tmp_path`, each language's content (the
    English policy's, each translation's) passed through `change(language, content)`."""
    content = copy.deepcopy(RAW)
    change("en", content)
    for language, entry in content["translations"].items():
        translated = read_yaml(DEFAULT_POLICY.parent / entry["file"])
        change(language, translated)
        (tmp_path / entry["file"]).write_text(dump_yaml(translated, allow_unicode=True, sort_keys=False))
    path = tmp_path / "policy.yaml"
    path.write_text(dump_yaml(content, allow_unicode=True, sort_keys=False))
    return path


async def _portal_says(loaded, language: str, pool) -> str:
    """The right to complain as the status page of a late LGPD request gives it (its policy version
    not on record: the policy in force, here `loaded`)."""
    state = SimpleNamespace(db=lambda: _ready(pool), policy=loaded)
    row = {"policy_version": "0" * 64, "regime": "lgpd", "country": "BR"}
    return " ".join((await late_remedies(state, row, language)).complaint.split())  # type: ignore[arg-type]


async def _ready(pool):
    return pool


@pytest.mark.parametrize("language", ["en", "fr"])
async def test_one_change_to_the_lgpd_complaint_reaches_the_letter_and_the_portal(tmp_path, pool, language):
    old, new = CHANGED[language]

    def reworded(lang: str, content: dict) -> None:
        remedies = content["remedies"]["lgpd"]
        if lang == language:
            assert old in remedies["complaint"]
            remedies["complaint"] = remedies["complaint"].replace(old, new)

    loaded = load_policy(_policy_files(tmp_path, reworded))
    letter = await as_sent("denial", "access", {"reason_code": "excessive", "explanation": "Fifth."},
                           regime="lgpd", language=language, loaded=loaded, country="BR")
    page = await _portal_says(loaded, language, pool)
    letters_words, portal_words = KEPT[language]
    for said in (*both(letter), page):
        assert new in said and old not in said, said
    for part in both(letter):
        assert letters_words in part
    assert portal_words in page and letters_words not in page
    # The rest of the paragraph is the letters', word for word.
    letters_text = " ".join(loaded.in_language(language).remedies["lgpd"].complaint.split())
    assert page == letters_text.replace(letters_words, portal_words)


@pytest.mark.parametrize(("language", "where"), [("en", "remedies.lgpd"), ("fr", "translations.fr.remedies.lgpd")])
def test_portal_words_the_letters_do_not_say_fail_the_load_naming_them(tmp_path, language, where):
    """The letters' words reworded without the portal's words that stand for them: the page would
    say "keep this e-mail" again; the policy does not load, naming the path and the words."""
    letters_words = KEPT[language][0]

    def reworded(lang: str, content: dict) -> None:
        if lang == language:
            remedies = content["remedies"]["lgpd"]
            remedies["complaint"] = remedies["complaint"].replace(letters_words, "KEEP")

    said = f"complaint_on_portal.letters: '{letters_words}' is not in the letters' words it stands for (complaint)"
    with pytest.raises(PolicyError, match=re.escape(f"{where}: ") + r"(Value error, )?" + re.escape(said)):
        load_policy(_policy_files(tmp_path, reworded))


def test_portal_words_said_more_than_once_in_the_letters_fail_the_load(tmp_path):
    """Letters' words the paragraph says more than once ("the", six times): the page would replace
    each ("You have our right to petition our national data protection authority ..."). The policy
    does not load, naming them, rather than the page of a late request saying another paragraph
    than the letters'."""

    def reworded(lang: str, content: dict) -> None:
        if lang == "en":
            content["remedies"]["lgpd"]["complaint_on_portal"] = {"letters": "the", "portal": "our"}

    said = "complaint_on_portal.letters: 'the' is 6 times in the letters' words it stands for (complaint), not once"
    with pytest.raises(PolicyError, match=re.escape("remedies.lgpd: ") + r"(Value error, )?" + re.escape(said)):
        load_policy(_policy_files(tmp_path, reworded))
