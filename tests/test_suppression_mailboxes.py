"""The suppression list holds a mailbox, not one spelling of it: a subject who objected to direct
marketing as "Ada.Lovelace+news@gmail.com" objected for the mailbox an importer may hold as
"adalovelace@googlemail.com" (dsrflow/domain/mailboxes.py). Before, only the spelling given,
lower-cased, was refused, and the marketing list's own spelling was imported and mailed again.
Entries stored before keep matching their own spelling, and are lifted by it."""

from __future__ import annotations

from dsrflow.crypto.hashing import suppression_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.stores.suppressions_store import lift_suppression, suppressed, suppression_key
from tests.support import unique_email
from tests.test_suppression_lift import CONSENT, suppressed_objection


async def _on_list(pool, settings, key: str, email: str) -> str:
    """An objection by `email`, its address on the list under `key` (the fan-out's, or an old one)."""
    rid = await suppressed_objection(pool, settings, email)
    await pool.execute("UPDATE suppressions SET identifier_hash = $1 WHERE request_id = $2::uuid", key, rid)
    return rid


async def test_every_spelling_of_the_mailbox_that_objected_is_refused(pool, settings):
    secret = load_secret_key(settings)
    local = unique_email("ada.lovelace").split("@")[0].replace("-", ".")
    objected = f"{local}+news@gmail.com"
    await _on_list(pool, settings, suppression_key(secret, objected), objected)
    plain = local.replace(".", "")
    spellings = [f"{plain}@googlemail.com", f"{local.upper()}@GMAIL.COM", f"{plain}+other@gmail.com",
                 f"{local}@gmail.com."]
    others = [f"{plain}@example.com", f"{plain}x@gmail.com"]

    found = await suppressed(pool, secret, [*spellings, *others])

    assert sorted(found) == sorted(spellings)
    # Lifted by any spelling of it, once.
    await lift_suppression(pool, secret, spellings[0], consent=CONSENT, actor="compliance:test")
    assert await suppressed(pool, secret, spellings) == {}


async def test_an_entry_from_before_keeps_matching_its_spelling_and_is_lifted_by_it(pool, settings):
    secret = load_secret_key(settings)
    email = unique_email("before").replace("@", "+tag@")
    rid = await _on_list(pool, settings, suppression_hash(secret, email), email)

    assert set(await suppressed(pool, secret, [email.upper(), email])) == {email.upper(), email}
    assert await lift_suppression(pool, secret, email.upper(), consent=CONSENT, actor="compliance:test") == rid
    assert await suppressed(pool, secret, [email]) == {}
