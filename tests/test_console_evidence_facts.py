"""What the evidence pack knows that the console's request page tells staff too (after the
evidence audit, hN): whether the acknowledgement went by the day the law sets for it (the page
gave that day alone), and a kept record's basis as the response letter told the subject, in the
request's law (the page gave the basis as the policy words it, citing the GDPR, on a UK GDPR
erasure whose letter cited the UK GDPR). Requests stored as intake stores them, no workflow
running: the page shows the stored request (tests/test_console_words.py)."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime

from api.read_models.evidence import assemble_evidence
from dsrflow.crypto.keys import load_secret_key
from dsrflow.i18n import long_date
from dsrflow.stores.requests_store import create_request
from policy.model import load_policy
from schemas.requests import NewRequest
from tests.support import console_sign_in, unique_email

ACKNOWLEDGE_BY = datetime(2027, 1, 4).date()


async def stored(pool, settings, kind: str, regime: str) -> str:
    new = NewRequest.model_validate({"type": kind, "regime": regime, "identity_attested": True,
                                     "subject": {"email": unique_email("facts")}})
    row, _ = await create_request(pool, new, loaded_policy=load_policy(settings.policy_path),
                                  secret=load_secret_key(settings), actor="test", idempotency_key=None)
    return str(row["id"])


def words(page: str, start: str, end: str) -> str:
    """The page's text between two marks, tags dropped and spaces folded."""
    part = html.unescape(page).split(start)[1].split(end)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", part).split())


async def acknowledgement(http, pool, rid: str) -> str:
    return words((await http.get(f"/console/requests/{rid}")).text, 'id="acknowledgement">', "</dd>")


async def acknowledged(pool, rid: str, at: datetime, n: int) -> None:
    await pool.execute("""INSERT INTO sent_letters (letter_key, request_id, purpose, recipient, subject, message_id,
                                                    body_text, body_html, sent_at)
                          VALUES ($1, $2, 'acknowledgement', 'x@example.com', 'Received', $3, 'text', 'html', $4)""",
                       f"{rid}:acknowledgement:{n}", uuid.UUID(rid), f"<{uuid.uuid4().hex}@dsrflow>", at)


async def test_the_acknowledgement_says_whether_it_went_in_time(http, pool, settings):
    """Not sent yet (and by when), sent in time, sent late (by how many days, on the controller's
    calendar: 23:30 UTC on the 6th is the 7th in Brussels, three days late); none under the GDPR."""
    due = long_date(ACKNOWLEDGE_BY)
    late, in_time, waiting = [await stored(pool, settings, "access", "ccpa") for _ in range(3)]
    await pool.execute("UPDATE dsr_requests SET acknowledge_by = $2 WHERE id = ANY($1::uuid[])",
                       [uuid.UUID(r) for r in (late, in_time, waiting)], ACKNOWLEDGE_BY)
    await acknowledged(pool, late, datetime(2027, 1, 6, 23, 30, tzinfo=UTC), 1)
    await acknowledged(pool, in_time, datetime(2027, 1, 4, 22, 30, tzinfo=UTC), 1)
    await console_sign_in(http, pool, "agent")

    assert await acknowledgement(http, pool, late) == f"sent on {long_date(datetime(2027, 1, 7).date())}, " \
                                                      f"late by 3 day(s) (due by {due})"
    assert await acknowledgement(http, pool, in_time) == f"sent on {due}, in time"
    assert await acknowledgement(http, pool, waiting) == f"not yet sent (due by {due})"
    gdpr = (await http.get(f"/console/requests/{await stored(pool, settings, 'access', 'gdpr')}")).text
    assert 'id="acknowledgement"' not in gdpr and "Acknowledge" not in gdpr


async def test_a_kept_record_gives_the_basis_the_subject_was_told(http, pool, settings):
    """A UK GDPR erasure's record kept under a statute: the policy words the basis with the GDPR's
    article, the letter gave the UK GDPR's (activities/letter_outcome.py, through the pack's
    `as_told`); the page gives the letter's, as the evidence pack's Holds table does."""
    rid = await stored(pool, settings, "erasure", "uk_gdpr")
    kept = {"system": "billing", "dataset": "invoices", "records": 3, "hold_kind": "statutory",
            "basis": "Art. 17(3)(b) GDPR", "law": "VAT Code Art. 60", "until": "2034-12-31"}
    await pool.execute("""INSERT INTO system_tasks (request_id, system, action, status, found, changed, kept, kept_records)
                          VALUES ($1, 'billing', 'erase', 'completed', 5, 2, 3, $2)""", uuid.UUID(rid), [kept])
    await console_sign_in(http, pool, "agent")

    page = (await http.get(f"/console/requests/{rid}")).text
    pack = await assemble_evidence(pool, rid, secret=load_secret_key(settings))
    assert pack is not None
    told = pack["holds"]["kept_records"][0]["as_told"]
    holds = words(page, "<h2>Holds</h2>", "</div>")

    assert told["basis"] != kept["basis"] and "UK GDPR" in told["basis"]
    assert (f"kept under a statutory hold: {told['basis']}; {told['law']}, "
            f"until {long_date(datetime(2034, 12, 31).date())}.") in holds
    assert "Art. 17(3)(b) GDPR;" not in holds
