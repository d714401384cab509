"""Keyed hashes: what the system keeps instead of codes, link tokens and identifiers. Each use has
its own label, so a hash made for one purpose never matches one made for another."""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(secret: bytes, *parts: str) -> str:
    """HMAC-SHA256 over the parts, unambiguously separated; hex digest."""
    message = "\x1f".join(parts).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    """Staff bearer tokens are long and random, so a plain digest is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def subject_hash(secret: bytes, email: str) -> str:
    """The subject key every hold, deferred erasure and ledger row uses."""
    return keyed_hash(secret, "subject", email.strip().lower())


def suppression_hash(secret: bytes, email: str) -> str:
    """An address that objected to direct marketing, as importers ask about it."""
    return keyed_hash(secret, "suppression", email.strip().lower())


def lookup_hash(secret: bytes, kind: str, value: str) -> str:
    """A subject's identity (`email`, `customer_id`) as staff search for their requests: exact
    after trimming and case folding, so `Ada@Example.com ` finds `ada@example.com`."""
    return keyed_hash(secret, "request-lookup", kind, value.strip().casefold())


def code_hash(secret: bytes, request_id: str, code: str) -> str:
    """A verification code, bound to its request."""
    return keyed_hash(secret, "verification-code", request_id, code.strip())


def verification_code(secret: bytes, request_id: str, code_round: int, digits: int) -> str:
    """The code a verification round's e-mail carries: derived, not drawn, so that a retry's e-mail
    carries the same one (activities/verification.py), and so that the API can tell a code of an
    earlier e-mail from a guess (api/public/attempts.py)."""
    seed = keyed_hash(secret, "verification-seed", request_id, str(code_round))
    return f"{int(seed[:16], 16) % 10**digits:0{digits}d}"


def link_token(secret: bytes, request_id: str, code_round: int) -> str:
    """The token of the link a verification round's e-mail carries: derived, not drawn, so that a
    retry's e-mail carries the same one (activities/verification.py), and so that the API can
    tell a link we sent from a forged one (api/public/intake.py)."""
    return keyed_hash(secret, "verification-token", request_id, str(code_round))


def link_token_hash(secret: bytes, request_id: str, token: str) -> str:
    """A verification link's token, bound to its request."""
    return keyed_hash(secret, "verification-link", request_id, token.strip())
