"""The sentence an http action adds to the subject's response letter, e.g. GA4's: when Google
states the deleted data will be gone, from the times it gave when it accepted the requests."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemas.plain_text import DIRECTION_CONTROLS

# The longest value a note may print, as JSON: far past a time (Google's is some 30 characters)
# or an id (10 to 40), as long as an id a read takes (http_answers.py KEY_MAX).
VALUE_MAX = 256
# The longest note: GA4's is some 330 characters.
NOTE_MAX = 2000
# C0 and C1 controls, DEL, Unicode's line and paragraph separators (schemas/plain_text.py).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def kept_value(value: Any) -> Any:
    """A value a step collects from a service's answer, as it is kept (the run's journal, the
    identifier's row) and as its note may print it into the letter, the console and the evidence
    pack. Marks that reorder text (U+202A-U+202E, U+2066-U+2069) are taken out: they would make
    what follows read in another order, and a time or an id holds none. None, a value the note
    cannot read, where its text holds a control character (a NUL, which jsonb cannot keep: keeping
    it failed after the service had acted, every retry asking again; an escape sequence; a line
    break), or where it is longer than VALUE_MAX as JSON (a megabyte in the subject's letter): no
    time or id holds either, and a part of one would tell the subject another."""
    if isinstance(value, str) and len(value) > VALUE_MAX:
        return None
    kept = _cleaned(value)
    if kept is None or len(json.dumps(kept, default=str)) > VALUE_MAX:
        return None
    return kept


def _cleaned(value: Any) -> Any:
    if isinstance(value, str):
        return None if _CONTROL.search(value) else DIRECTION_CONTROLS.sub("", value)
    if isinstance(value, list):
        items = [_cleaned(v) for v in value]
        return None if any(k is None and v is not None for k, v in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        pairs = {k: _cleaned(v) for k, v in value.items()}
        return None if any(pairs[k] is None and v is not None for k, v in value.items()) else pairs
    return value


def as_datetime(value: Any) -> datetime:
    """RFC 3339 text (Google's `deletionRequestTime`), epoch seconds or a datetime, in UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    text = str(value).replace("Z", "+00:00")
    if "." in text:  # Python < 3.12 reads at most 6 fractional digits; RFC 3339 allows 9
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    return datetime.fromisoformat(text).astimezone(UTC)


def longdate(value: Any) -> str:
    moment = as_datetime(value)
    return f"{moment.day} {moment:%B %Y}"


# How far a time a service gives may lie outside the request's life and still be taken: clocks
# differ, and a service may stamp the day it queued the deletion.
_LEEWAY = timedelta(days=1)


def _filters(since: datetime | None, now: datetime) -> dict[str, Any]:
    """The note's filters, each time the service gave (text or a number) taken only when it falls
    between the request's receipt (`since`) and `now`: a deletion accepted in 1970 or in 2090 is
    one the service cannot have accepted, and the letter would tell the subject that date."""
    earliest, latest_ = (since or datetime.min.replace(tzinfo=UTC) + _LEEWAY) - _LEEWAY, now + _LEEWAY

    def given(value: Any) -> datetime:
        moment = as_datetime(value)
        if not isinstance(value, datetime) and not earliest <= moment <= latest_:
            raise ValueError("a time outside the request's life")
        return moment

    return {"as_datetime": given, "longdate": lambda v: longdate(given(v)),
            "add_days": lambda v, n: given(v) + timedelta(days=n),
            "add_hours": lambda v, n: given(v) + timedelta(hours=n),
            "latest": lambda values: max((given(v) for v in values), default=None)}


def render_note(template: str, collected: dict[str, list[Any]], now: datetime,
                since: datetime | None = None) -> str | None:
    """`collected`: the values the steps kept, by name (one per request); `accepted_at`: now;
    `since`: when the request was received. None where a value the service sent cannot be read
    as what the note takes it for (a time outside the calendar, or outside the request's life:
    `_filters`; text that is no time), or none was kept (`kept_value`), or the note would be
    longer than NOTE_MAX: the service has already acted by then, and its odd answer must not fail
    the task for good, every retry reading it again."""
    notes = ImmutableSandboxedEnvironment(undefined=StrictUndefined)  # its filters are this request's
    notes.filters.update(_filters(since, now))
    try:
        text = notes.from_string(template).render(collected=collected, accepted_at=now)
    except (ValueError, OverflowError, OSError, TypeError, UndefinedError):
        return None
    note = " ".join(text.split())
    return note if len(note) <= NOTE_MAX else None
