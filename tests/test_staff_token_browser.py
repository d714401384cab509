"""The console's Tokens page (api/console/tokens.py) in Debian's Chromium: an admin finds it in
the header, creates a token with an expiry, sees it once, reads which tokens expire soon or
never, and revokes one with its row's button, or with the tokens it created with its second one;
agents and compliance are not offered it. The site runs without the workflow engine: the
page needs none."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import expect

from dsrflow.stores.staff_tokens import issue_token
from tests.test_browser import CHROMIUM, served_site, signed_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


@pytest.fixture
async def site(settings, pool) -> AsyncIterator[str]:
    async with served_site(settings, pool, None, f"tokens-{uuid.uuid4().hex[:8]}", worker=False) as url:
        yield url


async def test_an_admin_creates_a_token_with_an_expiry_and_sees_which_expire(browser, site, pool):
    never = f"token from before expiry {uuid.uuid4().hex[:6]}"
    await pool.execute("INSERT INTO staff_tokens (id, token_hash, role, label) VALUES "
                       "(gen_random_uuid(), md5(random()::text), 'agent', $1)", never)
    label = f"Bea, support {uuid.uuid4().hex[:6]}"
    page = await signed_in(browser, site, pool, "admin", "/console/")
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Tokens").click()
    await expect(page).to_have_url(f"{site}/console/tokens")
    await expect(page.get_by_label("Expires in (days)")).to_have_value("90")  # DSRFLOW_TOKEN_DAYS

    await page.get_by_label("Role").select_option("agent")
    await page.get_by_label("Who or what it is for").fill(label)
    await page.get_by_label("Expires in (days)").fill("7")
    await page.get_by_role("button", name="Create the token").click()

    await expect(page.locator("#new-token")).to_contain_text("Token created")
    token = await page.get_by_label("The new token").input_value()
    assert token.startswith("dsr_")
    expires_at = await pool.fetchval("SELECT expires_at FROM staff_tokens WHERE label = $1", label)
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=2)
    async with httpx.AsyncClient(base_url=site) as api:
        assert (await api.get("/v1/requests", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    rows = page.locator("#tokens tbody tr")
    await expect(rows.filter(has_text=label)).to_have_attribute("data-state", "expires soon")
    await expect(rows.filter(has_text=never)).to_contain_text("Never: replace it")
    await expect(rows.first).to_have_attribute("data-state", "expires soon")  # those needing action on top

    await page.locator("#expiring-soon").get_by_role("link").click()
    await expect(page).to_have_url(f"{site}/console/tokens?expiring=14")
    await expect(rows.filter(has_text=label)).to_have_count(1)
    await expect(rows.filter(has_text=never)).to_have_count(0)
    # Shown once: the page fetched again holds no token.
    await page.reload()
    await expect(page.locator("#new-token")).to_have_count(0)
    assert token not in await page.content()


@pytest.mark.parametrize("role", ["agent", "compliance"])
async def test_other_roles_are_not_offered_the_tokens_page(browser, site, pool, role):
    page = await signed_in(browser, site, pool, role, "/console/")
    await expect(page.get_by_role("navigation", name="Console").get_by_role("link", name="Tokens")).to_have_count(0)
    answer = await page.goto(f"{site}/console/tokens")
    assert answer is not None and answer.status == 403


async def test_an_admin_revokes_a_token_with_its_rows_button(browser, site, pool):
    """A lost or stolen token is taken away from the console: the row's Revoke button stops it at
    once (its API calls refused), the page says so, and the row is gone."""
    label = f"lost laptop {uuid.uuid4().hex[:6]}"
    agent, agent_token = await issue_token(pool, "agent", label)
    page = await signed_in(browser, site, pool, "admin", "/console/tokens")
    row = page.locator("#tokens tbody tr").filter(has_text=label)

    await row.get_by_role("button", name=f"Revoke {label}").click()

    await expect(page.locator("#revoked")).to_contain_text(f"Token revoked: {label}")
    await expect(page.locator("#tokens tbody tr").filter(has_text=label)).to_have_count(0)
    async with httpx.AsyncClient(base_url=site) as api:
        refused = await api.get("/v1/requests", headers={"Authorization": f"Bearer {agent_token}"})
    assert refused.status_code == 401
    assert await pool.fetchval("SELECT revoked_at FROM staff_tokens WHERE id = $1", agent["id"]) is not None


async def test_an_admin_revokes_a_token_with_the_tokens_it_created(browser, site, pool):
    """A token that created others has a second button, counting them (through every generation):
    pressed, all of them stop at once and the page names them. A token that created none has no
    such button. Agents and compliance are not offered the page (above), and their forged post
    is refused (tests/test_staff_token_lineage.py)."""
    tag = uuid.uuid4().hex[:6]
    stolen, _ = await issue_token(pool, "admin", f"stolen {tag}")
    child, _ = await issue_token(pool, "admin", f"made by the thief {tag}", lifetime=timedelta(days=5),
                                 created_by=stolen["id"])
    grandchild, grandchild_token = await issue_token(pool, "agent", f"made in turn {tag}", lifetime=timedelta(days=2),
                                                     created_by=child["id"])
    page = await signed_in(browser, site, pool, "admin", "/console/tokens")
    rows = page.locator("#tokens tbody tr")
    await expect(rows.filter(has_text=f"made in turn {tag}").locator(".created-by")).to_contain_text(
        f"made by the thief {tag}")
    await expect(rows.filter(has_text=f"made in turn {tag}").get_by_role("button", name="Revoke it and")).to_have_count(0)

    await rows.filter(has_text=f"stolen {tag}").get_by_role(
        "button", name="Revoke it and the 2 tokens it created").click()

    await expect(page.locator("#revoked")).to_contain_text(f"Token revoked: stolen {tag}")
    await expect(page.locator("#revoked")).to_contain_text(f"and the 2 tokens it created: made by the thief {tag}")
    await expect(rows.filter(has_text=tag)).to_have_count(0)
    async with httpx.AsyncClient(base_url=site) as api:
        refused = await api.get("/v1/requests", headers={"Authorization": f"Bearer {grandchild_token}"})
    assert refused.status_code == 401
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens WHERE revoked_at IS NOT NULL AND id = ANY($1)",
                               [stolen["id"], child["id"], grandchild["id"]]) == 3
