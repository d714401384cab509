"""Opaque page cursors: the last row's sort key, as base64url JSON.

Clients pass them back unchanged; anything else is refused with InvalidCursor so the API can
answer 422 naming the parameter instead of failing deeper down.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any


class InvalidCursor(ValueError):
    """A cursor this service did not write (or one damaged on the way)."""


def encode_cursor(*parts: str | int) -> str:
    raw = json.dumps(list(parts), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *parsers: Callable[[Any], Any]) -> tuple:
    """The cursor's parts, each converted by its parser (e.g. `date.fromisoformat`, `int`)."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != len(parsers):
            raise ValueError("wrong shape")
        return tuple(parse(part) for parse, part in zip(parsers, parts, strict=True))
    except (binascii.Error, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise InvalidCursor("not a cursor from an earlier page of this listing") from None
