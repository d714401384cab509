"""A correction names its field in the subject's words. The request form asked a French subject to
type the policy's identifiers ("phone: +32 ...", refused as "téléphone"), and its refusal listed
"city, company, first_name, ..." in a French sentence (a new user's tour, 2026-12-05). The policy
now words each correctable field per language (`rectifiable.label`), the form lists them and reads
them back, and an OpenDSR processor's datasets are named in the letter's language too."""

from __future__ import annotations

import re
import uuid
from html import unescape

import pytest

from policy.model import DEFAULT_POLICY, load_policy
from policy.systems import correction_key, correction_words
from tests.letters_as_sent import as_sent, both
from tests.support import api_client

LOADED = load_policy(DEFAULT_POLICY)
FRENCH = ["code postal", "entreprise", "nom", "nom de famille", "prénom", "rue", "téléphone", "ville"]


def _words(language: str) -> dict[str, str]:
    return correction_words(LOADED.in_language(language).systems.values())


def test_each_correctable_field_is_worded_in_each_language():
    assert _words("en")["first_name"] == "first name"
    assert sorted(_words("fr").values()) == FRENCH
    assert _words("nl")["city"] == "plaats" and _words("de")["street"] == "Straße"
    # Both columns a key sets (billing's and the CRM's phone) are worded alike.
    assert {key for key, words in _words("de").items() if words == "Telefon"} == {"phone"}


@pytest.mark.parametrize(("typed", "key"), [
    ("Téléphone", "phone"), ("telephone", "phone"), ("  nom  de   famille ", "last_name"), ("TELEFOON", "phone"),
    ("Strasse", "street"), ("first name", "first_name"), ("first_name", "first_name"), ("phone", "phone"),
    ("âge", "âge"),  # names nothing: kept as typed, for the policy to refuse
])
def test_a_field_is_read_in_any_of_the_policys_languages(typed, key):
    assert correction_key(typed, _words("fr"), _words("en"), _words("nl"), _words("de")) == key


@pytest.fixture
async def portal(settings, dev_server, task_queue):
    full = settings.model_copy(update={"policy_path": DEFAULT_POLICY})
    async with api_client(full, dev_server.client, task_queue) as http:
        yield http


async def _post(portal, language: str, corrections: str):
    form = await portal.get(f"/portal?lang={language}")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    return form, await portal.post(f"/portal/requests?lang={language}", data={
        "submission": submission, "type": "rectification", "email": f"rect.{uuid.uuid4().hex[:8]}@example.com",
        "language": language, "other_corrections": corrections})


async def test_a_french_subject_corrects_in_french_and_is_told_what_can_be_corrected(portal, pool):
    form, page = await _post(portal, "fr", "Téléphone : +32 470 99 99 99\nâge : 42")
    # The form says what it can correct, in French words, before anything is typed.
    assert "Nous pouvons rectifier\u00a0: " + ", ".join(FRENCH) in form.text or \
        "Nous pouvons rectifier : " + ", ".join(FRENCH) in form.text, form.text
    assert "first_name" not in form.text
    assert page.status_code == 422
    # The phone line was understood; the age is refused, naming what can be asked for in French.
    error = unescape(re.search(r'id="corrections-error"><span[^>]*>[^<]*</span> ([^<]*)</p>', page.text).group(1))
    assert error.startswith("âge: ") and error.count("nous ne pouvons pas") == 1, error  # one line refused
    assert error.endswith(", ".join(FRENCH)), error

    _, accepted = await _post(portal, "fr", "téléphone : +32 470 99 99 99\nNom de famille : Lovelace-King")
    assert accepted.status_code == 303, accepted.text
    request_id = accepted.headers["location"].split("/")[3]
    details = await pool.fetchval("SELECT details FROM dsr_requests WHERE id = $1::uuid", request_id)
    assert details["corrections"] == {"phone": "+32 470 99 99 99", "last_name": "Lovelace-King"}


async def test_a_field_named_twice_is_refused_naming_it(portal, pool):
    """"téléphone" and "telefoon" on two lines, or the name box and a "nom:" line, named one field
    twice: the form kept the last value and dropped the other unseen."""
    _, page = await _post(portal, "fr", "téléphone : +32 470 11 11 11\nTelefoon: +32 470 22 22 22")
    assert page.status_code == 422
    error = unescape(re.search(r'id="corrections-error"><span[^>]*>[^<]*</span> ([^<]*)</p>', page.text).group(1))
    assert error == "téléphone est indiqué deux fois : écrivez chaque rectification une seule fois.", error
    # What was typed stays in the form, to be mended.
    assert "Telefoon: +32 470 22 22 22" in unescape(page.text)
    form = await portal.get("/portal?lang=en")
    submission = re.search(r'name="submission" value="([^"]+)"', form.text).group(1)
    email = f"rect.{uuid.uuid4().hex[:8]}@example.com"
    page = await portal.post("/portal/requests?lang=en", data={
        "submission": submission, "type": "rectification", "email": email, "language": "en",
        "correct_name": "Ada King", "other_corrections": "Name: Ada Lovelace"})
    assert page.status_code == 422 and "name is named twice" in unescape(page.text)
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests WHERE subject_email = $1", email) == 0


async def test_an_opendsr_processors_datasets_are_named_in_the_letters_language():
    """A German objection response named the e-mail marketing processor's dataset "subscribers"."""
    params = {"report": {"results": [{
        "system": "email_marketing", "action": "object", "status": "done", "found": 1, "changed": 1,
        "datasets": {"subscribers": {"found": 1, "changed": 1}}}]}}
    letter = await as_sent("response", "objection", params, language="de")
    for text in both(letter):
        assert "Newsletter-Abonnement" in text and "subscribers" not in text, text
