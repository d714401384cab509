"""What else than the letters cites the law: the request types' labels on the portal's and the
console's pages and the access package's summary (the e-mails to processors:
tests/test_regime_citations_processor_mail.py). Each cites the law
of the request's regime, as the letters do (tests/test_letter_as_sent.py): the GDPR under `gdpr`,
the UK GDPR under `uk_gdpr`, no article under the other regimes, and none on the new-request
forms, where the regime is not known yet. Rendered as the pages, the connector and the package
build do, and read as their reader reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import unescape

import pytest
from fastapi import FastAPI
from starlette.requests import Request

import api.public.portal as portal
from activities.citations import answer_period, citation
from activities.letter_labels import type_label
from activities.package_summary import render_summary
from api.pages import render, templates
from api.state import AppState
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations, worded, wording_of
from dsrflow.settings import Settings
from policy.model import DEFAULT_POLICY, load_policy, parse_policy
from schemas.requests import RequestStatus
from schemas.vocabulary import Language, Regime
from tests.test_letter_languages import _UNFILLED

LOADED = load_policy()
LANGUAGES = [lang.value for lang in Language]
REGIMES = [r.value for r in Regime]
OTHER_LAWS = [r for r in REGIMES if r not in ("gdpr", "uk_gdpr")]
REQUEST_ID = "3f2b8c1e-9a4d-4e6f-8b2a-1c5d7e9f0a12"
# The GDPR's name in each language; "UK GDPR" (and the policy's Dutch "Britse AVG") is the UK's own.
_GDPR_NAMES = ("GDPR", "AVG", "RGPD", "DSGVO")
_ARTICLE = re.compile(r"\b[Aa]rt\. ?\d")


def eu_gdpr_named(text: str, regime: str) -> bool:
    """Whether `text` names the EU's GDPR where the request's law is another."""
    if regime == "gdpr":
        return False
    said = text.replace("UK GDPR", "").replace("Britse AVG", "") if regime == "uk_gdpr" else text
    return any(name in said for name in _GDPR_NAMES)


def read(html: str) -> str:
    """An HTML page's text as its reader sees it: no tags, entities decoded, spaces folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --- 1. The request types' labels on the pages ------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The app's shared state, for pages rendered as their routes render them (no database is
    reached: the pages below read none)."""
    app = FastAPI()
    app.state.dsr = AppState(Settings(DSRFLOW_HOME=tmp_path_factory.mktemp("home"), DSRFLOW_POLICY=DEFAULT_POLICY,
                                      DSRFLOW_DATABASE_URL="postgresql://nobody@127.0.0.1:9/unused"))
    return app


def page_request(app: FastAPI, path: str, language: str) -> Request:
    return Request({"type": "http", "app": app, "method": "GET", "path": path,
                    "query_string": f"lang={language}".encode(), "headers": [], "scheme": "http",
                    "server": ("test", 80), "client": ("127.0.0.1", 1), "root_path": ""})


def status_page(app: FastAPI, regime: str, language: str, request_type: str = "access") -> str:
    """The subject's status page of a request (an access request), with the context its route gives it."""
    row = {"id": REQUEST_ID, "request_type": request_type, "regime": regime, "received_at": datetime(2026, 1, 30, tzinfo=UTC),
           "current_due_date": date(2026, 3, 2), "extended": False, "closed_at": None}
    response = render(page_request(app, f"/portal/requests/{REQUEST_ID}", language), "portal/status.html", {
        "row": row, "status_words": "In progress.", "verified": False, "awaiting_verification": False,
        "status": RequestStatus.in_progress, "reference": "3F2B-8C1E", "received_on": date(2026, 1, 30)})
    return bytes(response.body).decode()


def asked_for(page: str, language: str) -> str:
    """What the status page says the subject asked for."""
    asked = re.escape(translations(language).gettext("You asked for"))
    match = re.search(rf"<dt>{asked}</dt><dd>(.*?)</dd>", page)
    assert match, page
    return unescape(match.group(1))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
def test_the_status_page_cites_the_law_of_the_requests_regime(app, regime, language):
    page = status_page(app, regime, language)
    label = asked_for(page, language)
    if regime == "gdpr":
        assert label == {"en": "access to your personal data (Art. 15 GDPR)",
                         "nl": "inzage in uw persoonsgegevens (art. 15 AVG)",
                         "fr": "accès à vos données à caractère personnel (art. 15 du RGPD)",
                         "de": "Auskunft über Ihre personenbezogenen Daten (Art. 15 DSGVO)"}[language]
    elif regime == "uk_gdpr":
        assert citation("uk_gdpr", "15", translations(language)) in label
        assert not eu_gdpr_named(read(page), regime)
    else:
        assert not _ARTICLE.search(label) and not eu_gdpr_named(read(page), regime), label
        if language == "en":  # in the law's words, as its letters say it
            assert label == ("access to your personal information" if regime in ("ccpa", "pipeda")
                             else "access to your personal data")


