"""A restriction request closed before it completed (withdrawn, cancelled, denied) once some systems
had restricted the data: the restriction stays in force there, on record, until compliance lifts
it, telling the subject first, and the lift reaches every system of the plan. Before, it ended
with the close: nothing on record, no "Lift restriction", the systems restricted for good, and the
closing letter said only that we had acted on it in them."""

from __future__ import annotations

import asyncio

import pytest

from dsrflow.i18n import translations, worded, wording_of
from schemas.workflow import workflow_id_for
from tests.fanout_stack import api, fanout_stack
from tests.letters_as_sent import LANGUAGES, LOADED, REGIMES, as_sent, both
from tests.support import (
    assert_problem,
    console_sign_in,
    fetch_rows,
    letters_for,
    staff_headers,
    text_of,
    wait_for_letter,
)
from tests.test_restriction_lifecycle import LIFT, _resolve_email_task, _until, _view
from workers.dsr_worker import build_worker

IN_FORCE = "The restriction of the processing of your personal data stays in force in: %(systems)s."
WHERE_ASKED = "Where the systems we had also asked carry the restriction out, it stays in force there too."
TOLD_FIRST = "It does not end with your request: we will tell you before we lift it."
TOLD_FIRST_WITHDRAWN = ("It does not end with your request: we will tell you before we lift it. If you want us to "
                        "lift it, tell us by replying to this e-mail.")


def said(text: str) -> str:
    return " ".join(text.split())


async def restriction_opened(http, agent: dict) -> str:
    """Staff open an attested restriction of the fan-out stack's tracked subject (legal claims)."""
    r = await http.post("/v1/requests", headers=agent, json={
        "type": "restriction", "restriction_grounds": ["needed_for_legal_claims"],
        "subject": {"email": "tracked@example.com"}, "identity_attested": True})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def withdrawn_in_force(http, pool, rid: str, agent: dict, timeout: float) -> dict:
    """Staff record that the subject withdrew the restriction: its view once the restriction is on
    record in force (where it was reached), the request cancelled."""
    r = await http.post(f"/v1/requests/{rid}/cancel", headers=agent,
                        json={"reason": "The subject withdrew it by phone", "withdrawn_by_subject": True})
    assert r.status_code == 200, r.text

    async def in_force() -> dict | None:
        view = await _view(http, pool, rid)
        return view if (view["restriction"] or {}).get("status") == "active" else None

    view = await _until(in_force, timeout)
    assert view, await _view(http, pool, rid)
    assert view["status"] == "cancelled"
    return view


