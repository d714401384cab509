"""Statutory holds over records an http system returned (Art. 17(3)(b)): e.g. Stripe invoices and
charges are accounting documents, kept until 31 December of their year + the years the statute
sets for documents of that year, and the customer they belong to is kept (minimised) for as long
as any of them is."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from activities.connectors.base import HeldRecord
from activities.connectors.http_answers import UnreadAnswer
from activities.connectors.sql_erasure import retention_end
from policy.http_model import HttpConfig
from policy.model import Policy


def document_date(value: Any) -> date | None:
    """A record's date: epoch seconds (Stripe `created`) or ISO 8601 text; None for anything else
    (true, an object, a time outside the calendar, 10**20 seconds)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, UTC).date()
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except (ValueError, OverflowError, OSError):
        return None


def _reference(value: Any) -> str | None:
    """A parent reference: an id, or an expanded object carrying one."""
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None else str(value)


def holds_over(config: HttpConfig, policy: Policy, found: dict[str, list[dict[str, Any]]],
               today: date) -> dict[str, dict[str, tuple[date, str]]]:
    """dataset -> record key -> (kept until, statute), for the records a statute still covers.
    UnreadAnswer when a record's date cannot be read: what it would keep is unknown."""
    held: dict[str, dict[str, tuple[date, str]]] = {}
    for name, dataset in config.datasets.items():
        hold = dataset.hold
        if hold is None or hold.date_field is None:
            continue
        statute = policy.statutory_holds[hold.statute]
        for record in found.get(name, []):
            issued = document_date(record.get(hold.date_field))
            try:
                until = retention_end(issued, statute) if issued is not None else None
            except ValueError:  # past the calendar's year 9999
                until = None
            if until is None:
                # Skipping it (as before) deleted the customer an invoice of it names, which the
                # statute keeps: a record whose hold cannot be worked out stops the erasure.
                raise UnreadAnswer(f"has a record of {name} whose `{hold.date_field}` is no date the "
                                   f"{hold.statute} hold can run from")
            if until >= today:
                held.setdefault(name, {})[str(record.get(dataset.key))] = (until, hold.statute)
    for name, dataset in config.datasets.items():
        hold = dataset.hold
        if hold is None or not hold.through:
            continue
        for child in hold.through:
            parent_field = config.datasets[child].parent_field or ""
            child_key = config.datasets[child].key
            kept = held.get(child, {})
            for record in found.get(child, []):
                entry = kept.get(str(record.get(child_key)))
                parent = _reference(record.get(parent_field))
                if entry is None or parent is None:
                    continue
                current = held.setdefault(name, {}).get(parent)
                if current is None or entry[0] > current[0]:
                    held[name][parent] = (entry[0], hold.statute)
    return held


def held_records(held: dict[str, dict[str, tuple[date, str]]]) -> list[HeldRecord]:
    return [HeldRecord(dataset=dataset, key=key, hold_kind="statutory", hold_ref=statute, until=until)
            for dataset, rows in held.items() for key, (until, statute) in rows.items()]
