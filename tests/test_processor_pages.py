"""The pages a processor's link opens (api/callbacks/processor_pages.py) speak as the e-mail that
carried the link: the controller's staff language, in the words the request's law names the parties
with (a "consommateur", the "entreprise" and its "prestataire de services ou contractant",
"renseignements personnels", for a French controller's processor under the CCPA). A page that
knows no request (a link not recognised, a client over its limit) speaks the staff language in the
GDPR's words. Before, every page was English and said "data subject" and "personal data".

Each page is rendered as its route renders it, in process and without a database; one link is
opened through the app, for the staff language and the law its request's row gives.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from api.callbacks import processor_pages as pages
from api.callbacks.export_files import ContentCheck, RefusedFile
from api.callbacks.link_answers import refuse_if_closed
from api.callbacks.link_refusals import UploadRefused, answered_already
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.requests_store import create_request
from policy.exports import ProcessorExports
from policy.model import DEFAULT_POLICY, load_policy
from schemas.requests import NewRequest
from tests.support import api_client, unique_email
from tests.test_processor_wording import DATA_SUBJECT, LANGUAGES, SAID, WORDINGS
from tests.yaml_files import dump_yaml, read_yaml

CONFIRMED = datetime(2026, 12, 6, 8, 30, tzinfo=UTC)


def read(html: str) -> str:
    """A page's text as its reader sees it: its `<main>` without tags, entities decoded, runs of
    spaces and line breaks folded (a French no-break space kept)."""
    main = html.split("<main>", 1)[1].split("</main>", 1)[0]
    return re.sub(r"[ \t\n]+", " ", unescape(re.sub(r"<[^>]+>", " ", main))).strip()


def _task(action: str = "erase", language: str | None = "fr", regime: str = "ccpa", **row: object) -> dict:
    """A task's row as the link's route reads it (api/callbacks/manual_confirm.py `_task`)."""
    return {"request_id": "0193a7c2-5e1f-7c3a-9b2d-4f6e8a1c3b5d", "system": "surveys", "action": action,
            "label": "Enquêtes en ligne", "controller": "Connexeon", "confirmed_at": None,
            "request_status": "in_progress", "task_status": "pending", "last_mailed_at": datetime.now(UTC),
            "exports_policy": None, "deferred": False, "staff_language": language, "regime": regime,
            "timezone": "Europe/Brussels", **row}


def _refusal(task: dict) -> UploadRefused:
    try:
        refuse_if_closed(task, ProcessorExports())
    except UploadRefused as refused:
        return refused
    raise AssertionError("the link was not refused")


def _every_page(language: str | None, regime: str) -> dict[str, object]:
    """Every page the link's routes answer with, for a request under `regime` whose policy's staff
    language is `language` (None: the policy names none)."""
    erase, access = _task("erase", language, regime), _task("access", language, regime)
    answered = {**access, "confirmed_at": CONFIRMED}
    r, exports = pages.reader_of(erase), pages.reader_of(access)
    with pytest.raises(RefusedFile) as wrong_kind:
        ContentCheck("page.txt", "text", 1024, ("text",)).feed(b"<!DOCTYPE html><p>hi</p>")
    return {
        "confirm form": pages.confirm_form(erase, r),
        "thank you": pages.confirmed(erase, r),
        "already answered": pages.already({**erase, "confirmed_at": CONFIRMED}, r),
        "export answered": pages.already(answered, exports, pages.received(answered, exports, ["a.csv", "b.json"])),
        "nothing held, answered": pages.already(answered, exports, pages.received(answered, exports, [])),
        "more files": pages.refused(answered, exports, answered_already(pages.received(answered, exports, ["a.csv"]))),
        "closed": pages.refused(erase, r, _refusal({**erase, "request_status": "completed"})),
        "settled": pages.refused(erase, r, _refusal({**erase, "task_status": "done"})),
        "expired": pages.refused(erase, r, _refusal({**erase, "last_mailed_at": CONFIRMED - timedelta(days=40)})),
        "upload form": pages.upload_form(access, exports),
        "upload refused": pages.upload_form(access, exports, UploadRefused(422, wrong_kind.value.said)),
        "export received": pages.export_received(access, exports, ["a.csv"]),
        "nothing held": pages.export_received(access, exports, []),
    }


def test_every_page_speaks_french_in_the_ccpas_words():
    said = {name: read(page.body.decode()) for name, page in _every_page("fr", "ccpa").items()}
    for name, text in said.items():
        assert "GDPR" not in text and "Thank you" not in text and "request" not in text, (name, text)
        # The GDPR's person, parties and data: none of them is the CCPA's.
        for words in ("personne concernée", "à caractère personnel", "Responsable du traitement", "Sous-traitant"):
            assert words.lower() not in text.lower(), (name, words, text)
    parties = "Entreprise Connexeon Prestataire de services ou contractant Enquêtes en ligne Ce que nous avons demandé"
    assert all(parties in text for text in said.values()), said
    assert "supprimer les renseignements personnels du consommateur" in said["confirm form"]
    assert "nous envoyer votre export des renseignements personnels du consommateur" in said["upload form"]
    assert said["confirm form"].startswith("Confirmer une demande d'exercice de droits")
    assert "de droits d'un consommateur. Une fois que c'est fait" in said["confirm form"]
    assert "Confirmer que la demande a été exécutée" in said["confirm form"]
    assert said["thank you"].startswith("Merci\u00a0: confirmation enregistrée")
    assert "Cette demande a été confirmée le 6 décembre 2026, 09:30 CET (UTC+1)." in said["already answered"]
    assert "Nous avons reçu votre export le 6 décembre 2026, 09:30 CET (UTC+1)\u00a0: 2 fichiers (a.csv, b.json)." in (
        said["export answered"])
    assert "vous ne détenez aucun renseignement personnel concernant cette personne" in said["nothing held, answered"]
    assert said["more files"].startswith("Déjà répondu") and "aucun fichier ne peut plus être ajouté" in said[
        "more files"] and "1 fichier (a.csv)" in said["more files"]
    assert said["closed"].startswith("Lien expiré") and "la demande à laquelle il se rapporte est clôturée" in said[
        "closed"]
    assert said["settled"].startswith("Déjà réglé") and "ce lien n'enregistre donc plus rien" in said["settled"]
    assert "il était valable 30 jours après notre dernier e-mail" in said["expired"]
    assert "une copie des renseignements personnels que vous détenez pour notre compte sur un consommateur" in (
        said["upload form"])
    assert "Nous ne détenons aucun renseignement personnel concernant cette personne" in said["upload form"]
    assert "page.txt\u00a0: ressemble à du HTML ou un autre balisage, que nous n'acceptons pas" in said["upload refused"]
    assert "Nous avons reçu 1 fichier\u00a0: a.csv." in said["export received"]
    assert "Nous avons enregistré que vous ne détenez aucun renseignement personnel" in said["nothing held"]


def test_pages_without_a_request_speak_the_staff_language_in_the_gdprs_words():
    french = pages.reader("fr")
    lost, waiting = pages.not_found(french), pages.over_limit(french, 90)
    assert (lost.status_code, waiting.status_code, waiting.headers["Retry-After"]) == (404, 429, "90")
    assert read(lost.body.decode()).startswith("Lien non reconnu Ce lien de confirmation n'est pas")
    assert "Trop de requêtes depuis votre réseau\u00a0: veuillez réessayer dans 90\u00a0secondes." in read(
        waiting.body.decode())
    assert '<html lang="fr">' in lost.body.decode() and '<html lang="fr">' in waiting.body.decode()
    assert "réessayer dans 24\u00a0heures" in read(pages.over_limit(french, 86400).body.decode())


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", list(WORDINGS))
def test_each_law_names_the_person_on_the_pages_in_each_language(regime, language):
    """The pages that name the person (the forms, and what was asked) name them as the e-mail did."""
    person, _ = SAID[WORDINGS[regime]][language]
    for name, page in _every_page(language, regime).items():
        text = read(page.body.decode())
        assert f'<html lang="{language}">' in page.body.decode(), name
        assert [w for w in DATA_SUBJECT[language] if w.lower() in text.lower()] == [], (name, text)
        if name in ("confirm form", "upload form"):
            assert person.lower() in text.lower(), (name, text)


def test_an_english_controller_keeps_the_pages_words_and_their_safety():
    """The policy's default staff language (a policy naming none) and the GDPR: the pages as they
    were, under the same headers: a form posting to itself, no caching, framing or referrer."""
    every = _every_page(None, "gdpr")
    said = {name: read(page.body.decode()) for name, page in every.items()}
    assert said["confirm form"].startswith("Confirm a data-subject request")
    assert "erase the data subject's personal data" in said["confirm form"]
    assert "Please send it here: the files go to the data subject" in said["upload form"]
    assert "Thank you: confirmation recorded" in said["thank you"]
    assert "We received your export on 6 December 2026, 09:30 CET (UTC+1): 2 files (a.csv, b.json)." in said[
        "export answered"]
    assert said["settled"].startswith("Already settled")
    assert "it was valid for 30 days after our last e-mail" in said["expired"]
    for name, page in every.items():
        assert '<html lang="en">' in page.body.decode(), name
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none';"), name
        assert (page.headers["Cache-Control"], page.headers["Referrer-Policy"], page.headers["X-Frame-Options"]) == (
            "no-store", "no-referrer", "DENY"), name


async def test_a_link_opens_in_the_staff_language_of_its_requests_policy_and_its_law(
        settings, pool, dev_server, task_queue, tmp_path):
    """Through the app: the staff language comes from the policy version the request runs under,
    the words from the request's law."""
    content = read_yaml(DEFAULT_POLICY)
    content["languages"]["staff"] = "fr"
    french = tmp_path / "french-staff.yaml"
    french.write_text(dump_yaml(content, sort_keys=False))
    new = NewRequest(type="erasure", subject={"email": unique_email("pages")}, regime="ccpa", identity_attested=True)
    row, _ = await create_request(pool, new, loaded_policy=load_policy(french), secret=load_secret_key(settings),
                                  actor="tests", idempotency_key=None)
    token = secrets.token_hex(32)
    await pool.execute(
        """INSERT INTO manual_tasks (request_id, system, action, external_id, contact_email, message_id)
           VALUES ($1, 'surveys', 'erase', $2, 'privacy@surveys.example', $3)""",
        row["id"], hashlib.sha256(token.encode()).hexdigest(), f"<{token[:12]}@dsrflow>")
    async with api_client(settings, dev_server.client, task_queue) as http:
        page = await http.get(f"/v1/callbacks/manual/{token}")
        lost = await http.get(f"/v1/callbacks/manual/{'0' * 64}")
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    assert "supprimer les renseignements personnels du consommateur" in read(page.text)
    # No request behind the link: the policy in force (English staff) and the GDPR's words.
    assert lost.status_code == 404 and "Link not recognised" in lost.text and '<html lang="en">' in lost.text


