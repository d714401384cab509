"""What the portal tells a subject of where their request stands: the status page's words, which
the verify page repeats for a request closed without a confirmation (api/public/portal.py,
api/public/portal_verify.py). One message a sentence, translated for the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from api.read_models.evidence_names import version_policy
from api.state import AppState
from dsrflow.domain.appeals_deferred import ended_undecided
from dsrflow.domain.deadlines import reconsiders
from dsrflow.domain.references import short_reference
from dsrflow.i18n import N_, Translator
from dsrflow.stores.requests_store import decided_instead, withdrawn_by_subject
from policy.remedies import Remedies
from schemas.requests import RequestStatus
from schemas.workflow import RequestState

# Each status as the subject reads it: a list of sentences, one message each.
STATUS_WORDS: dict[RequestStatus, tuple[str, ...]] = {
    RequestStatus.awaiting_verification: (N_("Waiting for you to confirm that the request is yours."),),
    RequestStatus.in_progress: (N_("We are working on your request."),),
    RequestStatus.awaiting_approval: (
        N_("Our privacy team is checking your request before we act on it or send our answer."),),
    RequestStatus.completed: (N_("We have answered your request by e-mail."),),
    RequestStatus.denied: (N_("We have refused your request."),
                           N_("Our e-mail explains why and how you can challenge it.")),
    # Cancelled by staff, a request is refused (Art. 12(4) GDPR): its letter gives the reasons and
    # the remedies, as a denial's does.
    RequestStatus.cancelled: (N_("This request was cancelled."),
                              N_("Our e-mail explains why and how you can challenge it.")),
    RequestStatus.closed_unverified: (N_("This request was closed because it was not confirmed in time."),
                                      N_("You are welcome to send a new one.")),
}
# An appeal (VCDPA, CTDPA, CPA) or a UK complaint (`reconsiders`) closed unconfirmed or denied is
# said of itself, as its letters say it: the decision it is about stands, and the way on is in our
# e-mail (appeal or complain again, the Attorney General or the Commissioner), not a new request,
# which the portal's form would make and which reconsiders nothing.
FOLLOW_UP_WORDS: dict[tuple[str | None, RequestStatus], tuple[str, ...]] = {
    ("appeal", RequestStatus.closed_unverified): (
        N_("This appeal was closed because it was not confirmed in time: our decision on the request it is about "
           "stands."), N_("Our e-mail says how you can appeal again.")),
    ("complaint", RequestStatus.closed_unverified): (
        N_("This complaint was closed because it was not confirmed in time: our decision on the request it is "
           "about stands."), N_("Our e-mail says how you can complain again.")),
    ("appeal", RequestStatus.denied): (N_("We have denied your appeal: our decision on the request it is about "
                                          "stands."), N_("Our e-mail explains why, and what you can do next.")),
    ("complaint", RequestStatus.denied): (
        N_("We have decided on your complaint: our decision on the request it is about stands."),
        N_("Our e-mail explains why, and what you can do next.")),
}
# An appeal (complaint) closed because another of the same refusal is decided instead
# (activities/appeal_claims.py): named by its reference (`other`), as the closing letter names it.
DECIDED_INSTEAD: dict[str, tuple[str, str]] = {
    "appeal": (N_("This appeal is not decided separately: your appeal %(other)s of the same decision is the one we "
                  "decide."), N_("Our e-mail explains why, and what you can do next.")),
    "complaint": (N_("This complaint is not considered separately: your complaint %(other)s about the same decision "
                     "is the one we consider."), N_("Our e-mail explains why, and what you can do next.")),
}
# ... and that other one then ended without a decision (withdrawn, cancelled by staff, closed or
# denied unidentified: dsrflow/domain/appeals_deferred.py): it will not answer this one, the refusal
# (`id`) was not reconsidered, and the subject may appeal (complain) again, as the letter closing
# the other says (activities/letter_closed_for.py); `email` is the controller's privacy address.
DECIDED_INSTEAD_UNDECIDED: dict[str, tuple[str, str]] = {
    "appeal": (N_("This appeal was not decided separately, because your appeal %(other)s of the same decision was "
                  "to be decided instead; that appeal has since been closed without a decision, so our decision on "
                  "request %(id)s has not been reconsidered."),
               N_("You can appeal it again: reply to our e-mail or write to %(email)s, saying that you appeal our "
                  "decision on request %(id)s.")),
    "complaint": (N_("This complaint was not considered separately, because your complaint %(other)s about the same "
                     "decision was to be considered instead; that complaint has since been closed without being "
                     "considered, so our decision on request %(id)s has not been reconsidered."),
                  N_("You can complain to us about it again with our complaint form, below, or by writing to "
                     "%(email)s, quoting request %(id)s.")),
}
# Cancelled because the subject withdrew it: said as theirs, not as our refusal, and, as the letter
# confirming it says, whom to tell if they did not (a withdrawal is recorded by staff from a message
# that may not be the subject's: docs/mailbox.md).
WITHDRAWN = (N_("You withdrew this request, and we have closed it."),
             N_("If you did not ask us to withdraw it, tell us at once by replying to our e-mail."))


@dataclass(frozen=True)
class Said:
    """What the page says of the request: its `sentences`, and the refused request (its reference)
    whose complaint form it links (portal/_send_a_new_one.html), when the words send the subject
    there: a UK complaint closed for another that then ended undecided (`DECIDED_INSTEAD_UNDECIDED`)."""
    sentences: list[str] = field(default_factory=list)
    complain_about: str | None = None

    def __str__(self) -> str:
        return " ".join(self.sentences)


async def status_words(state: AppState, row: dict[str, Any], status: RequestStatus, live: RequestState | None,
                       t: Translator) -> Said:
    """The sentences that say where the request (`row`, its `status` and `live` state as
    `current_live` read them) stands, in `t`'s language."""
    follow_up = reconsiders(row["regime"]) if (row["details"] or {}).get("appeal_of") else None
    said = FOLLOW_UP_WORDS.get((follow_up, status)) or STATUS_WORDS[status]
    if status == RequestStatus.cancelled and follow_up and (
            other := await decided_instead(await state.db(), str(row["id"]))):
        values = {"other": short_reference(other), "id": short_reference(row["details"]["appeal_of"]),
                  "email": state.policy.policy.controller.privacy_email}
        undecided = await ended_undecided(await state.db(), other) is not None
        first, then = (DECIDED_INSTEAD_UNDECIDED if undecided else DECIDED_INSTEAD)[follow_up]
        # The US laws' appeal again is a reply or a letter (no form on the portal takes it).
        form = values["id"] if undecided and follow_up == "complaint" else None
        return Said([t.gettext(first) % values, t.gettext(then) % values], form)
    if status == RequestStatus.cancelled and (
            live.withdrawn_by_subject if live and live.status == status
            else await withdrawn_by_subject(await state.db(), str(row["id"]))):
        said = WITHDRAWN
    return Said([t.gettext(sentence) for sentence in said])


