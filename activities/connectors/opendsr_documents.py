"""Reading what an OpenDSR processor answers: a status document's outcome, an access export's
datasets. Pure functions over parsed JSON, shared by the connector and the callback endpoint; and
the id each job carries (`subject_request_id`), which the call-off derives too."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

from activities.connectors.base import ActionOutcome, PermanentConnectorError, TaskStatus
from schemas.plain_text import entry_segment, shown_line
from schemas.workflow import TASK_COUNT_MAX

# Fixed forever: changing it would give retried requests new ids, and so second jobs.
_ID_NAMESPACE = uuid.UUID("5b1f8a8e-3d4c-4f53-9a51-0d5f0c2e7a11")


def subject_request_id(request_id: str, system_name: str, action: str, attempt: int = 1) -> str:
    """The OpenDSR subject_request_id for one action of one request in one system, per attempt.

    Name-based (a UUID v5 digest) so retries are idempotent, but carrying the version-4 bits:
    the specification requires v4 ids and strict processors check them. A staff retry (attempt 2
    on) is a new job: asked with the first id, the processor would answer with the job it
    cancelled or failed. The first attempt keeps the id it always had.
    """
    name = f"{request_id}/{system_name}/{action}" + (f"/attempt-{attempt}" if attempt > 1 else "")
    digest = uuid.uuid5(_ID_NAMESPACE, name)
    return str(uuid.UUID(bytes=digest.bytes, version=4))


_STATUS: dict[str, TaskStatus] = {
    "pending": "pending",
    "in_progress": "pending",
    "completed": "done",
    "cancelled": "needs_attention",
}


# An RFC 3339 time is 20 to 35 characters; anything longer is not one.
_TIME_MAX = 40


def completion_time(value: Any) -> dt.datetime | None:
    """A processor's `expected_completion_time` when it is an RFC 3339 time (with its offset), in
    UTC; None when absent or anything else. Only the time read is ever shown: the text is the
    processor's, and went whole into the task's message (its row, the evidence pack), a script
    tag, a right-to-left override or a megabyte of it."""
    if not isinstance(value, str) or len(value) > _TIME_MAX:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
        return when.astimezone(dt.UTC) if when.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved past the calendar
        return None


def seconds_until(when: dt.datetime | None) -> int | None:
    """Whole seconds from now to `when` (0 if past); None without one."""
    if when is None:
        return None
    return max(0, int((when - dt.datetime.now(dt.UTC)).total_seconds()))


def whole_count(value: Any) -> int | None:
    """A count a processor states, when it is one a task can keep: a whole number from 0 to
    TASK_COUNT_MAX (system_tasks' counts are PostgreSQL integers). A processor's answer is input
    like any other; anything else counts as not stated."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TASK_COUNT_MAX:
        return None
    return value


def reported_count(document: dict[str, Any]) -> int | None:
    """A status document's `results_count` when it is a count (`whole_count`)."""
    return whole_count(document.get("results_count"))


def unsubscribed_counts(answer: Any) -> tuple[int, int]:
    """(matched, unsubscribed) from a processor's answer to the `unsubscribe` extension: counts (0
    where it leaves one out), at most as many unsubscribed as matched. Anything else is refused
    (ValueError naming the field): a negative count was recorded as "-3 found", and one past
    PostgreSQL's integers, or a word, failed the task with the database's or Python's message."""
    counts = answer if isinstance(answer, dict) else {"matched": None}
    matched, unsubscribed = (whole_count(counts.get(name, 0)) for name in ("matched", "unsubscribed"))
    for name, count in (("matched", matched), ("unsubscribed", unsubscribed)):
        if count is None:
            raise ValueError(f"{name} must be a whole number from 0 to {TASK_COUNT_MAX}")
    assert matched is not None and unsubscribed is not None
    if unsubscribed > matched:
        raise ValueError("unsubscribed must not be more than matched")
    return matched, unsubscribed


# What a path in a message may hold as it is (RFC 3986's pchar, and the separator and escapes).
_PATH_CHARACTERS = "/%-._~!$&'()*+,;=:@"
_PATH_SHOWN = 100


def shown_path(url: str) -> str:
    """A URL's path as a message names it. A results_url is the processor's text: anything a
    path does not hold as it is (a tag, a right-to-left override, a line break) is %-escaped, and
    a long one cut as any name from outside is (`shown_line`), before it reaches the request's
    page, a staff alert or the audit trail."""
    return shown_line(quote(urlsplit(url).path, safe=_PATH_CHARACTERS), _PATH_SHOWN)


def outcome_from_status(document: dict[str, Any]) -> ActionOutcome:
    """An ActionOutcome from a status response or (verified) callback body."""
    state = document.get("request_status")
    status = _STATUS.get(state, "needs_attention") if isinstance(state, str) else "needs_attention"
    count = reported_count(document) or 0
    message = None
    if state == "cancelled":
        message = "the processor reports the request as cancelled"
    elif status == "needs_attention":
        message = "the processor reported an unknown request status"
    return ActionOutcome(
        status=status,
        # Only erasure is followed through status/callbacks: its count is what was erased.
        found=count if status == "done" else 0,
        changed=count if status == "done" else 0,
        external_id=document.get("subject_request_id"),
        message=message,
    )


# The longest dataset name kept: it names the dataset's files in the package (as
# schemas/plain_text.py `entry_segment` cuts them) and its row in the package's summary.
DATASET_NAME_MAX = 100


def datasets_of(results: Any) -> list[tuple[str, list[Any]]]:
    """Results as (dataset, records), from a list of {name, records} or a plain
    {dataset: [records]} mapping. Where the records come from is the controller's call,
    made in the policy (`origins`), not the processor's.

    Each name is the processor's, as the subject reads it (`shown_line`: no control characters,
    no marks that reorder it, short), and datasets whose names would give the same file in the
    package are one: two entries of one name in a zip, and the subject unpacking it keeps one.

    Records that are not a list of objects are refused (PermanentConnectorError: the package is
    held back and staff are told which dataset), never skipped: a package without them would tell
    the subject it holds all the processor has. Before, a number failed every attempt with a
    TypeError and anything else was dropped without a word."""
    datasets = results.get("datasets") if isinstance(results, dict) else None
    if isinstance(datasets, list):
        named = [(d.get("name"), d.get("records")) for d in datasets if isinstance(d, dict) and d.get("name")]
    elif isinstance(datasets, dict):
        named = list(datasets.items())
    else:
        return []
    merged: dict[str, tuple[str, list[Any]]] = {}
    for name, records in named:
        shown = shown_line(str(name), DATASET_NAME_MAX) or "_"
        if records is not None and not (isinstance(records, list) and all(isinstance(r, dict) for r in records)):
            raise PermanentConnectorError(
                f"the processor's results for dataset {shown!r} are not a list of records (objects)")
        merged.setdefault(entry_segment(shown), (shown, []))[1].extend(records or [])
    return list(merged.values())
