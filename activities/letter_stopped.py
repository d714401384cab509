"""What a letter tells the subject of a system whose task ended without success after its run had
changed part of what it was asked to: its retries ran out, staff resolved it by hand, or the request
was withdrawn or cancelled while it ran. The task's record keeps the changes its http run's journal
counted (`system_tasks.partial_changed`, activities/task_results.py and migration 0049); before,
the letters said nothing of them, as if nothing had been changed there."""

from __future__ import annotations

from typing import Any, NamedTuple

from activities.letter_systems import system_where
from dsrflow.i18n import Translator
from policy.model import Policy

# The request's tasks whose run changed something before the task stopped, or was changing it as
# its request closed, as [[system, changes, status, unsure], ...] (`unsure`: changes on the wire at
# the close whose answer is not on record, migration 0052): an SQL expression over the request's
# row `r`, read with it (activities/letters.py `_deliver`), in the letter's one round trip rather
# than a second (BENCHMARKS.md, B1: a response letter per erasure).
STOPPED_RUNS = """(SELECT coalesce(jsonb_agg(jsonb_build_array(system, coalesce(partial_changed, 0), status,
                                                             coalesce(partial_unsure, 0)) ORDER BY system, action),
                            '[]')
                     FROM system_tasks WHERE request_id = r.id AND (partial_changed > 0 OR partial_unsure > 0))"""


# The request's systems whose task is done and changed something, as a JSON list: what a closing
# letter names as acted on (a try that ended after the close, its last change sent before it, is
# among them though the workflow's `acted_in`, worked out at the close, is not), read likewise.
DONE_SYSTEMS = """(SELECT coalesce(jsonb_agg(system ORDER BY system), '[]') FROM system_tasks
                     WHERE request_id = r.id AND status = 'done' AND changed > 0)"""


def done_so_far(params: dict[str, Any], row: dict[str, Any]) -> tuple[list[str], list[str]]:
    """A closing letter's systems acted on and still asked: the workflow's `acted_in` and
    `asked_in` at the close, with those whose task is done by the time the letter is written
    (DONE_SYSTEMS) acted on, no longer asked. Nor is one whose run the close stopped (STOPPED_RUNS,
    its task not pending): the workflow counts a run under way as asked, but an http run sends no
    change after its request's close (activities/connectors/http_journal.py), so it may not still
    act; its letter says what it had changed. A job at the processor (pending) may still act."""
    done = [s for s in row.get("done_systems") or [] if s not in params.get("acted_in", [])]
    stopped = {system for system, _, status, *_ in row.get("stopped_runs") or [] if status != "pending"}
    acted = [*params.get("acted_in", []), *done] if "acted_in" in params else []
    return acted, [s for s in params.get("asked_in", []) if s not in done and s not in stopped]


# The kinds of system whose job, still asked when its request closed unanswered, is called off there
# (an OpenDSR job cancelled: activities/connectors/opendsr_calloff.py; a processor asked by e-mail
# told the request is withdrawn: manual_email.py `_withdraw`): the letter says so, and that one
# which had begun may have acted. A SaaS job (http) is not. Nor is a restriction ever: it stays in
# force wherever it was carried out.
CALLED_OFF_KINDS = frozenset({"opendsr", "manual_email"})


def called_off(asked: list[str], row: dict[str, Any], policy: Policy) -> tuple[list[str], list[str]]:
    """A closing letter's systems still asked: (those that may still act, those being called off)."""
    kinds = {name: system.connector for name, system in policy.systems.items()}
    off = [] if row["request_type"] == "restriction" else [s for s in asked if kinds.get(s) in CALLED_OFF_KINDS]
    return [s for s in asked if s not in off], off


class Stopped(NamedTuple):
    system: str  # its id in the policy
    label: str
    changes: int
    by_staff: bool  # done since: staff completed it by hand
    # Changes on the wire as its request closed whose answer is not on record (a worker that died
    # with it, or a try that has not heard it yet): each may have been made, so `changes` is a least.
    unsure: int = 0


def stopped_runs(row: dict[str, Any], policy: Policy) -> list[Stopped]:
    """Each system whose run changed something before its task stopped, and how many changes: the
    request's `stopped_runs` (STOPPED_RUNS, read with it)."""
    return [Stopped(system, policy.system_label(system), changes,
                    status == "done", unsure[0] if unsure else 0)
            for system, changes, status, *unsure in row.get("stopped_runs") or []]


def stopped_sentence(stopped: Stopped, policy: Policy, t: Translator) -> str:
    """A closing letter's sentence for one such system (named after "work", `system_where`): what its
    run had made "at least" when a change of it was on the wire as the request closed, whose answer
    is not known (the service may have made it): the letter says no more than is known when it goes."""
    values = {"where": system_where(policy, stopped.system, t), "num": stopped.changes}
    if stopped.unsure and not stopped.changes:
        return t.gettext("Our automated work %(where)s stopped before it was finished, as it was making a "
                         "change to your records there; that change may have been made.") % values
    if stopped.unsure:
        return t.ngettext(
            "Our automated work %(where)s stopped before it was finished; by then it had made at least %(num)d "
            "change to your records there.",
            "Our automated work %(where)s stopped before it was finished; by then it had made at least %(num)d "
            "changes to your records there.", stopped.changes) % values
    return t.ngettext(
        "Our automated work %(where)s stopped before it was finished; by then it had made %(num)d change "
        "to your records there.",
        "Our automated work %(where)s stopped before it was finished; by then it had made %(num)d changes "
        "to your records there.", stopped.changes) % values


def stopped_actions(stopped: list[Stopped], t: Translator) -> list[dict[str, Any]]:
    """A response letter's lines for them, beside what the other systems did (its "What we erased" or
    "What we did" list, which said nothing had been done there). A task staff completed by hand says
    so: the response tells the request is complete, and "stopped" alone would say it was not."""
    return [{"system": s.label, "category": t.gettext("part of your data"),
             "action": t.gettext("changed by our automated work before it stopped; our staff completed the rest")
             if s.by_staff else t.gettext("changed before our work there stopped"),
             "records": s.changes, "unit": "change"} for s in stopped
            if s.changes]  # one whose only change is not known to have been made has nothing to count
