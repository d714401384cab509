"""What a staff alert's detail names, in the staff's words: a workflow's step, a system task's
action, and the sentences of the detail itself (templates/letters/_staff_alert_detail.txt.j2).

The workflows and the sweeps pass an alert's facts as codes and data (`facts`: what happened,
the step, the systems' policy ids, counts, the error a processor or the relay gave); the letter
says them in the staff language, naming a step by its label and a system by the policy's. Older
workflows pass the detail as an English sentence (`detail`), which the letter still prints.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from dsrflow.i18n import N_, Translator
from schemas.plain_text import one_line, without_addresses

# How much of a processor's or the relay's error an alert quotes: enough to tell one failure from
# another. A processor's error page of 100 kB was quoted whole, then the detail cut at 2,000
# characters, so what staff can do, said after it, never reached them.
QUOTED_CHARS = 500
# An older workflow's detail: the whole sentence it passed, as before.
DETAIL_CHARS = 2000

# What each step a workflow supervises does (the activities behind workflows/dsr_steps.py
# `run_step`), as staff read it in "A step of the request failed: ...".
STEP_LABELS = {
    "send_letter": N_("sending a letter"),
    "record_event": N_("recording an event in the request's audit trail"),
    "transition": N_("recording the request's new status"),
    "prepare_request": N_("registering the request (its deadlines and its acknowledgement)"),
    "plan_request": N_("planning the work in each system"),
    "apply_extension": N_("recording the extension of the deadline"),
    "start_clock_at_verification": N_("counting the deadline from the day the identity was verified"),
    "build_package": N_("building the access package"),
    "confirm_at_once": N_("reading our own systems for the simplified confirmation"),
    "issue_verification": N_("sending a verification code"),
    "settle_verification_round": N_("settling a verification e-mail"),
    "settle_skipped_letter": N_("settling a letter recorded as sent by other means"),
    "record_task_result": N_("recording a system's result"),
    "record_restriction": N_("recording the restriction in force"),
    "announce_restriction_lift": N_("recording the decision to lift the restriction"),
    "record_restriction_lifted": N_("recording the restriction's lift"),
    "run_system_action": N_("carrying out a system's action"),
    "poll_system_action": N_("asking a processor how its work stands"),
    "claim_appeal_decision": N_("checking that no other appeal of the same refusal is being decided"),
}

# `send_letter`, by the letter it sends (its purpose, schemas/vocabulary.py PURPOSES).
LETTER_STEP_LABELS = {
    "acknowledgement": N_("sending the acknowledgement"),
    "verification": N_("sending the verification code and link"),
    "reminder": N_("sending the verification reminder"),
    "simplified_confirmation": N_("sending the simplified confirmation (LGPD Art. 19, I)"),
    "extension": N_("sending the extension notice"),
    "complaint_progress": N_("sending the progress letter on a complaint"),
    "response": N_("sending the response"),
    "denial": N_("sending the denial letter"),
    "closed_unverified": N_("sending the closing notice (identity not verified)"),
    "cancellation": N_("sending the cancellation letter"),
    "restriction_lift": N_("sending the notice of the restriction's lift"),
    "staff_alert": N_("sending an alert to staff"),
}

# A system task's action: the plan's (activities/fanout.py ACTIONS) or, for a package's read, the
# request's type.
ACTION_LABELS = {
    "access": N_("access"), "portability": N_("portability"),
    "erase": N_("erasure"), "erasure": N_("erasure"),
    "rectify": N_("rectification"), "rectification": N_("rectification"),
    "restrict": N_("restriction"), "restriction": N_("restriction"),
    "object": N_("objection"), "objection": N_("objection"),
    "lift_restriction": N_("restriction lift"),
}

# What an alert's facts may say happened (`facts["what"]`): each is a branch of the template.
FACTS = ("step_failed", "deadline", "task_stuck", "approval", "objection", "deferred_failed",
         "workflow_ended", "still_stopped", "workflow_failing", "package_unreadable", "lift_by_hand",
         "lift_superseded",
         "call_off_by_hand", "acted_after_call_off", "call_off_settled")

_LETTER = " letter"  # workflows/dsr_steps.py `step_about`: "<purpose, spaced> letter"


def alert_about(params: Mapping[str, Any]) -> dict[str, str]:
    """What a staff alert was about, for its `letter.sent` event (activities/letters.py
    `letter_recorder`): its facts' `what` and the system they name (a policy id), nothing of the
    subject. The timeline read "Letter sent (alert to staff)" of every alert, whichever it was
    (api/read_models/event_words.py `alert_words`). An older workflow's alert, a sentence
    (`detail`) with no facts, has none."""
    facts = params.get("facts")
    what, system = (facts.get("what"), facts.get("system")) if isinstance(facts, Mapping) else (None, None)
    if what not in FACTS:
        return {}
    return {"about": str(what), **({"about_system": system} if isinstance(system, str) else {})}


def step_label(step: str, about: str | None = None, *, t: Translator) -> str:
    """The step in words: "sending the denial letter" for `send_letter` about a "denial letter"
    (StepTrouble.about), a step's own label otherwise; an unknown step by its name."""
    if step == "send_letter" and about and about.endswith(_LETTER):
        purpose = about.removesuffix(_LETTER).replace(" ", "_")
        if purpose in LETTER_STEP_LABELS:
            return t.gettext(LETTER_STEP_LABELS[purpose])
    return t.gettext(STEP_LABELS[step]) if step in STEP_LABELS else step


def action_label(action: str, *, t: Translator) -> str:
    return t.gettext(ACTION_LABELS[action]) if action in ACTION_LABELS else action.replace("_", " ")


def named(ids: list[str], names: dict[str, Any]) -> list[str]:
    """The systems by the policy's labels (`names`: id to label), an id the policy no longer has
    by itself."""
    return [str(names.get(system, system)) for system in ids]


def quoted(text: str, subject: Mapping[str, Any] | None, limit: int = QUOTED_CHARS) -> str:
    """Words someone else wrote (a processor's or the relay's error, an older workflow's detail)
    as a staff alert quotes them: on one line, without the subject's name or e-mail address (as
    written in any case, or encoded in a URL: a processor echoing its lookup, "no contact
    Ada%20Lovelace") nor any other address, and cut to `limit` characters. Staff alerts carry no
    personal data of the subject."""
    text = one_line(text)
    for field, value in (subject or {}).items():
        if isinstance(value, str) and len(value.strip()) >= 2:
            text = _identity_forms(value).sub("<address>" if field == "email" else "<name>", text)
    text = without_addresses(text)
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def _identity_forms(value: str) -> re.Pattern[str]:
    """`value` as written (any spacing), or URL-encoded, as a whole: "Ann" is not in "Annual"."""
    words = value.split()
    forms = sorted({quote(value, safe=""), quote_plus(value), value}, key=len, reverse=True)
    either = "|".join([r"\s+".join(map(re.escape, words)), *map(re.escape, forms)])
    return re.compile(rf"(?<!\w)(?:{either})(?!\w)", re.IGNORECASE)