def is_late(row: dict[str, Any], status: RequestStatus, timezone: str) -> bool:
    """Whether the open request's due date (its current one: extended or not) has passed, judged
    by today in the controller's `timezone`, the one its days are counted and written in: on the
    due date itself we can still answer in time. A UK GDPR request whose month has not started
    (`clock_waits`) has no date yet."""
    due: date | None = row["current_due_date"]
    return bool(due and not status.is_closed and not row["clock_waits"]
                and due < datetime.now(ZoneInfo(timezone)).date())


async def late_remedies(state: AppState, row: dict[str, Any], language: str) -> Remedies:
    """The right to complain of a request answered late, as the letters set it out: the remedies of
    the policy version the request runs under (the policy in force if that version is not on record),
    in the page's `language`, its authority the one they name for the subject's country. Lateness
    decides no appeal, so a law that grants one (the US states) and the UK GDPR, whose complaint to us
    is about a refusal, say the complaint as a letter that offers none does
    (`complaint_without_appeal`, activities/letter_refusals.py)."""
    pool = await state.db()
    async with pool.acquire() as conn:
        loaded = await version_policy(conn, row["policy_version"]) or state.policy
    remedies = loaded.in_language(language).remedies_for(row["regime"], row["country"])
    return remedies.model_copy(update={"complaint": remedies.portal_complaint()})
