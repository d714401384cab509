"""The short reference people read, type and paste: ten characters for a request's random id.

The full id (a UUID) is too long to read out on the phone or copy by hand. The reference is the
id's first 50 bits in an alphabet without 0, O, 1 or I, so no character can be taken for another;
case, spaces and dashes do not matter when it is typed. The database computes the same
(`dsr_reference(id)`, migrations/0026_team.sql) and keeps it unique, so it names one request.
"""

from __future__ import annotations

import re
import uuid

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 10
_BITS = 5 * LENGTH
_TYPED = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")


def short_reference(request_id: str | uuid.UUID) -> str:
    value = uuid.UUID(str(request_id)).int >> (128 - _BITS)
    return "".join(ALPHABET[(value >> (5 * (LENGTH - 1 - i))) & 31] for i in range(LENGTH))


def canonical_uuid(text: str) -> str | None:
    """A UUID as PostgreSQL writes it (lower case, dashed), None for anything that is none.

    Python reads braces, `urn:uuid:`, upper case and 32 bare digits as one UUID too, and asyncpg
    refuses some of them: an id taken from a path or a body is written this way before a query
    compares it (or before it is compared with one a query returned)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def typed_reference(text: str) -> str | None:
    """The reference in what someone typed or pasted (any case, spaces or dashes), else None."""
    candidate = re.sub(r"[\s-]", "", text).upper()
    return candidate if _TYPED.match(candidate) else None