async def test_a_withdrawn_restriction_stays_in_force_where_reached_until_lifted(postgres, settings, pool, dev_server,
                                                                                tmp_path, mail_sink):
    """Analytics restricted, the e-mail processor's task needing staff: the subject withdraws the
    request. Analytics stays restricted, on record; the letter says so; compliance lifts it from
    the console's panel, the subject told first, and the lift reaches every system."""
    async with fanout_stack(postgres, settings, dev_server.client, tmp_path) as stack:
        analytics = stack.databases["analytics"]
        restricted = "SELECT restricted FROM users WHERE email = 'tracked@example.com'"
        async with build_worker(dev_server.client, stack.settings, pool), api(stack) as http:
            agent, compliance = await staff_headers(pool, "agent"), await staff_headers(pool, "compliance")
            rid = await restriction_opened(http, agent)

            async def part_way() -> bool:
                tasks = {t["system"]: t["status"] for t in (await _view(http, pool, rid)).get("results", [])}
                return tasks.get("analytics") == "done" and tasks.get("email_marketing") == "needs_attention"

            assert await _until(part_way)
            view = await withdrawn_in_force(http, pool, rid, agent, 20)
            assert "analytics" in view["restriction"]["systems"]
            assert "email_marketing" not in view["restriction"]["systems"]  # not reached: not on record
            assert [row["restricted"] for row in await fetch_rows(analytics, restricted)] == [True]
            letter = said(text_of(await wait_for_letter(mail_sink, rid, "cancellation", timeout=5)))
            assert "stays in force in: Website analytics (users and page events)." in letter, letter
            assert said(TOLD_FIRST_WITHDRAWN) in letter

            # The console's restriction panel offers the lift on the closed request.
            await console_sign_in(http, pool, "compliance")
            page = (await http.get(f"/console/requests/{rid}")).text
            assert 'id="restriction"' in page and "Lift the restriction" in page
            # The restriction's own task that needed staff is not retried on the closed request.
            r = await http.post(f"/v1/requests/{rid}/retry-task", headers=compliance, json={"system": "email_marketing"})
            assert_problem(r, 409)

            r = await http.post(f"/v1/requests/{rid}/lift-restriction", headers=compliance, json=LIFT)
            assert r.status_code == 200, r.text
            lift = text_of(await wait_for_letter(mail_sink, rid, "restriction_lift", timeout=5))
            assert LIFT["reason"] in lift
            await _resolve_email_task(http, pool, mail_sink, rid, "lift_restriction")
            result = await asyncio.wait_for(dev_server.client.get_workflow_handle(workflow_id_for(rid)).result(), 30)
            assert result["status"] == "cancelled"
            lifted = {t["system"] for t in result["results"] if t["action"] == "lift_restriction"}
            assert lifted == {"crm", "analytics", "billing", "email_marketing"}, result["results"]
            assert [row["restricted"] for row in await fetch_rows(analytics, restricted)] == [False]
            assert (await _view(http, pool, rid))["restriction"]["status"] == "lifted"
            assert len(letters_for(mail_sink, rid, "restriction_lift")) == 1


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_closing_letter_says_where_the_restriction_stays_in_force(language):
    """Denied, cancelled or withdrawn part-way, under every regime: the letter names the systems the
    restriction stays in force in, those still asked, and that we tell the subject before lifting
    it. Another request type's closing letter says nothing of a restriction."""
    crm = LOADED.in_language(language).systems["crm"].label
    closings = {"denial": {"reason_code": "other", "explanation": "The account is a company's."},
                "cancellation": {"reason": "A duplicate of an earlier request", "withdrawn": False}}
    for regime in REGIMES:
        t = worded(language, wording_of(regime))  # in the words of the request's law
        for purpose, params in closings.items():
            letter = await as_sent(purpose, "restriction", {**params, "acted_in": ["crm"], "asked_in": ["surveys"]},
                                   regime=regime, language=language)
            for part in both(letter):
                assert said(t.gettext(IN_FORCE) % {"systems": crm}) in part, (purpose, regime, language, part)
                assert said(t.gettext(WHERE_ASKED)) in part and said(t.gettext(TOLD_FIRST)) in part
            asked_only = await as_sent(purpose, "restriction", {**params, "acted_in": [], "asked_in": ["surveys"]},
                                       regime=regime, language=language)
            for part in both(asked_only):
                assert said(t.gettext(WHERE_ASKED)) in part and said(t.gettext(TOLD_FIRST)) in part
                assert said(t.gettext(IN_FORCE)).split("%")[0] not in part
            erasure = await as_sent(purpose, "erasure", {**params, "acted_in": ["crm"]}, regime=regime,
                                    language=language)
            assert all(said(t.gettext(TOLD_FIRST)) not in part for part in both(erasure))
    t = translations(language)  # the GDPR's, the regime `as_sent` defaults to
    withdrawn = await as_sent("cancellation", "restriction", {**closings["cancellation"], "withdrawn": True,
                                                              "acted_in": ["crm"], "asked_in": []}, language=language)
    assert all(said(t.gettext(TOLD_FIRST_WITHDRAWN)) in part for part in both(withdrawn))
    if language != "en":
        assert all(t.gettext(m) != m for m in (IN_FORCE, WHERE_ASKED, TOLD_FIRST, TOLD_FIRST_WITHDRAWN)), language
