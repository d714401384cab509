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


_NOTES = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
_NOTES.filters.update(
    as_datetime=as_datetime, longdate=longdate,
    add_days=lambda v, n: as_datetime(v) + timedelta(days=n),
    add_hours=lambda v, n: as_datetime(v) + timedelta(hours=n),
    latest=lambda values: max((as_datetime(v) for v in values), default=None),
)


def render_note(template: str, collected: dict[str, list[Any]], now: datetime) -> str | None:
    """`collected`: the values the steps kept, by name (one per request); `accepted_at`: now.
    None where a value the service sent cannot be read as what the note takes it for (a time
    outside the calendar, text that is no time), or none was kept (one jsonb cannot hold:
    http_identifiers.py `storable`): the service has already acted by then, and its odd answer
    must not fail the task for good, every retry reading it again."""
    try:
        text = _NOTES.from_string(template).render(collected=collected, accepted_at=now)
    except (ValueError, OverflowError, OSError, TypeError, UndefinedError):
        return None
    return " ".join(text.split())
