"""What each system did, as the evidence pack tells it beyond its task row: why a task needed
staff, and who answered it (resolved with a note, or retried), read from the audit events; and what
an access or portability package holds per system, from its `package.built` event.

The task row keeps only its last outcome: a task staff resolved reads "resolved by staff: <note>",
without who did it, when, or what the system could not do. A package's row keeps its total only,
so a pack read as if only the processors asked by e-mail had been searched (the systems read into
the package have no task).
"""

from __future__ import annotations

from typing import Any

from api.read_models.event_words import task_status_words
from dsrflow.i18n import in_law_words
from schemas.dataset_split import split_datasets
from schemas.workflow import records_left

# What staff did to a task that needed them (workflows/task_fanout.py records both).
_STAFF_EVENTS = {"task.resolved": "resolved", "task.retried": "retried"}


def _task_of(events: list[dict[str, Any]], index: int, system: str) -> str | None:
    """The action of the task a staff event at `index` was about (a restriction's system has two
    tasks, the restriction's and the lift's): its own `action`, or, recorded before events named
    it, the next task event of its system."""
    if named := events[index]["data"].get("action"):
        return str(named)
    return next((e["data"].get("action") for e in events[index + 1:]
                 if e["event_type"].startswith("task.") and e["event_type"] not in _STAFF_EVENTS
                 and e["data"].get("system") == system), None)


def with_history(tasks: list[dict[str, Any]], events: list[dict[str, Any]], regime: str | None) -> list[dict[str, Any]]:
    """Each task row with `attention` (why it last needed staff, when) and `staff` (who resolved
    or retried it, when, and their note), and the words of `task_words` in `regime`'s law."""
    staff: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    attention: dict[tuple[str, str | None], dict[str, Any]] = {}
    for index, e in enumerate(events):
        system = e["data"].get("system")
        if e["event_type"] in _STAFF_EVENTS and system:
            staff.setdefault((system, _task_of(events, index, system)), []).append(
                {"what": _STAFF_EVENTS[e["event_type"]], "at": e["occurred_at"], "by": e["actor"],
                 "note": e["data"].get("note")})
        elif e["event_type"] == "task.needs_attention" and system:
            attention[(system, e["data"].get("action"))] = {"at": e["occurred_at"], "message": e["data"].get("message")}
    return [{**t, "attention": attention.get((t["system"], t["action"])),
             "staff": staff.get((t["system"], t["action"]), []), **task_words(t, regime)} for t in tasks]


def task_words(task: dict[str, Any], regime: str | None) -> dict[str, Any]:
    """What the pack's JSON and the REST API's results add to a task's recorded status: the records
    a correction left as an earlier erasure kept them (`uncorrected`), the status as the pages
    say it (`status_words`: such a correction's "not corrected", never "not found"), and for a
    correction, restriction or objection the datasets its letter names as acted on and as needing
    nothing, with their records (`as_told`: schemas/dataset_split.py; null for other tasks). The
    words are those of `regime`'s law: "kept as an earlier deletion left them" under the CCPA."""
    split = split_datasets(task["action"], task.get("datasets"))
    return {"uncorrected": records_left(task["action"], task.get("datasets")), "status_words": in_law_words(task_status_words(task), regime),
            "as_told": None if split is None else {"acted_on": split.acted, "records": split.records,
                                                   "needed_nothing": split.unneeded, "found": split.found}}


def with_contents(packages: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each package with what it holds per system (`systems`: records read; `processor_files`:
    files a processor sent; `missing`: a processor's export not in it, and why), as built."""
    built: dict[str, Any] = next((e["data"] for e in reversed(events) if e["event_type"] == "package.built"), {})
    return [{**p, "systems": built.get("systems") or {}, "processor_files": built.get("processor_files") or {},
             "missing": built.get("missing") or {}} for p in packages]
