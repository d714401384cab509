"""The mailbox an e-mail address reaches, for what must count or match one mailbox however its
address is spelled: the per-address rate limits (api/ratelimit.py: folding less gave one mailbox
several allowances; folding more than a provider does only makes two mailboxes share one) and the
direct-marketing suppression list (dsrflow/stores/suppressions_store.py: a subject who objected as
"ada+news@gmail.com" objected for the mailbox an importer may hold as "Ada@googlemail.com"; folding
more than a provider does only keeps marketing from a mailbox that did not object).

Not for a subject's identity (holds, erasures, the ledger: dsrflow/crypto/hashing.py
`subject_hash`), where folding more than the provider does would act on another person's data.
"""

from __future__ import annotations

import unicodedata

# Mailboxes that ignore dots in an address's local part: anyone could otherwise write one mailbox
# as thousands of addresses, each with an allowance of its own. googlemail.com is gmail.com: one
# mailbox under both names.
_DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
# The full stops IDNA reads as a domain's dots (RFC 3490 3.1): "example。com" is example.com.
_LABEL_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def mailbox_of(email: str) -> str:
    """The mailbox an address reaches: in compatibility form and case-folded (NFKC: a full-width
    "ｕｓｅｒ" or "＋" is "user" or "+"), without a "+tag" (most providers deliver "name+anything@"
    to "name@"), its domain in Unicode (an IDNA "xn--" label decoded, a trailing dot dropped) and,
    for Gmail, without the local part's dots and under one domain. Only counted and matched alike:
    every e-mail still goes to the address as given."""
    local, _, domain = unicodedata.normalize("NFKC", email.strip()).rpartition("@")
    domain = _unicode_domain(domain.translate(_LABEL_DOTS).casefold().rstrip("."))
    local, domain = local.casefold(), unicodedata.normalize("NFKC", domain).casefold()
    local = local.split("+", 1)[0] or local
    if domain in _DOTLESS_DOMAINS:
        local, domain = local.replace(".", "") or local, _DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"


def _unicode_domain(domain: str) -> str:
    """`domain` (in lower case) with each IDNA "xn--" label decoded from Punycode: whatever IDNA
    version wrote it ("xn--strae-oqa" is "straße"), kept as it is if it does not decode."""
    return ".".join(_unicode_label(label) for label in domain.split("."))


def _unicode_label(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        return label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return label
