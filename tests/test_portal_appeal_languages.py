"""An appeal the portal cannot open is refused in the page's language: the same words for the
request's owner and for a stranger (tests/test_attack_intake.py), in English, Dutch, French and
German, and a reference that is no reference told so in each. The public JSON API answers in
English whatever the request's `language`, as it does every other refusal. The real app, worker,
PostgreSQL and Temporal dev server."""

from __future__ import annotations

import html
import re

from dsrflow.domain.references import short_reference
from tests.support import stored_request, unique_email
from tests.test_portal_languages import LANGUAGES, assert_filled, page_language

# The words a subject reads, as the translators wrote them (title; the refusal's start, with the
# reference; a reference that is none).
WORDS = {
    "en": ("We cannot open this appeal", "no request {ref} of this data subject that can be appealed",
           "must be the id of the request appealed (a UUID) or the short reference its letters give"),
    "nl": ("Wij kunnen dit beroep niet in behandeling nemen",
           "geen verzoek {ref} van deze betrokkene waartegen beroep mogelijk is",
           "moet het id zijn van het verzoek waartegen u beroep instelt (een UUID)"),
    "fr": ("Nous ne pouvons pas enregistrer ce recours",
           "aucune demande {ref} de cette personne concernée ne peut faire l'objet d'un recours",
           "doit être l'identifiant de la demande qui fait l'objet du recours (un UUID)"),
    "de": ("Wir können diesen Einspruch nicht annehmen",
           "kein Antrag {ref} dieser betroffenen Person, gegen den Einspruch möglich ist",
           "muss die ID des Antrags sein, gegen den Sie Einspruch einlegen (eine UUID)"),
}


def sentence(fragment: str) -> str:
    return fragment[0].upper() + fragment[1:]


async def _portal_appeal(http, language: str, email: str, appeal_of: str) -> tuple[int, str, str]:
    """The portal's form, sent from a browser reading `language`, appealing `appeal_of`."""
    r = await http.post("/portal/requests", headers={"Accept-Language": language}, data={
        "type": "access", "email": email, "language": language, "appeal_of": appeal_of})
    assert_filled(r.text, f"{language} appeal of {appeal_of}")
    return r.status_code, page_language(r.text), html.unescape(re.sub(r"\s+", " ", r.text))


async def test_a_refused_appeal_reads_in_the_pages_language(http, pool, settings):
    owner = unique_email("appeal.lang")
    reference = short_reference(await stored_request(pool, settings, "appeal-lang", email=owner))
    before = await pool.fetchval("SELECT count(*) FROM dsr_requests")
    assert set(WORDS) == set(LANGUAGES)
    for language, (title, refusal, not_a_reference) in WORDS.items():
        theirs = await _portal_appeal(http, language, owner, reference)
        strangers = await _portal_appeal(http, language, unique_email("appeal.stranger"), reference)
        for status, lang, page in (theirs, strangers):
            assert (status, lang) == (422, language), page[:300]
            # The API's wording, written on the page as a sentence: a capital, and a full stop.
            assert f"<h1>{title}</h1>" in page and sentence(refusal.format(ref=reference)) in page, page[-1500:]
        assert theirs[2].split("<main", 1)[1] == strangers[2].split("<main", 1)[1]
        status, lang, page = await _portal_appeal(http, language, owner, "not a reference")
        assert (status, lang) == (422, language) and sentence(not_a_reference) in page, page[-1500:]
        assert re.search(r"9WPSS9NUBP\)\.</p>", page), page[-1500:]
        if language != "en":
            assert "of this data subject" not in page

        api = await http.post("/v1/public/requests", json={"type": "access", "email": owner, "appeal_of": reference,
                                                           "language": language})
        assert api.status_code == 422
        # The laws with a follow-up to us: the US states' appeals and the UK's complaint (s. 164A).
        assert api.json()["errors"] == [{"field": "appeal_of", "message": WORDS["en"][1].format(ref=reference)
                                         + ": an appeal (or, under UK data protection law, a complaint to us) "
                                         "names a request of yours that we refused, in whole or in part, under a "
                                         "law that grants one (VCDPA, CTDPA, CPA; UK GDPR, Data Protection Act "
                                         "2018 s. 164A), and asks for the same as that request"}]
    assert await pool.fetchval("SELECT count(*) FROM dsr_requests") == before
