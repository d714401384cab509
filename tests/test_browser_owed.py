"""A decision taken while the mail relay is down, pressed in a real browser: the officer is
answered within ANSWER_WITHIN (workflows/owed_steps.py) with the letter shown as under way, and
the page shows it sent once the relay answers. Before, the button's call waited for the policy's
`attention_after_minutes` (15), longer than a browser or a proxy waits. Same setup as
tests/test_browser_actions.py.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.test_browser import CHROMIUM, open_request, shots, signed_in  # noqa: F401
from tests.test_browser_actions import SLOW, letters, press, refusing_relay  # noqa: F401
from workflows.owed_steps import ANSWER_WITHIN

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's headless Chromium (apt-get install chromium-headless-shell)")


async def test_a_denial_while_the_relay_is_down_is_answered_with_its_letter_under_way(
        browser, refusing_relay, pool, shots):  # noqa: F811
    relay = refusing_relay
    relay.acknowledgements = True
    rid = await open_request(relay.url, pool)
    relay.slow.add(rid)
    page = await signed_in(browser, relay.url, pool, "compliance", f"/console/requests/{rid}")
    await expect(letters(page)).to_contain_text("acknowledgement", timeout=SLOW)

    await press(page, "deny", {"Ground": "manifestly excessive (repetitive) (Art. 12(5) GDPR)",
                               "Explanation (sent to the subject)": "The fourth identical request this month"},
                flash="Request denied; the letter to the subject is under way (the mail relay has not answered",
                timeout=SLOW + 1_000 * ANSWER_WITHIN.seconds)

    await expect(page.locator("#status")).to_contain_text("denied")
    await expect(page.locator("#owed-steps")).to_contain_text("The letter to the subject is under way")
    assert await page.locator("#failed-step").count() == 0  # under way, not failed
    await shots(page, "denial-letter-under-way")
    relay.slow.discard(rid)
    # Retried on its own with backoff: the next attempt comes within about ANSWER_WITHIN.
    await expect(letters(page)).to_contain_text("denial", timeout=SLOW + 2_000 * ANSWER_WITHIN.seconds)
    await expect(page.locator("#owed-steps")).to_have_count(0, timeout=SLOW)
    await shots(page, "denial-letter-sent")