def form_labels(html: str) -> list[str]:
    return [unescape(label) for label in re.findall(r'<input type="radio" name="type" value="[a-z]+"[^>]*> ([^<]*)</label>',
                                                    html)]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_portals_form_cites_no_law_for_the_request_types(app, language):
    """The form's country decides the regime, so no type's label can know its law yet."""
    page = bytes((await portal.form_page(page_request(app, "/portal", language))).body).decode()
    labels = form_labels(page)
    assert len(labels) == 6
    for label in labels:
        assert not _ARTICLE.search(label) and not eu_gdpr_named(label, "ccpa"), label
        assert label[0].isupper(), label
    if language == "en":
        assert labels[0] == "Access to your personal data"
        assert labels[2] == "Erasure (right to be forgotten)"
    # Nor does the rest of the form: its introduction, the restriction grounds, the time to answer.
    text = read(page)
    assert not _ARTICLE.search(text) and not eu_gdpr_named(text, "ccpa"), text
    assert "one month" not in text and "within the time the law that applies to you" in text or language != "en"


def test_the_consoles_form_and_pages_cite_as_the_portal_does():
    """The console's forms (new request, inbox message) share the portal's macro; the pages'
    `type_label` names the type with the request's regime, as its letters do: an erasure is the
    GDPR's "right to be forgotten" under the GDPR and the UK GDPR only. (The evidence pack names it
    as staff read it: tests/test_evidence.py.) The console speaks English, the staff language."""
    form = templates.env.from_string('{% import "_request_form.html" as rf with context %}{{ rf.type_choice("Type") }}')
    assert form_labels(form.render(language="en", errors={}, values={}))[:2] == [
        "Access to your personal data", "A copy of your data in a portable format"]
    label = templates.env.from_string("{{ type_label(kind, regime) }}")
    said = {regime: label.render(language="en", kind="erasure", regime=regime) for regime in REGIMES}
    assert said["gdpr"] == "erasure (right to be forgotten, Art. 17 GDPR)"
    assert said["uk_gdpr"] == "erasure (right to be forgotten, Art. 17 UK GDPR)"
    assert {regime: said[regime] for regime in OTHER_LAWS} == {
        regime: "deletion of your personal information" if regime in ("ccpa", "pipeda")
        else "deletion of your personal data" for regime in OTHER_LAWS}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", OTHER_LAWS)
def test_the_status_page_names_an_erasure_as_its_letters_do(app, regime, language):
    """The subject reads one name for one request: the portal's status page says what the
    acknowledgement said ("deletion of your personal data" under the VCDPA, never the GDPR's
    "right to be forgotten", which these laws do not know)."""
    label = asked_for(status_page(app, regime, language, request_type="erasure"), language)
    t = worded(language, wording_of(regime))
    assert label == type_label("erasure", regime, t), (regime, language)
    assert label != translations(language).gettext("erasure (right to be forgotten%(citation)s)") % {"citation": ""}


# --- 2. The access package's summary ----------------------------------------------------------

@dataclass
class _Part:
    """Two records of a category found in the CRM's contacts."""

    count: int = 2
    origin_of: dict[str, str] = field(default_factory=lambda: {"email": "provided"})

    def json_records(self) -> list[bytes]:
        return []


def summary(kind: str, regime: str, language: str) -> str:
    """The summary of a package holding every category of the policy, as the package build
    renders it (activities/packages.py), read as its reader reads it."""
    parts = {("crm", "contacts", category): _Part() for category in LOADED.policy.categories}
    return read(render_summary(LOADED.in_language(language), parts, request_id=REQUEST_ID, kind=kind,
                               generated_on="2026-03-01", regime=regime, country="BE", language=language))


@pytest.mark.parametrize(("language", "kept"), [("en", "Kept by law: "), ("nl", "Wettelijk bewaard: "),
                                                ("fr", "Conservé en vertu de la loi : "), ("de", "Gesetzlich aufbewahrt: ")])
def test_the_package_says_how_long_the_law_keeps_a_category(language, kept):
    """Payment records and account data are kept under the accounting statute: the summary's
    retention says so with its periods (Art. 15(1)(d)), where the privacy policy's text says only
    "except information required for accounting" (DPO audit: the erasure letter named the 7 and
    10 years, the package did not). A category no statute keeps says nothing of it."""
    said = summary("access", "gdpr", language)
    statute = LOADED.in_language(language).statutory_holds["be_accounting"]
    assert said.count(" ".join(f"{kept}{statute.label} ({statute.law}).".split())) == 2  # payments, account data
    assert "7" in statute.law and "10" in statute.law


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("kind", ["access", "portability"])
def test_the_package_summary_cites_only_the_regimes_law(kind, regime, language):
    t = translations(language)
    said = summary(kind, regime, language)
    assert not _UNFILLED.search(said), _UNFILLED.search(said)
    assert not eu_gdpr_named(said, regime), said
    policy = LOADED.in_language(language)
    contract = policy.categories["account"].legal_bases[0]  # Art. 6(1)(b): performance of contract
    if regime in OTHER_LAWS:
        # The legal bases in the policy's words, no article of any law before them (the statute
        # that keeps records is the controller's law whatever the subject's: its text stays).
        bases = said.split(t.gettext("Your rights"))[0]
        for statute in policy.statutory_holds.values():
            bases = bases.replace(" ".join(statute.law.split()), "")
        assert not _ARTICLE.search(bases), said
        assert contract.basis in said
    else:
        right = citation(regime, "20" if kind == "portability" else "15", t)
        assert right in said
        cited = t.gettext("%(label)s: %(value)s") % {"label": citation(regime, "6(1)(b)", t), "value": contract.basis}
        assert " ".join(cited.split()) in said
        assert citation(regime, "22", t) in said


