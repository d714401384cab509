"""The words staff read for each audit event type (the console's timeline, the evidence pack's
tables): one table for both places, beside the words of the other codes the trail records
(api/read_models/event_words.py). An event type this table does not name still reads as words
(api/read_models/event_lines.py)."""

EVENT_WORDS = {
    "request.created": "Request opened",
    "request.received": "Received; deadlines computed",
    "request.start_swept": "Started by the sweep: stored, but its start had been lost",
    "request.workflow_ended": "Stopped: its workflow ended before its work was done",
    "request.workflow_failing": "Frozen: its workflow fails each time it tries to carry on; staff alerted",
    "request.workflow_recovered": "Carries on: its workflow no longer fails",
    "request.resumed": "Resumed: its workflow carries on from where it stopped",
    "plan.created": "Plan made under the request's policy version",
    "verification.succeeded": "Identity verified",
    "verification.failed": "Wrong verification code",
    "verification.locked": "Verification locked after too many wrong codes",
    "verification.resent": "New verification code sent",
    "deadline.extended": "Deadline extended", "deadline.clock_started": "Deadline counted from identity verification",
    "deadline.overdue": "Due date passed",
    "letter.sent": "Letter sent",
    "letter.refused": "Letter refused for good by the mail relay",
    "letter.suppressed": "Letter not sent (retention request)",
    "letter.overtaken": "Progress letter not sent: the complaint was answered or closed first",
    # workflows/complaint_progress.py ProgressByHand: who (the event's actor) and their note.
    "complaint.progress_told": "Progress letter to the complainant, by staff",
    # dsrflow/stores/accuracy_disputes.py: the subject's statement, as staff recorded it.
    "dispute.recorded": "Subject's dispute of the accuracy of their data recorded",
    # ... and that its recipients were told of it (event_lines.py names them, and says the note).
    "dispute.recipients_told": "Recipients told of the dispute",
    "package.built": "Access package built",
    "package.downloaded": "Package downloaded by the subject",
    "processor.callback": "Processor reported back",
    "processor.callback_went_back": "Processor's callback not taken: it went back on a status on record",
    "processor.confirmed": "Processor confirmed by e-mail link",
    "processor.answer_told_late": "Processor's answer passed on to its task late, by the sweep",
    "processor.asked": "Processor asked by e-mail",
    "processor.reminded": "Processor reminded by e-mail",
    "processor.withdrawn": "Processor told by e-mail not to act: the request was closed",
    "processor.called_off": "Processor's job called off, its request closed",
    # activities/acted_after_call_off.py: a signed `completed` after the call-off's `cancelled`.
    "processor.acted_after_call_off": "Processor carried out a job after cancelling it at the call-off",
    "task.retried": "Task retried",
    "task.resolved": "Task resolved by staff",
    # An http run's changes its task's record kept when its request closed (migration 0049).
    "task.partial_effect": "Changes made before the task stopped, kept on record",
    "objection.decided": "Objection decided",
    "package.reviewed": "Package downloaded for review",
    "approval.granted": "Release approved",
    "step.failed": "A step failed",
    "step.resolved": "Failed step answered",
    "retention.applied": "Retention rule applied",
    "restriction.in_force": "Restriction in force",
    # A task left running at a part-way close restricted the data afterwards (workflows/restriction_lifecycle.py).
    "restriction.reached": "Restriction in force at one more system, reached after the close",
    "restriction.lift_requested": "Restriction lift decided; the subject is told first",
    "restriction.lifted": "Restriction lifted in every system",
    # activities/restrictions.py `lift_held_by` (another restriction of the subject, in force or under
    # way, holds it), activities/held_lifts.py (that one ended without restricting the system).
    "restriction.lift_held": "Lift left a system restricted: another restriction holds it there",
    "restriction.lift_released": "Lift carried out late: the restriction that held the system never came into force there",
    # activities/lift_superseded.py: told to staff (an alert) or to the processor (this restriction's e-mail).
    "restriction.lift_superseded": "Restriction supersedes a lift a person was asked to carry out at a system",
    "restriction.lift_release_failing": "Lift carried out late failed at a system: tried again, staff asked after a day",
    # dsrflow/stores/lifts_by_hand.py: staff record that they lifted a system the sweep handed them.
    "restriction.lifted_by_hand": "Lift carried out by hand by staff at a system the sweep could not lift",
    "restriction.kept_from_erasure": "Restricted records kept from an erasure",
    "mail.converted": "Opened from an e-mail to the privacy address",
    "mail.attached": "E-mail attached",
    "package.purged": "Access package deleted",
    "processor.export_received": "Processor's export received",
    "processor_export.purged": "Processor's export deleted",
    "legal_hold.placed": "Legal hold placed",
    "legal_hold.released": "Legal hold released",
    "suppression.lifted": "Taken off the direct-marketing list: the subject consented again",
    "mail.resent": "Letter sent again",
    "mail.unconfirmed": "Letter delivery not confirmed",
    "letter.skip_settled": "Skipped letter settled",
    "staff.assigned": "Assigned",
    "staff.unassigned": "Assignment removed",
    "staff.note_added": "Internal note added",
    # An erasure a hold deferred, at a processor asked once the hold ended (activities/deferred_processors.py).
    "erasure.deferred_submitted": "Processor asked to erase what a hold had kept",
    "erasure.deferred_confirmed": "Processor confirmed the deferred erasure",
    "erasure.deferred_failed": "Processor did not carry out the deferred erasure",
    "erasure.deferred_retried": "Processor asked again to carry out the deferred erasure",
    "erasure.deferred_settled": "Deferred erasure recorded as done by other means",
    # In our own systems, at the end of the statute's period or once the claim's hold is released (activities/deferred.py).
    "erasure.deferred_erased": "Erased what a hold had kept: its period ended or its claim was released",
    # The request closed unanswered: what a legal-claims hold kept is not erased when it ends (dsrflow/stores/deferred_store.py).
    "erasure.deferred_called_off": "Deferred erasure called off: the request was closed unanswered",
    # Its hold released, the restriction it set on them lifted (activities/called_off_marks.py).
    "erasure.called_off_unrestricted": "Records of the called-off erasure no longer restricted: the hold was released",
}

# What a processor answered when its job was called off at its request's close
# (activities/connectors/opendsr_calloff.py `OUTCOMES`).
CALL_OFF_WORDS = {
    "cancelled": "cancelled before it acted",
    "in_progress": "already under way, not cancelled: it may have acted",
    "completed": "already carried out: it acted",
    "refused": "refused while the job was pending: it may still act, and must be told by hand",
    "unreachable": "not reached: it may still act, and must be told by hand",
    # Its answer unsigned, about another job or refused, and its signed status not saying otherwise.
    "unverified": "its answer not taken as a cancellation: it may still act, and must be told by hand",
}
