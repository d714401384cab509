"""Keyed hashes: what the system keeps instead of codes, link tokens and identifiers."""

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
