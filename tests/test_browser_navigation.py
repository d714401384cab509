"""The console's and the portal's navigation, pressed in a real browser (Debian's Chromium) by each
role that sees it, with what the user then sees: the queue's row links and "Next page", the
request page's links to the subject's other requests (and to all of them in the queue, by each
identity), the Inbox's "Next page" and "First page", the back links ("Back to the queue", "Back to
the console", "Back to the request", the portal's "Back to the start" and "status of your
request"), the portal's language links on each kind of portal page (also on the page the
e-mail's link opens, which must keep its button), and the sign-in page's links out.

One site for the whole module, without a worker: the requests here are stored directly by the
intake store, with no workflow (their pages answer from the stored row), so that a page of
"Next page" costs a few inserts, not workflows. The page sizes are made small instead of seeding
hundreds of rows."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from playwright.async_api import Locator, Page, expect

import api.console.request_page as request_page
from api.console import inbox, queue
from dsrflow.domain.references import short_reference
from dsrflow.stores.mailbox_store import decide
from schemas.staff_tokens import ROLES
from tests.support import unique_email
from tests.test_browser import CHROMIUM, served_site, signed_in
from tests.test_mailbox_console import filed, raw_mail
from tests.test_subject_search import intake

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")
QUEUE_ROWS = "tr[data-request-id]"
# What a portal page reads in each language (the catalogs under dsrflow/i18n/locales), written
# out here: a page left in English, or a message the catalog lost, fails.
PORTAL = {
    "fr": {"form": "Introduire une demande relative à vos données à caractère personnel",
           "reference": "Référence (de votre demande, de votre recours ou de votre réclamation)", "look up": "Consulter l'état de la demande",
           "status": "Votre demande", "language": "Langue", "verify": "Confirmez qu'il s'agit bien de vous",
           "confirm": "Oui, je suis à l'origine de cette demande", "not found": "Demande introuvable",
           "waiting": "Nous attendons que vous confirmiez être à l'origine de cette demande."},
    "de": {"status": "Ihr Antrag", "language": "Sprache", "enter code": "Code aus unserer E-Mail eingeben",
           "waiting": "Wir warten auf Ihre Bestätigung, dass der Antrag von Ihnen stammt.",
           "verify": "Bestätigen Sie Ihre Identität", "status link": "Status Ihres Antrags",
           "confirm": "Ja, ich habe diesen Antrag gestellt"},
    "nl": {"not found": "Verzoek niet gevonden", "language": "Taal", "back": "Terug naar de startpagina",
           "form": "Een verzoek over uw persoonsgegevens indienen", "send": "Mijn verzoek indienen"},
}


@pytest.fixture(scope="module")
async def nav_site(settings, pool, dev_server) -> AsyncIterator[str]:
    """The whole app on a loopback port for the module; no worker: nothing here starts a workflow
    (a request's page asks its workflow, finds none and shows the stored row)."""
    async with served_site(settings, pool, dev_server.client, f"nav-{uuid.uuid4().hex[:8]}", worker=False) as url:
        yield url


async def stored(pool, settings, email: str, kind: str, *, due_in: int, customer_id: str | None = None) -> str:
    """A request stored by the intake store (no workflow), due in `due_in` days: the queue's order."""
    rid = await intake(pool, settings, email, customer_id=customer_id, type=kind)
    await pool.execute("UPDATE dsr_requests SET due_date = current_date + $2::int, current_due_date = "
                       "current_date + $2::int WHERE id = $1", uuid.UUID(rid), due_in)
    return rid


async def shows(rows: Locator, ids: list[str]) -> None:
    """The table's rows are the requests `ids`, in this order."""
    await expect(rows).to_have_count(len(ids))
    assert [await row.get_attribute("data-request-id") for row in await rows.all()] == ids


async def search_queue(page: Page, subject: str) -> None:
    await page.get_by_label("Subject's e-mail or customer number").fill(subject)
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(re.compile(r"/console/\?.*subject="))


async def test_each_role_pages_the_queue_opens_a_row_and_follows_the_subjects_other_requests(
        browser, nav_site, pool, settings, monkeypatch):
    """A page of the queue holds two; the request page lists three others at most, then leads to
    the queue's search by each identity the list matched on."""
    monkeypatch.setattr(queue, "PAGE_SIZE", 2)
    monkeypatch.setattr(request_page, "OTHER_REQUESTS_LIMIT", 3)
    site, email, number = nav_site, unique_email("nav"), f"N-{uuid.uuid4().hex[:8]}"
    access = await stored(pool, settings, email, "access", due_in=5, customer_id=number)
    erasure = await stored(pool, settings, email.upper(), "erasure", due_in=10)  # the same address
    portability = await stored(pool, settings, email, "portability", due_in=20)
    by_number = await stored(pool, settings, unique_email("nav.other"), "access", due_in=15,
                             customer_id=number.lower())  # another address, the same customer

    for role in ROLES:
        page = await signed_in(browser, site, pool, role, "/console/")
        rows = page.locator(f"#queue {QUEUE_ROWS}")
        await search_queue(page, email)
        await shows(rows, [access, erasure])  # soonest due first
        await page.get_by_role("link", name="Next page").click()
        await expect(page).to_have_url(re.compile(r"[?&]cursor="))
        await expect(page.get_by_label("Subject's e-mail or customer number")).to_have_value(email)
        await shows(rows, [portability])
        await expect(page.get_by_role("link", name="Next page")).to_have_count(0)

        # The row's link (its reference) opens the request's page.
        await rows.get_by_role("link", name=short_reference(portability)).click()
        await expect(page).to_have_url(f"{site}/console/requests/{portability}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Portability request")
        await expect(page.locator("#reference")).to_have_text(short_reference(portability))
        others = page.locator(f"#other-requests {QUEUE_ROWS}")
        await shows(others, [erasure, access])  # newest first; no customer number here: not by_number
        await expect(page.get_by_role("link", name=re.compile("^all with this"))).to_have_count(0)

        # One of the subject's other requests, then all of them in the queue by each identity.
        await others.get_by_role("link", name=access[:8]).click()
        await expect(page).to_have_url(f"{site}/console/requests/{access}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Access request")
        await shows(others, [by_number, portability, erasure])
        await expect(others.first).to_contain_text("customer number")
        await page.get_by_role("link", name="all with this customer number").click()
        await expect(page).to_have_url(f"{site}/console/?subject={number}")
        await expect(page.get_by_label("Subject's e-mail or customer number")).to_have_value(number)
        await shows(rows, [access, by_number])
        await page.go_back()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Access request")
        await page.get_by_role("link", name="all with this e-mail address").click()
        await expect(page).to_have_url(f"{site}/console/?subject={quote(email, safe='')}")
        await shows(rows, [access, erasure])
        await expect(page.get_by_role("link", name="Next page")).to_have_count(1)
        await page.context.close()


async def test_each_role_follows_the_consoles_back_links(browser, nav_site, pool, settings):
    """"Back to the queue" on a request that is not there (a stale link), "Back to the request"
    from its evidence pack (compliance and up), "Back to the console" from a page the agent's
    role does not open (a link passed on by an officer), and the request page's Dashboard link."""
    site = nav_site
    rid = await stored(pool, settings, unique_email("nav.back"), "erasure", due_in=7)
    for role in ROLES:
        page = await signed_in(browser, site, pool, role, f"/console/requests/{rid}")
        heading = page.get_by_role("heading", level=1)
        await expect(heading).to_have_text("Erasure request")
        await page.get_by_role("link", name="dsrflow console").click()  # the header's name: the queue
        await expect(page).to_have_url(f"{site}/console/")
        await expect(heading).to_have_text("Queue")
        await page.go_back()
        await expect(heading).to_have_text("Erasure request")
        if role == "agent":
            await expect(page.get_by_role("link", name="Evidence pack")).to_have_count(0)
            await expect(page.locator("main").get_by_role("link", name="Dashboard")).to_have_count(0)
            for refused in (f"/v1/requests/{rid}/evidence.html", "/console/dashboard"):
                await page.goto(f"{site}{refused}")
                await expect(heading).to_have_text("Forbidden")
                await expect(page.get_by_role("main")).to_contain_text("needs the compliance role; you are agent")
                await page.get_by_role("link", name="Back to the console").click()
                await expect(page).to_have_url(f"{site}/console/")
                await expect(heading).to_have_text("Queue")
        else:
            await page.get_by_role("link", name="Evidence pack").click()
            await expect(page).to_have_url(f"{site}/v1/requests/{rid}/evidence.html")
            await expect(heading).to_contain_text(short_reference(rid))
            await page.get_by_role("link", name="This pack as JSON").click()
            await expect(page).to_have_url(f"{site}/v1/requests/{rid}/evidence")
            assert json.loads(await page.locator("pre").first.inner_text())["request"]["id"] == rid
            await page.go_back()
            await page.get_by_role("link", name="Back to the request").click()
            await expect(page).to_have_url(f"{site}/console/requests/{rid}")
            await expect(heading).to_have_text("Erasure request")
            await page.locator("main").get_by_role("link", name="Dashboard").click()
            await expect(page).to_have_url(f"{site}/console/dashboard")
            await expect(page.locator("figure.chart svg")).to_have_count(4)

        missing = str(uuid.uuid4())
        await page.goto(f"{site}/console/requests/{missing}")
        await expect(heading).to_have_text("Request not found")
        await expect(page.get_by_role("alert")).to_have_text(f"There is no request {missing}.")
        await page.get_by_role("link", name="Back to the queue").click()
        await expect(page).to_have_url(f"{site}/console/")
        await expect(heading).to_have_text("Queue")
        await page.context.close()


async def test_each_role_pages_the_inbox_on_and_back_to_the_first_page(
        browser, nav_site, pool, settings, monkeypatch):
    """Two messages a page: the three filed here are the oldest in the inbox (oldest first), so
    the first page is two of them and the next page starts with the third."""
    monkeypatch.setattr(inbox, "PAGE_SIZE", 2)
    oldest = await pool.fetchval("SELECT min(arrived_at) FROM mailbox_messages") or datetime.now(UTC)
    start = min(oldest, datetime.now(UTC)) - timedelta(days=1)
    tag = uuid.uuid4().hex[:6]
    mail = [await filed(settings, pool, raw_mail(unique_email("paged"), "Please erase my data.", subject=f"Mail {n} {tag}"),
                        arrived=start + timedelta(minutes=n)) for n in (1, 2, 3)]
    try:
        for role in ROLES:
            page = await signed_in(browser, nav_site, pool, role, "/console/inbox")
            listed = page.locator("tr[data-message-id]")
            first_page = page.get_by_role("link", name="First page")
            await expect(page.locator("#waiting")).to_contain_text("2 on this page")
            await expect(listed).to_have_count(2)
            assert [await row.get_attribute("data-message-id") for row in await listed.all()] == mail[:2]
            await expect(first_page).to_have_count(0)  # on the first page already

            await page.get_by_role("link", name="Next page").click()
            await expect(page).to_have_url(re.compile(r"/console/inbox\?cursor="))
            await expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
            await expect(listed.first).to_have_attribute("data-message-id", mail[2])
            await expect(listed.first).to_contain_text(f"Mail 3 {tag}")
            for earlier in mail[:2]:
                await expect(page.locator(f'tr[data-message-id="{earlier}"]')).to_have_count(0)

            await first_page.click()
            await expect(page).to_have_url(f"{nav_site}/console/inbox")
            await expect(listed).to_have_count(2)
            assert [await row.get_attribute("data-message-id") for row in await listed.all()] == mail[:2]
            await expect(page.locator(f'tr[data-message-id="{mail[2]}"]')).to_have_count(0)
            await expect(first_page).to_have_count(0)
            await page.context.close()
    finally:  # the oldest messages of the inbox would head every later test's first page
        async with pool.acquire() as conn:
            for message in mail:
                await decide(conn, message, "dismissed", actor="tests", reason="navigation test")


async def test_the_subject_switches_language_on_each_portal_page_and_follows_the_back_links(
        browser, nav_site, pool, settings):
    """French on the front page, kept by the status lookup; German on the status page, kept by the
    verify page and its link back to the status; French on the page the e-mail's link opens, its
    button kept; Dutch on a not-found page, kept by "Back to the start"; English again on the
    front page."""
    site = nav_site
    rid = await stored(pool, settings, unique_email("nav.portal"), "access", due_in=30)
    subject = await (await browser.new_context()).new_page()
    heading, html = subject.get_by_role("heading", level=1), subject.locator("html")

    def language(name: str) -> Locator:  # the header's links, named in the page's language
        return subject.get_by_role("navigation", name=name)

    await subject.goto(f"{site}/console/sign-in")  # a visitor lost on the console's sign-in page
    await subject.get_by_role("link", name="privacy portal").click()
    await expect(subject).to_have_url(f"{site}/portal")
    await expect(heading).to_have_text("Ask about your personal data")
    await language("Language").get_by_role("link", name="Français").click()
    fr = PORTAL["fr"]
    await expect(subject).to_have_url(f"{site}/portal?lang=fr")
    await expect(heading).to_have_text(fr["form"])
    await expect(html).to_have_attribute("lang", "fr")
    await expect(language(fr["language"]).locator("[aria-current]")).to_have_text("Français")
    await subject.get_by_label(fr["reference"]).fill(short_reference(rid).lower())
    await subject.get_by_role("button", name=fr["look up"]).click()
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}")
    await expect(heading).to_have_text(fr["status"])
    await expect(subject.locator("#status-words")).to_have_text(fr["waiting"])

    await language(fr["language"]).get_by_role("link", name="Deutsch").click()
    de = PORTAL["de"]
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}?lang=de")
    await expect(heading).to_have_text(de["status"])
    await expect(subject.locator("#status-words")).to_have_text(de["waiting"])
    await expect(html).to_have_attribute("lang", "de")
    await subject.get_by_role("link", name=de["enter code"]).click()
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}/verify")
    await expect(heading).to_have_text(de["verify"])
    await subject.get_by_role("link", name=de["status link"]).click()  # the way back to the status
    await expect(subject).to_have_url(f"{site}/portal/requests/{rid}")
    await expect(heading).to_have_text(de["status"])
    await expect(subject.locator("#reference")).to_have_text(short_reference(rid))

    # The e-mail's link: another language is the same page, its button (and the link's token) kept.
    link = f"/portal/requests/{rid}/verify?token={'ab' * 32}"  # not checked until the button is pressed
    await subject.goto(f"{site}{link}")
    await expect(subject.get_by_role("button", name=de["confirm"])).to_be_visible()
    await language(de["language"]).get_by_role("link", name="Français").click()
    await expect(subject).to_have_url(f"{site}{link}&lang=fr")
    await expect(heading).to_have_text(fr["verify"])
    await expect(subject.get_by_role("button", name=fr["confirm"])).to_be_visible()

    missing = str(uuid.uuid4())
    await subject.goto(f"{site}/portal/requests/{missing}")  # a mistyped link
    await expect(heading).to_have_text(fr["not found"])
    await language(fr["language"]).get_by_role("link", name="Nederlands").click()
    nl = PORTAL["nl"]
    await expect(subject).to_have_url(f"{site}/portal/requests/{missing}?lang=nl")
    await expect(heading).to_have_text(nl["not found"])
    await expect(html).to_have_attribute("lang", "nl")
    await subject.get_by_role("link", name=nl["back"]).click()
    await expect(subject).to_have_url(f"{site}/portal")
    await expect(heading).to_have_text(nl["form"])
    await expect(subject.get_by_role("button", name=nl["send"])).to_be_visible()

    await language(nl["language"]).get_by_role("link", name="English").click()
    await expect(heading).to_have_text("Ask about your personal data")
    await expect(html).to_have_attribute("lang", "en")
    await subject.goto(f"{site}/portal/requests/{rid}")
    await expect(heading).to_have_text("Your request")  # English remembered too
    await subject.get_by_role("link", name=re.compile("your data protection rights")).click()  # the header's name
    await expect(subject).to_have_url(f"{site}/portal")
    await expect(heading).to_have_text("Ask about your personal data")


async def test_the_sign_in_pages_api_documentation_link_shows_the_api(browser, nav_site):
    """The sign-in page's "API documentation" leads to Swagger UI, which must show the API (its
    title and operations), not "Unable to render this definition": Swagger UI 4 (the
    swagger-ui-bundle package's) could not read the OpenAPI 3.1 document FastAPI writes."""
    visitor = await (await browser.new_context()).new_page()
    await visitor.goto(f"{nav_site}/console/sign-in")
    await visitor.get_by_role("link", name="API documentation").click()
    await expect(visitor).to_have_url(f"{nav_site}/docs")
    await expect(visitor.locator(".swagger-ui .info, .swagger-ui .version-pragma").first).to_be_visible()
    refusal = visitor.locator(".swagger-ui .version-pragma")  # "Unable to render this definition"
    assert not await refusal.count(), await refusal.inner_text()
    await expect(visitor.locator(".swagger-ui .info .title")).to_contain_text("dsrflow")
    await expect(visitor.locator(".swagger-ui .opblock").first).to_be_visible()  # the operations
