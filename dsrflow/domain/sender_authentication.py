"""Whether the mail server that received a message vouched for its From address.

Anyone can write a From header. The receiving server checks SPF, DKIM and DMARC and writes what it
found in an Authentication-Results header (RFC 8601) named by its authserv-id, after removing any
header claiming that id which the sender wrote itself (RFC 8601 section 5). So only the headers of
servers the controller names (policy/mailbox.yaml `authenticated_by`) are believed, and only a
result tied to the From domain counts: DMARC pass for it, or (a server that reports no DMARC)
a DKIM pass whose signing domain is the From domain or one above it. Only the topmost header of a
trusted server is read: the receiving server adds its header above those the message came with,
so one lower down that claims its id was written before it, by the sender, if the server failed
to remove it. That header is found by its authserv-id alone, before parsing: when the parser
cannot read the server's own header (a HELO address literal, an SMTPUTF8 sender), the message is
not vouched for, rather than believed on the word of a header below it.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Collection

import authres
import authres.core
import authres.dmarc

_RESULTS = authres.FeatureContext(authres.dmarc)
_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _aligned(signer: str | None, domain: str) -> bool:
    signer = (signer or "").lower().strip().lstrip("@").rsplit("@", 1)[-1]
    return bool(signer) and (domain == signer or domain.endswith("." + signer))


def vouched_for(raw: bytes, sender: str | None, trusted: Collection[str]) -> bool:
    """Whether one of the `trusted` servers (authserv-ids) vouched for `sender` in the message."""
    if not sender or "@" not in sender or not trusted:
        return False
    domain = sender.rsplit("@", 1)[1].lower()
    ours = {server.lower() for server in trusted}
    for value in _HEADERS.parsebytes(raw).get_all("Authentication-Results") or []:
        text = " ".join(str(value).split())
        # The authserv-id is the first word; a version or a comment may follow it before the ";".
        if next(iter(text.split(";", 1)[0].split()), "").lower() not in ours:
            continue
        try:
            header = _RESULTS.parse_value(text)
        except authres.core.AuthResError:
            return False  # the server's own header, unreadable: no header below it may stand in
        dmarc = [r for r in header.results if r.method == "dmarc"]
        if dmarc:
            return any(r.result == "pass" and _aligned(r.header_from, domain) for r in dmarc)
        return any(r.method == "dkim" and r.result == "pass" and _aligned(r.header_d or r.header_i, domain)
                   for r in header.results)
    return False
