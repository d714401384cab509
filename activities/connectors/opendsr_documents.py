"""Reading what an OpenDSR processor answers: a status document's outcome, an access export's
datasets. Pure functions over parsed JSON, shared by the connector and the callback endpoint."""

from __future__ import annotations

import datetime as dt
from typing import Any

from activities.connectors.base import ActionOutcome, TaskStatus
from schemas.workflow import TASK_COUNT_MAX

_STATUS: dict[str, TaskStatus] = {
    "pending": "pending",
    "in_progress": "pending",
    "completed": "done",
    "cancelled": "needs_attention",
}


def seconds_until(moment: Any) -> int | None:
    """Whole seconds from now to an RFC 3339 time (0 if past); None when absent or unreadable."""
    try:
        when = dt.datetime.fromisoformat(str(moment))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0, int((when - dt.datetime.now(dt.UTC)).total_seconds()))


def reported_count(document: dict[str, Any]) -> int | None:
    """A status document's `results_count` when it is one: a whole number a task can keep. A
    processor's answer is input like any other; anything else counts as not stated."""
    count = document.get("results_count")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= TASK_COUNT_MAX:
        return None
    return count


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


def datasets_of(results: Any) -> list[tuple[str, list[Any]]]:
    """Results as (dataset, records), from a list of {name, records} or a plain
    {dataset: [records]} mapping. Where the records come from is the controller's call,
    made in the policy (`origins`), not the processor's."""
    datasets = results.get("datasets") if isinstance(results, dict) else None
    if isinstance(datasets, list):
        return [
            (str(d.get("name")), list(d.get("records") or []))
            for d in datasets if isinstance(d, dict) and d.get("name")
        ]
    if isinstance(datasets, dict):
        return [(str(k), list(v or [])) for k, v in datasets.items()]
    return []
