"""The evidence pack of a refusal under a US state law, refused before the subject confirmed their
identity, and of a request stopped and resumed, read as a DPO reads it. The pack named the GDPR's
remedies (the supervisory authority, a judicial remedy) for a VCDPA refusal, whose letter names an
appeal and the Attorney General; said the subject "did not confirm their identity" of a request
compliance refused before they could; and held a stop and its resume as two audit lines only."""

from __future__ import annotations

import re

from api.auth import create_token
from dsrflow.domain.audit import append_event
from dsrflow.stores.staff_tokens import issue_token
from tests.evidence_pages import LOCAL_TIME, assert_reads_as_words, readable, section
from tests.support import refused_erasure, stored_request, unique_email


async def test_a_vcdpa_refusal_names_its_laws_remedies_and_why_identity_was_never_verified(http, pool, mail_sink):
    compliance = {"Authorization": f"Bearer {await create_token(pool, 'compliance', 'Jane Peeters')}"}
    refused, _ = await refused_erasure(http, pool, mail_sink, unique_email("vcdpa-pack"), "vcdpa")

    page = (await http.get(f"/v1/requests/{refused}/evidence.html", headers=compliance)).text

    assert_reads_as_words(page)
    text = readable(page)
    verification = section(text, "Identity verification", "Deadlines")
    assert ("Verified never: the request was refused (see Decisions) before the subject confirmed their identity"
            in verification), verification
    decisions = section(text, "Decisions", "Plan")
    assert ("the explanation and the remedies (appeal under Va. Code § 59.1-577(C), complaint to the Attorney "
            "General of Virginia, enforcement and the courts) are in the denial letter below") in decisions, decisions
    assert "supervisory authority" not in decisions
    deadlines = section(text, "Deadlines", "Decisions")
    assert "Extended no (the law would have allowed it up to" in deadlines and "Latest extended" not in deadlines


async def test_a_request_stopped_and_resumed_says_who_resumed_it_and_why(http, pool, settings):
    """The start sweep records the stop, compliance the resume (dsrflow/domain/request_resume.py);
    the events as they write them."""
    row, token = await issue_token(pool, "compliance", "Jane Peeters")
    compliance, actor = {"Authorization": f"Bearer {token}"}, f"compliance:{str(row['id'])[:8]}"
    rid = await stored_request(pool, settings, "stopped", type_="erasure")
    async with pool.acquire() as conn:
        await append_event(conn, event_key=f"{rid}:ended:1", request_id=rid, event_type="request.workflow_ended",
                           actor="sweep", data={"ended": "timed_out", "ended_at": "2026-03-03T10:15:00+00:00"})
        await append_event(conn, event_key=f"{rid}:resumed:1", request_id=rid, event_type="request.resumed",
                           actor=actor, data={"reason": "The run timed out during the outage of 3 March",
                                              "ended": "timed_out", "from_event": 12})
        # Later, closed with a restriction in force, its workflow (which lifts it) terminated.
        await append_event(conn, event_key=f"{rid}:ended:2", request_id=rid, event_type="request.workflow_ended",
                           actor="sweep", data={"ended": "terminated", "closed": True,
                                                "ended_at": "2026-04-07T08:00:00+00:00"})

    page = (await http.get(f"/v1/requests/{rid}/evidence.html", headers=compliance)).text

    decisions = section(readable(page), "Decisions", "Plan")
    # When it ended (Temporal's close time, 11:15 in Brussels) and when the sweep found it.
    assert re.search(f"Stopped its workflow had timed out 3 March 2026, 11:15 CET \\(UTC\\+1\\) while the request was open, "
                     f"found by the sweep {LOCAL_TIME} "
                     f"\\(nothing of it ran meanwhile; its deadline ran on\\); resumed {LOCAL_TIME} by Jane Peeters "
                     "\\(compliance\\): “The run timed out during the outage of 3 March”, carrying on from where it "
                     "stopped", decisions), decisions
    assert re.search(f"Stopped its workflow had been terminated 7 April 2026, 10:00 CEST \\(UTC\\+2\\) after the request "
                     f"closed, its restriction in force, found by the sweep {LOCAL_TIME} \\(nothing could lift the "
                     "restriction meanwhile\\); not resumed", decisions), decisions
