"""How the values of some settings are written and read: request rates, secrets and the payload
keys. Shared by the settings object (dsrflow/settings.py) and what checks a production
configuration (dsrflow/infra/production.py, dsrflow/crypto/keys.py)."""

from __future__ import annotations

import base64
import binascii
import re

_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_PERIODS = {"s": 1, "second": 1, "m": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


def parse_rate(value: str) -> tuple[int, int]:
    """"10/hour" -> (10, 3600); "3/10m" -> (3, 600)."""
    match = _RATE.match(value.lower())
    unit = _PERIODS.get(match.group(3)) if match else None
    if not match or unit is None or int(match.group(1)) < 1 or match.group(2) == "0":
        raise ValueError("a rate such as 10/hour, 5/minute or 3/10m (count/period)")
    return int(match.group(1)), unit * int(match.group(2) or 1)


def decode_secret(value: str) -> bytes:
    try:
        secret = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("base64 of 32 random bytes") from None
    if len(secret) != 32:
        raise ValueError(f"base64 of 32 random bytes, got {len(secret)} bytes")
    return secret


def parse_key_list(value: str) -> list[tuple[str, bytes]]:
    """Parse `kid:base64key[,kid:base64key...]`; the first key encrypts, all of them decrypt."""
    keys: list[tuple[str, bytes]] = []
    for item in value.split(","):
        kid, sep, encoded = item.strip().partition(":")
        if not sep or not _KEY_ID.match(kid):
            raise ValueError("comma-separated key-id:base64-key pairs (key id: letters, digits, _.-)")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(f"valid base64 for key {kid!r}") from None
        if len(key) != 32:
            raise ValueError(f"32 bytes (AES-256) for key {kid!r}, got {len(key)}")
        if any(kid == existing for existing, _ in keys):
            raise ValueError(f"each key id once, {kid!r} appears twice")
        keys.append((kid, key))
    return keys