def test_the_package_summary_reads_well_under_each_law():
    gdpr = summary("access", "gdpr", "en")
    # The short reference every letter gives the subject to quote, never the internal id (set in
    # bold: its reader's text has a space after it).
    assert f"This copy answers request {short_reference(REQUEST_ID)} , prepared on 1 March 2026 under Art. 15 GDPR." in gdpr
    assert REQUEST_ID not in gdpr
    assert ("Art. 6(1)(c) GDPR: legal obligation (accounting and financial laws); "
            "Art. 6(1)(f) GDPR: legitimate interests (complying with foreign laws)") in gdpr
    assert "Automated decisions and profiling (Art. 22 GDPR) We take no decision" in gdpr
    assert "prepared on 1 March 2026 under Art. 20 UK GDPR." in summary("portability", "uk_gdpr", "en")
    lgpd = summary("portability", "lgpd", "en")
    assert f"This portable copy answers request {short_reference(REQUEST_ID)} , prepared on 1 March 2026. It holds" in lgpd
    assert "legal obligation (accounting and financial laws); legitimate interests (complying with foreign laws)" in lgpd
    assert "Automated decisions and profiling We take no decision" in lgpd


def test_a_policy_stored_before_legal_bases_named_their_article_still_loads():
    """A request keeps the policy version it started under (policy_versions): a version whose
    legal bases are each one string, in the policy and its translations, still loads for it."""
    content = LOADED.content
    strings = {name: [f"GDPR Art. {b['article']} {b['basis']}" for b in category["legal_bases"]]
               for name, category in content["categories"].items()}
    stored = {**content, "categories": {name: {**category, "legal_bases": strings[name]}
                                        for name, category in content["categories"].items()},
              "translations": {language: {**translation, "categories": {
                  name: {**category, "legal_bases": [b["basis"] for b in category["legal_bases"]]}
                  for name, category in translation["categories"].items()}}
                  for language, translation in content["translations"].items()}}
    loaded = parse_policy(stored, "a stored version")
    payments = loaded.policy.categories["payments"].legal_bases[0]
    assert (payments.article, payments.basis) == (None, "GDPR Art. 6(1)(c) legal obligation (accounting and financial laws)")
    assert loaded.in_language("de").categories["payments"].legal_bases[0].basis.startswith("rechtliche Verpflichtung")


@pytest.mark.parametrize(("language", "cited", "named"), [
    ("en", "(PIPEDA, s. 8(3))", "(PIPEDA)"),
    ("fr", "(LPRPDE, par. 8(3))", "(LPRPDE)"),  # the Act's official French version, as the letter names it
    ("nl", "(PIPEDA, s. 8(3))", "(PIPEDA)"),
    ("de", "(PIPEDA, Section 8(3))", "(PIPEDA)"),  # as German letters cite the UK's Act ("Section 165")
])
def test_an_acknowledgement_under_pipeda_cites_the_act_as_it_names_it(language, cited, named):
    """The French letter named the Act by its French title and acronym (LPRPDE), then cited
    "PIPEDA, s. 8(3)": two names for one law in one sentence."""
    period, _ = answer_period("pipeda", False, "1 February 2027", "2 March 2027", translations(language))
    assert cited in period and named in period, period


@pytest.mark.parametrize(("language", "cited", "other_style"), [
    ("nl", ("ss. 8(4), 8(7)", "(s. 11(3))", "(PIPEDA, s. 14)"), r"\bart\. |Section"),
    # German spells "Section" out, as its letters cite the UK's Act ("Section 165") and its refusal
    # rule this one ("Section 8(7) des ... Act"): hS made its catalog's "PIPEDA, s. 8(4)" agree.
    ("de", ("Sections 8(4), 8(7)", "(Section 11(3))", "(PIPEDA, Section 14)"), r"\bss?\. \d"),
])
def test_the_policys_pipeda_remedies_cite_the_act_as_the_letters_do(language, cited, other_style):
    """The Act has no Dutch or German version, so our letters cite it in its English form; the
    policy's complaint and court paragraphs beside them cited "art. 8(4)" (nl) and "Sections 8(4)"
    (de) while the catalog cited "PIPEDA, s. 8(3)": one letter, two styles for one Act (hJ's reading)."""
    remedies = LOADED.in_language(language).remedies_for("pipeda", "CA")
    texts = " ".join([remedies.complaint, remedies.judicial])
    assert all(c in texts for c in cited), texts
    assert not re.search(other_style, texts), texts
