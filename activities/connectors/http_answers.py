"""Reading an http system's answers the way its configuration describes them, and nothing else:
the records where `records` says (an answer without them is no "no records"), and pages that
lead somewhere new (a cursor, next link or page met again is a service leading in a circle).

A read that took a missing records list for none at all reported a subject "not found" where
the service had answered with an error in a 200, and an erasure was done with nothing erased;
a cursor answered again and again kept the worker reading the same page until `max_pages`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from schemas.plain_text import DIRECTION_CONTROLS


class UnreadAnswer(ValueError):
    """An answer that is not what the configuration says it is; the message says how."""


def dig(document: Any, path: str | None) -> Any:
    """The value at a dotted path ("paging.next.after"); "" is the document itself."""
    if path is None:
        return None
    value = document
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def records_at(document: Any, path: str) -> list[dict[str, Any]]:
    """The records at `path`: a list of objects, or one object. UnreadAnswer when the answer has
    none there, or holds there anything but objects."""
    value = dig(document, path)
    where = f"`{path}`" if path else "its body"
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise UnreadAnswer(f"has no records at {where}" if value is None else f"has {kind_of(value)} at {where}, no records")
    odd = sum(1 for v in value if not isinstance(v, dict))
    if odd:
        raise UnreadAnswer(f"holds {odd} entries at {where} that are not records")
    return value


# The longest key a record may have: far longer than any service's ids (Stripe's, HubSpot's,
# Mailchimp's are 10 to 40 characters), short enough for the erasure ledger's unique index
# (PostgreSQL's B-tree refuses an entry past 2,704 bytes).
KEY_MAX = 256


def keyed(records: list[dict[str, Any]], key: str, dataset: str) -> list[dict[str, Any]]:
    """The records with their key as text: a number where the service's ids are text (5 for
    "5") would match no hold's keys, and a held record would be deleted. A record whose key is
    no id (missing, an object, true; text with control characters or marks that reorder it, or
    past KEY_MAX characters)
    can be neither held, erased nor named: UnreadAnswer. Before, such a text was sent to be
    deleted, and the erasure ledger then refused its key (a NUL, which PostgreSQL's text cannot
    hold, or 3,000 characters, past its index's limit): the record was gone at the service, the
    task failed on every retry with the database's words, and no evidence was kept."""
    for record in records:
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise UnreadAnswer(f"has a record of {dataset} whose `{key}` is {kind_of(value)}, no id")
        text = str(value)
        if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
            raise UnreadAnswer(f"has a record of {dataset} whose `{key}` holds control characters, no id")
        if DIRECTION_CONTROLS.search(text):  # staff, the evidence and letters would read it reordered
            raise UnreadAnswer(f"has a record of {dataset} whose `{key}` holds marks that reorder text, no id")
        if len(text) > KEY_MAX:
            raise UnreadAnswer(f"has a record of {dataset} whose `{key}` is {len(text):,} characters long, "
                               f"no id (at most {KEY_MAX})")
        record[key] = text
    return records


def kind_of(value: Any) -> str:
    return {bool: "true or false", str: "text", int: "a number", float: "a number", dict: "an object",
            list: "a list", type(None): "nothing"}.get(type(value), "a value")


def cursor_value(value: Any, field: str) -> str | int | None:
    """A next-page cursor as the answer gave it: text or a whole number, None at the end."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UnreadAnswer(f"gives {kind_of(value)} as its next-page cursor `{field}`, not text or a number")
    return value


def more_pages(value: Any, field: str) -> bool:
    """A `has_more` flag: true or false, nothing else (text "false" is true to Python)."""
    if not isinstance(value, bool):
        raise UnreadAnswer(f"says {kind_of(value)} at `{field}`, not true or false")
    return value


def total_items(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnreadAnswer(f"gives {kind_of(value)} at `{field}`, not a whole number")
    return value


class Circle:
    """What one paginated read has been led to: a cursor, next link or page of records met twice
    means the service leads in a circle, which no number of further pages ends."""

    def __init__(self) -> None:
        self._cursors: set[str] = set()
        self._pages: set[str] = set()

    def cursor(self, cursor: Any) -> None:
        key = repr(cursor)
        if key in self._cursors:
            raise UnreadAnswer("gave a next page it had given before: its pages lead in a circle")
        self._cursors.add(key)

    def page(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        digest = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
        if digest in self._pages:
            raise UnreadAnswer("answered a page of records it had answered before: its pages lead in a circle")
        self._pages.add(digest)
