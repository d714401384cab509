"""The sentence an http action adds to the subject's response letter, e.g. GA4's: when Google
states the deleted data will be gone, from the times it gave when it accepted the requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment


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
    `_filters`; text that is no time), or none was kept (one jsonb cannot hold:
    http_identifiers.py `storable`): the service has already acted by then, and its odd answer
    must not fail the task for good, every retry reading it again."""
    notes = ImmutableSandboxedEnvironment(undefined=StrictUndefined)  # its filters are this request's
    notes.filters.update(_filters(since, now))
    try:
        text = notes.from_string(template).render(collected=collected, accepted_at=now)
    except (ValueError, OverflowError, OSError, TypeError, UndefinedError):
        return None
    return " ".join(text.split())