# Markup and quotes where a page shows a value it did not write: a controller's name or a
# processor's label (the policy's), a file's name (the processor's own, in a refusal or a receipt).
HOSTILE = '<script>alert("x")</script>\'&'
HOSTILE_FILE = '<img src=x onerror="alert(1)">.csv'


def test_names_with_markup_are_shown_as_text_on_every_page():
    """Every page that shows the controller, the processor or a file's name shows it as written,
    as text: nothing the policy or a processor typed becomes markup on a page opened by a link that
    is a credential (escaped by hand before the pages were templates; kept true since)."""
    erase = _task("erase", "en", "gdpr", controller=HOSTILE, label=HOSTILE)
    access = {**erase, "action": "access"}
    answered = {**access, "confirmed_at": CONFIRMED}
    r = pages.reader_of(erase)
    with pytest.raises(RefusedFile) as markup:
        ContentCheck(HOSTILE_FILE, "csv", 1024, ("csv",)).feed(b"<script>alert(1)</script>")
    shown = {
        "confirm form": (pages.confirm_form(erase, r), []),
        "thank you": (pages.confirmed(erase, r), []),
        "already answered": (pages.already({**erase, "confirmed_at": CONFIRMED}, r), []),
        "export answered": (pages.already(answered, r, pages.received(answered, r, [HOSTILE_FILE])), [HOSTILE_FILE]),
        "more files": (pages.refused(answered, r, answered_already(pages.received(answered, r, [HOSTILE_FILE]))),
                       [HOSTILE_FILE]),
        "closed": (pages.refused(erase, r, _refusal({**erase, "request_status": "completed"})), []),
        "upload form": (pages.upload_form(access, r), []),
        "upload refused": (pages.upload_form(access, r, UploadRefused(422, markup.value.said)), [HOSTILE_FILE]),
        "export received": (pages.export_received(access, r, [HOSTILE_FILE, "b.json"]), [HOSTILE_FILE]),
    }
    for name, (page, files) in shown.items():
        html = page.body.decode()
        assert "<script" not in html and "<img" not in html, (name, html)
        text = read(html)
        assert text.count(HOSTILE) == 2, (name, text)  # the controller and the processor
        assert all(file in text for file in files), (name, text)
