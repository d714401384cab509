"""The timeline's line for each event of the trail (`describe_event`): its words
(api/read_models/event_types.py `EVENT_WORDS`) and the detail that matters most beside them. One
function for the console's timeline and the evidence pack's audit table, so the two say the same."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from api.read_models.event_types import CALL_OFF_WORDS, EVENT_WORDS
from api.read_models.event_words import (
    action_words,
    alert_words,
    day_words,
    ended_words,
    ground_words,
    made_before_stopping,
    method_words,
    purpose_words,
    status_words,
    step_words,
)
from dsrflow.domain.references import short_reference
from dsrflow.i18n import SOURCE_LANGUAGE, in_law_words, long_datetime
from schemas.workflow import RUNS_AFTER_CLOSE


def _kept_by(data: Mapping[str, Any], regime: str | None) -> str | None:
    """What a restriction kept from which erasure: the retention schedule's rule (its code in the
    trail: "retention rule web_logs") or an erasure a hold had deferred (a deletion, where the
    request's law `deletes`)."""
    if "by" not in data:
        return None
    by = (f"the retention rule “{str(data['rule']).replace('_', ' ')}”" if data.get("rule")
          else in_law_words("an erasure a hold had deferred", regime) if data["by"] == "deferred erasure" else str(data["by"]))
    return f"{data['records']} record(s), from {by}" if "records" in data else f"from {by}"


def _told_late(data: Mapping[str, Any], system: str | None) -> str:
    """How a processor's answer reached its task through the start sweep
    (activities/request_start_sweep.py): which answer, and how long it had waited."""
    answer = (f"its signed callback saying {status_words(str(data.get('status')))}" if data.get("via") == "callback"
              else "its answer on its link")
    minutes = data.get("minutes_untold")
    return (f"{system or 'the processor'}: {answer} had waited {minutes} minute{'' if minutes == 1 else 's'} "
            "for the task; the API recorded it but did not tell the task (it stopped, or lost Temporal)")


def _asked(data: Mapping[str, Any], system: str | None, regime: str | None) -> str | None:
    """Which processor an e-mail asked (activities/connectors/manual_email.py), and to do what (in
    the words of the request's law: "to delete")."""
    return system and (f"{system}, to {in_law_words(action_words(data['action']), regime)}" if data.get("action")
                       else system)


def _moment(value: Any, language: str, timezone: str) -> str:
    """A moment the trail holds as an ISO string, written as the pages write one (the
    `controller_time` filter): in `language`, on the clock of `timezone`, the zone named. Its
    first ten characters were its UTC day: a freeze from 00:30 in Brussels read as the day before."""
    try:
        return long_datetime(datetime.fromisoformat(str(value)), language, timezone)
    except ValueError:
        return str(value)


def _verified(data: Mapping[str, Any]) -> str | None:
    """How the identity was confirmed; after a lock, by the latest e-mail's link (LINK_OUTLIVES_LOCK)."""
    method = method_words(data.get("method"))
    return f"{method}, after the typed codes were locked" if method and data.get("after_lock") else method


_HELD_BY = ("restriction.lift_held", "restriction.lift_released")


def _held_lift(kind: str, data: Mapping[str, Any], system: str | None,
               systems: Mapping[str, str] | None) -> str | None:
    """A restriction's lift where another restriction of the subject held a system
    (activities/restrictions.py `lift_held_by`, activities/held_lifts.py); None for any other
    event. Asked apart from `describe_event`'s table, whose every line is worked out for every
    event: another event's `by` or `held` is no restriction's."""
    by = short_reference(str(data["by"])) if kind in _HELD_BY and data.get("by") else None
    if kind == "restriction.lift_held" and by:
        return (f"{system}: restricted again: restriction {by} started while this lift ran" if data.get("lifted_before")
                else f"{system}: restriction {by}")
    if kind == "restriction.lift_released" and by:
        ended = f"restriction {by} ended without coming into force there"
        failed = f" (it failed the lift for a day: {data['failed']})" if data.get("failed") else ""
        return {"needs_attention": f"{system}: tell it the restriction has ended: {ended}{failed}",
                # The system holds nothing of the subject's (activities/held_lifts.py): no lift to make.
                "not_found": f"{system}: nothing of the subject's there to lift once {ended}",
                }.get(str(data.get("status")), f"{system}: lifted once {ended}")
    if kind == "restriction.lift_superseded":  # activities/lift_superseded.py
        told = [f"staff alerted not to lift it for {', '.join(map(short_reference, data['staff']))}"
                if data.get("staff") else None,
                f"this restriction's e-mail supersedes the lift e-mailed for {', '.join(map(short_reference, data['emailed']))}"
                if data.get("emailed") else None]
        return f"{system}: " + "; ".join(t for t in told if t)
    if kind == "restriction.lift_release_failing":
        return f"{system}: {data.get('error')}; the sweep tries again, and asks staff if it still fails a day later"
    if kind == "restriction.lifted" and data.get("held"):
        return "still restricted in " + ", ".join((systems or {}).get(s, s) for s in data["held"])
    return None


def _told_of_dispute(data: Mapping[str, Any]) -> str:
    """Whom staff told of a subject's dispute of accuracy (dsrflow/stores/accuracy_disputes.py), by
    the names the policy version gave them when it was recorded, and how (the note as written);
    or that none had received the contested data. Names are parted by semicolons: they hold commas."""
    if data.get("none_to_tell"):
        words = "No recipient to tell of the dispute: none had received the contested data"
    else:
        names = "; ".join(str(name) for name in data.get("names") or [])
        words = f"{EVENT_WORDS['dispute.recipients_told']}: {names}" if names else EVENT_WORDS["dispute.recipients_told"]
    return f"{words} ({data['note']})" if data.get("note") else words


# workflows/restriction_lifecycle.py `_lift_again`: a lift's task run again by the workflow itself,
# once, at a system its restriction reached after the lift's tasks had begun. "Task retried" by
# "workflow" said neither what nor why.
_LIFT_AGAIN = "Lift run again, by the workflow"
_LIFT_AGAIN_WHY = ("the restriction reached it after the lift had begun there, so that lift may have come first; "
                   "it may be restricted there until this run ends")


# How a task's record begins when its request's close ended it: its call-off
# (activities/connectors/opendsr_calloff.py), a processor asked by e-mail that had not confirmed
# (activities/connectors/manual_email.py `_withdraw`); what its line says then.
_ENDED_AT_CLOSE = {"called off:": "task ended: its job called off at the processor",
                   "not called off:": "task needs attention: its job could not be called off",
                   "not answered:": "task ended: the request closed before the processor confirmed"}


def lifted_again(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The systems whose lift the workflow ran again (`_LIFT_AGAIN`) in a request's trail."""
    return sorted({str((e["data"] or {}).get("system")) for e in events if e["event_type"] == "task.retried"
                   and e.get("actor") == "workflow" and (e["data"] or {}).get("action") == RUNS_AFTER_CLOSE})


def own_systems(deferred: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The systems of a request's deferred erasures that are our own (the pack's `own_system`, the
    connector its policy version gives them): a retry recorded before its event carried `own_system`
    is told by them, with no query of its own."""
    rows = [(str(r["system"]), bool(r.get("own_system"))) for r in deferred]
    return frozenset(system for system, _ in rows) - {system for system, own in rows if not own}


def _per_system(counts: Any, systems: Mapping[str, str] | None, regime: str | None) -> str | None:
    """What a legal-claims hold kept and the close called off, per system (dsrflow/stores/deferred_store.py
    `call_off_deferred`): the hold's release erases none of it (a statute's records are not called
    off, and are still erased at their period's end)."""
    if not isinstance(counts, Mapping) or not counts:
        return None
    kept = ", ".join(f"{(systems or {}).get(s, s)}: {n} record(s)" for s, n in counts.items())
    # Whether they are still restricted is the Holds section's (a processor kept whole holds no mark).
    return in_law_words(f"{kept}: not erased when the hold is released", regime)


_KEPT_BY = {"statutory": "a statute, its period ended", "legal_claims": "a legal-claims hold, released"}


def _deferred_erased(system: str, data: Mapping[str, Any]) -> str:
    """What a hold had kept, erased in our own system at its end (activities/deferred.py `_done`)."""
    what = "its data of the subject" if data.get("kept_whole") else f"{data.get('records')} record(s)"
    by = " and ".join(_KEPT_BY.get(k, str(k)) for k in data.get("kept_by") or ())
    return f"{system}: {what}" + (f", kept by {by}" if by else "")


def describe_event(event: Mapping[str, Any], names: Mapping[str, str] | None = None,
                   systems: Mapping[str, str] | None = None, *, language: str = SOURCE_LANGUAGE,
                   timezone: str = "UTC", regime: str | None = None, lifted_again: Sequence[str] = (),
                   own_systems: Collection[str] = ()) -> str:
    """One line for the timeline; the details that matter most beside the words (`names`: staff
    by actor and by `token:<id>`, for an assignment's assignee; `systems`: the systems' labels).
    The words are English, as the console's; a day or a moment in them is written as the page
    writes its own, in its `language` and its request's `timezone` (its policy version's); an erasure
    and a rectification are named in the words of the request's law (`regime`: `in_law_words`, a
    deletion under the CCPA), never what someone wrote (a note, a reason, a processor's answer).
    `lifted_again`: the systems whose lift the workflow ran again after it recorded the lift
    (`lifted_again`, from the whole trail), for the lift's own line. `own_systems`: its deferred
    erasures' systems that are ours (`own_systems`), for a retry whose event does not say."""
    kind, data = event["event_type"], event["data"] or {}
    if kind == "dispute.recipients_told":
        return _told_of_dispute(data)
    system = (systems or {}).get(data.get("system", ""), data.get("system"))
    words = EVENT_WORDS.get(kind)
    if kind.startswith("status."):
        words = f"Status: {status_words(kind.removeprefix('status.'))}"
    elif kind.startswith("deadline.due_in_"):
        words = f"Deadline warning: {kind.removeprefix('deadline.due_in_').replace('_', ' ')} left"
    elif kind == "verification.failed" and (data.get("earlier_link") or data.get("earlier_code")):
        # The link or code of an e-mail a newer code replaced (workflows/verification.py
        # EARLIER_LINK, EARLIER_CODE): no attempt counted.
        words = f"Refused: an earlier e-mail's {'link' if data.get('earlier_link') else 'code'}"
    elif kind == "restriction.lifted" and data.get("held"):
        words = "Restriction lifted, but where another restriction of the subject is in force"
    elif kind == "restriction.lifted" and lifted_again:
        # The lift's task ran again after this record (`_LIFT_AGAIN`): until it ended, those
        # systems may still have restricted the data, which "in every system" denied.
        words = "Restriction lifted, except where it came into force after the lift began: lifted again there"
    elif kind == "erasure.deferred_retried" and data.get("own_system", data.get("system") in own_systems):
        # Our own system's (dsrflow/stores/deferred_store.py `retry_deferred`): no processor was asked.
        # An event recorded before it carried `own_system` (or a processor's, which leaves it out)
        # is told by the system's connector in the request's policy version.
        words = "Deferred erasure asked again by staff: the sweep erases it in our own system"
    elif kind == "task.needs_attention" and str(data.get("message") or "").startswith(tuple(_ENDED_AT_CLOSE)):
        # Ended by the close (its call-off, or a processor asked by e-mail that had not answered):
        # "needs attention" alone read as work still to do for a job the processor had cancelled.
        words = next(f"{system} {said}" for start, said in _ENDED_AT_CLOSE.items() if data["message"].startswith(start))
    elif kind.startswith("task."):
        # A lift's task named apart from the restriction's: on a restriction's trail both read
        # "<system> task done", and which had ended (restricted, or lifted) was not said.
        lift = " lift" if data.get("action") == RUNS_AFTER_CLOSE else ""
        words = words or f"{system or 'system'}{lift} task {kind.removeprefix('task.').replace('_', ' ')}"
    # An event this table does not name yet still reads as words, never as `access.not_automated`.
    words = in_law_words(words or kind.replace(".", " ").replace("_", " ").capitalize(), regime)
    held = _held_lift(kind, data, system, systems)
    if held is None and kind == "restriction.lifted" and lifted_again:
        held = ", ".join((systems or {}).get(s, s) for s in lifted_again)
    detail = {
        "letter.sent": ((alert_words(data, systems) or purpose_words(data.get("purpose")))
                        if data.get("purpose") else None),
        "letter.refused": (f"{alert_words(data, systems) or purpose_words(data.get('purpose'))}: {data.get('reply')}"
                           if data.get("purpose") else None),
        "letter.skip_settled": (f"{purpose_words(data.get('purpose'))}: "
                                + ("it had gone out after all" if data.get("went") else "withdrawn, it never goes")
                                if "went" in data else None),
        "verification.succeeded": _verified(data),
        # What a lock stops (workflows/verification.py LINK_OUTLIVES_LOCK; `{}` before it, the link too).
        "verification.locked": ("typed codes locked until a new code is sent; the link in the subject's latest "
                                "e-mail still confirms" if data.get("refuses") == "codes" else None),
        "verification.failed": (("no attempt counted: " if data.get("earlier_link") or data.get("earlier_code") else "")
                                + f"{data.get('attempts_left')} attempt(s) left" if "attempts_left" in data else None),
        "deadline.extended": (f"{day_words(data.get('from'), language)} → {day_words(data.get('to'), language)}: "
                              f"{data.get('reason')}"),
        "deadline.clock_started": "received {}, verified {}: due {} → {}, could extend to {} → {}".format(*(
            day_words(data.get(k), language) for k in ("received_on", "verified_on", "from", "to", "extended_from",
                                                       "extended_to"))),
        "task.retried": system, "task.resolved": system,
        # What a task's run had changed before it stopped (activities/task_results.py, migration 0049).
        "task.partial_effect": f"{system}: {made_before_stopping(data.get('counted'), data.get('unsure'))}",
        # Which processor, and what it answered: the lines read "Processor confirmed by e-mail link"
        # alone, and the actor beside them is a code (`processor:email_marketing`).
        "processor.asked": _asked(data, system, regime), "processor.reminded": _asked(data, system, regime),
        # Told not to do what it had been asked (the e-mail's `action`), not asked to do it.
        "processor.withdrawn": system and (f"{system}, which had been asked to "
                                           f"{in_law_words(action_words(data['action']), regime)}"
                                           if data.get("action") else system),
        "processor.confirmed": system, "processor_export.purged": system,
        # What the processor answered the call-off (activities/connectors/opendsr_calloff.py).
        "processor.called_off": system and f"{system}: {CALL_OFF_WORDS.get(str(data.get('outcome')), 'no answer')}",
        "processor.acted_after_call_off": system and f"{system}: it acted on the request closed unanswered" + (
            f", {data['results_count']} record(s)" if "results_count" in data else ""),
        "processor.callback": system and f"{system}: {status_words(str(data.get('status')))}" + (
            f", {data['results_count']} record(s)" if "results_count" in data else ""),
        # Once per job, however many such callbacks came (api/callbacks/opendsr.py).
        "processor.callback_went_back": system and (f"{system}: {status_words(str(data.get('status')))} after "
                                                    f"{status_words(str(data.get('after')))}; later ones not listed"),
        "processor.export_received": system and (f"{system}: it holds no data of the subject" if data.get("no_data")
                                                 else f"{system}: {data.get('files')} file(s)"),
        **{f"erasure.deferred_{what}": system for what in ("submitted", "confirmed", "failed", "retried", "settled")},
        "step.failed": f"{in_law_words(step_words(data.get('step'), data.get('about')), regime)}: {data.get('message')}",
        "step.resolved": f"{in_law_words(step_words(data.get('step'), data.get('about')), regime)}: "
                         f"{data.get('resolution')}",
        "status.denied": ground_words(data.get("reason_code")), "status.cancelled": data.get("reason"),
        "restriction.lift_requested": data.get("reason"),
        # How, as staff wrote it; and whether a newer restriction had already told them not to
        # (dsrflow/stores/lifts_by_hand.py `after_restriction`): then the system is restricted again.
        # There the note is quoted, so the words after it read right whatever it ends with (a full
        # stop read "...is off.; after restriction").
        "restriction.lifted_by_hand": system and (
            f"{system}: “{data.get('note')}”; after restriction {short_reference(str(data['after_restriction']))} "
            f"restricted it there since {_moment(data.get('restricted_since'), language, timezone)}: "
            "staff to restrict it there again" if data.get("after_restriction") else f"{system}: {data.get('note')}"),
        "complaint.progress_told": data.get("note"),  # as the letter quotes it
        "dispute.recorded": data.get("statement"),  # as the subject wrote it
        # An appeal's (a complaint's) grant: its reasons as the response letter quotes them; the note stays out.
        "approval.granted": data.get("explanation") and f"reasons told to the subject: {data['explanation']}",
        "suppression.lifted": data.get("consent"),  # how the subject consented again, as staff recorded it
        "restriction.kept_from_erasure": _kept_by(data, regime),
        # Which system (activities/restrictions.py `_reached_late`): the line named none.
        "restriction.reached": system and f"{system}: its task, left running at the close, restricted the data there",
        "erasure.deferred_called_off": _per_system(data.get("systems"), systems, regime),
        "erasure.called_off_unrestricted": system and f"{system}: {data.get('records')} record(s)",
        "erasure.deferred_erased": system and _deferred_erased(system, data),
        "staff.assigned": (names or {}).get(f"token:{data.get('assignee')}", "a colleague"),
        "request.start_swept": f"{data.get('minutes_since_stored')} minutes after it was stored",
        "processor.answer_told_late": _told_late(data, system),
        "request.workflow_ended": f"it had {ended_words(data.get('ended'))}",
        "request.workflow_recovered": f"frozen since {_moment(data.get('failing_since'), language, timezone)}",
        "request.workflow_failing": (f"{data.get('attempts')} attempts; sealed with key {data['unheld_key']!r}, "
                                     "which this deployment no longer holds" if data.get("unheld_key")
                                     else f"{data.get('attempts')} attempts; the worker's log names the error"),
        "request.resumed": f"it had {ended_words(data.get('ended'))}: {data.get('reason')}",
    }.get(kind) if held is None else held
    if kind == "task.retried" and event.get("actor") == "workflow" and data.get("action") == RUNS_AFTER_CLOSE:
        words, detail = _LIFT_AGAIN, f"{system}: {_LIFT_AGAIN_WHY}"
    if detail is None and kind.startswith("task.") and data.get("partial_changed"):
        # A result other than the run's own success, beside what its run had changed (0049).
        detail = f"{system}: {made_before_stopping(data['partial_changed'])}"
    return f"{words} ({detail})" if detail else words
