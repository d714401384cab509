"""One mailbox spelled many ways spends one per-address allowance (api/ratelimit.py `_address`):
a sender flooding a Gmail user with codes wrote the address under googlemail.com, or with
full-width letters or a full-width "＋tag" (which NFKC reads as the ASCII ones), and got an
allowance of verification e-mails for each spelling. (A domain's upper-case, Unicode and
Punycode forms are one already: the e-mail validator gives the address its Unicode domain.)"""

from __future__ import annotations

import uuid

from tests.ratelimit_support import app_clients, assert_limited, stored_for, unique_ip

DAY = 86400


def _full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


async def test_one_gmail_mailbox_spelled_otherwise_spends_one_allowance_of_codes(settings, pool, dev_server,
                                                                                 task_queue):
    name = f"ab{uuid.uuid4().hex[:10]}"
    spellings = [f"{name[0]}.{name[1:]}@googlemail.com", f"{name.upper()}+news@GMAIL.com",
                 f"{_full_width(name)}＋x@gmail.com"]
    async with app_clients(settings, dev_server.client, task_queue, rate_mail_per_email="3/day") as call_from:
        for email in spellings:
            r = await call_from(unique_ip()).post("/v1/public/requests", json={"type": "access", "email": email})
            assert r.status_code == 202, r.text

        refused = await call_from(unique_ip()).post("/v1/public/requests",
                                                    json={"type": "access", "email": f"{name}@gmail.com"})

        assert_limited(refused, DAY)
        assert await stored_for(pool, f"{name}@gmail.com") == 0

