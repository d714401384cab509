"""A letter's context: what its template reads of the request, its plan's results and the policy,
in the subject's language (or staff's), as `build_context` gathers it for activities/letters.py
to render and send."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from activities.citations import regime_name
from activities.context import ActivityContext
from activities.letter_closed_for import closed_for_context
from activities.letter_kept_closed import kept_at_close
from activities.letter_labels import denial_label, staff_type_label, type_label
from activities.letter_objection import decision_summary
from activities.letter_outcome import response_outcome
from activities.letter_progress import progress_context
from activities.letter_refusals import (
    accuracy_dispute,
    names_authority_after_any_outcome,
    refuses_in_part,
    refuses_outright,
    remedies_context,
)
from activities.letter_stopped import (
    called_off,
    done_so_far,
    stopped_actions,
    stopped_runs,
    stopped_sentence,
)
from activities.letter_systems import all_where
from activities.letter_templates import letter_wording
from activities.restrictions import lift_letter_context
from dsrflow.crypto.hashing import keyed_hash, token_hash
from dsrflow.domain.appeals import complaint_form
from dsrflow.domain.deadlines import receipt_date, receipt_date_for
from dsrflow.domain.references import short_reference
from dsrflow.i18n import worded
from dsrflow.stores.kept_copies import RESPONSE_SENT
from policy.model import Policy
from schemas.workflow import LetterJob

# Params that travel through the workflow as ISO strings and reach templates as dates.
_DATE_PARAMS = {"new_due_date", "lift_on"}
_DATETIME_PARAMS = {"expired_at", "expires_at", "package_expires_at"}


def _coerce(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for key in _DATE_PARAMS & out.keys():
        out[key] = date.fromisoformat(out[key])
    for key in _DATETIME_PARAMS & out.keys():
        if isinstance(out[key], str):
            out[key] = datetime.fromisoformat(out[key])
    return out


# Letters that close a request unanswered, which may have been carried out in part by then.
_CLOSINGS = {"denial", "cancellation"}
# Letters that close a request without deciding it (a denial decides it).
_UNDECIDED_CLOSINGS = {"closed_unverified", "cancellation"}
# Letters that decide nothing the subject asked: a restriction lifted, a complaint's progress.
_DECIDING_NOTHING = {"restriction_lift", "complaint_progress"}
# Request types whose action changes a system (an access only reads it).
_CHANGING = {"erasure", "rectification", "restriction", "objection"}


def named_systems(systems: list[str], row: dict[str, Any], policy: Policy) -> list[str]:
    """The labels of the systems where a request closed unanswered had already changed something,
    or been asked to and may still (the workflow's `acted_in`, `asked_in`: workflows/refusals.py): a
    subject who withdraws an erasure half-way, or whose request is refused after part of it was
    done, learns what was done."""
    if row["request_type"] not in _CHANGING:
        return []
    return [policy.system_label(s) for s in systems]


def greeted_name(row: Mapping[str, Any]) -> str | None:
    """The name a letter greets the subject by: only once the address's owner is known to have
    made the request (staff attested it, or the owner verified it). Before, anyone could open a
    request for any address with a "name" of 200 characters, and the controller's own signed
    acknowledgement and verification letters opened with it ("Dear customer, your account is
    suspended, confirm at ..."): a phishing text in our name, even asking the owner to confirm an
    erasure they never asked for. Until then, "Hello,"."""
    confirmed = row.get("attested_by") is not None or row.get("verified_at") is not None
    return row["subject_name"] if confirmed else None


def letter_language(policy: Policy, row: dict[str, Any], job: LetterJob) -> str:
    """Staff read their alerts in the controller's working language; a subject reads the language
    of their request."""
    return policy.languages.staff.value if job.to_staff else str(row["language"])


async def build_context(ctx: ActivityContext, row: dict[str, Any], job: LetterJob, language: str) -> dict[str, Any]:
    """The letter's context, its texts (the policy's and ours) in `language`."""
    loaded = await ctx.policy(row["policy_version"])
    policy = loaded.in_language(language)
    # The sentences written here speak the law's words as the templates do: "personal information"
    # under the CCPA and PIPEDA; staff alerts keep the language's own.
    t = worded(language, letter_wording(job.purpose, row["regime"]))
    context: dict[str, Any] = {
        "controller": policy.controller.model_dump(mode="json"),
        "request": {
            "id": str(row["id"]),
            "type": row["request_type"],
            "type_label": (staff_type_label if job.purpose == "staff_alert" else type_label)(
                row["request_type"], row["regime"], t),
            "regime": row["regime"],
            "regime_name": regime_name(row["regime"], t),
            # The date the deadline counts from, so a letter and its due date agree: the earlier of
            # the controller's and the law's place's (a staff alert says the same day).
            "received_date": receipt_date_for(row["received_at"], policy.defaults.timezone, row["regime"]),
            "due_date": row["due_date"],
            "extended_due_date": row["extended_due_date"],
            "current_due_date": row["current_due_date"],
            "appeal_of": (row["details"] or {}).get("appeal_of"),
            "objection_scope": (row["details"] or {}).get("objection_scope"),
            # A UK complaint's reasons: a letter says we have them, never repeats them.
            "complaint_reasons_given": bool((row["details"] or {}).get("complaint_reasons")),
        },
        "subject": {"name": greeted_name(row), "email": row["subject_email"]},
        # The portal opens in the letter's language.
        "portal_url": f"{ctx.settings.base_url}/portal?lang={language}",
        # The letter's times (a code's or a link's expiry) are the controller's, as its dates are:
        # in the zone of the policy version the request runs under, not the machine's or UTC.
        "timezone": policy.defaults.timezone,
    }
    params = _coerce(job.params)

    def remedies() -> dict[str, Any]:
        # The complaint form on this request (UK) takes refusals: a letter deciding nothing gives the address.
        form = complaint_form(short_reference(row["id"]), language, ctx.settings.base_url)
        appeal = bool(context["request"]["appeal_of"])
        # Lifting a restriction refuses nothing, and an appeal closed unverified or by staff is
        # not decided: neither offers an appeal nor speaks of one (`remedies_context`).
        undecided = job.purpose in _DECIDING_NOTHING or (appeal and job.purpose in _UNDECIDED_CLOSINGS)
        return remedies_context(policy, row["regime"], row["country"], appeal=appeal, undecided=undecided,
                                t=t, form_url=None if job.purpose in _DECIDING_NOTHING else form,
                                request_type=row["request_type"])

    if job.purpose == "staff_alert":
        params["warning_days"] = policy.deadline_warnings_days
        # The detail names systems by the labels of the policy version the request runs under.
        params["systems"] = {system: spec.label for system, spec in policy.systems.items()}
        params["where"] = all_where(policy, t)  # and after a verb ("The task at our ... needs staff")
    if job.purpose == "denial":
        params["reason_label"] = denial_label(params["reason_code"], row["regime"], t)
    if refuses_outright(job.purpose, params):
        params["remedies"] = remedies()
    if job.purpose == "extension" and policy.remedies_for(row["regime"], row["country"]).complaint_on_extension:
        params["complaint"] = remedies()  # not a refusal: only the right to complain of the extension
    if job.purpose == "restriction_lift":
        params.update(await lift_letter_context(ctx, row, policy, t))
        # The regime's authority and courts, as a refusal names them (not `remedies`: lifting a
        # restriction refuses nothing the subject asked for).
        params["complaint"] = remedies()
    if job.purpose == "complaint_progress":
        # The letters go on the controller's days (workflows/complaint_progress.py counts from its
        # midnight), so the next is promised from its day of receipt, which may be a day after London's.
        params.update(progress_context(policy, row["regime"], receipt_date(row["received_at"], policy.defaults.timezone),
                                       params, remedies()))
    if job.purpose in _CLOSINGS:  # older workflows sent neither
        # A system still asked (a job at the processor) may still act, or is being called off: not stopped.
        acted, asked = done_so_far(params, row)
        params["kept_at_close"], acted = kept_at_close(row, policy, loaded.policy, t, acted)  # what holds kept
        params["stopped"] = [stopped_sentence(stopped, policy, t) for stopped in stopped_runs(row, policy)
                             if stopped.system not in asked and stopped.system not in acted]
        # A workflow that sends `acted_in` tells what was changed: the letter says plainly that
        # nothing, or only part, was done, not "we have not acted on your request, or not on all of
        # it" (kept for workflows before it, and for a request that only reads: it changes nothing).
        if "acted_in" in params and row["request_type"] in _CHANGING:
            params["done_before_close"] = "part" if acted or asked or params["stopped"] else "nothing"
        params["acted_in"] = named_systems(acted, row, policy)
        params["asked_in"], params["called_off_in"] = (named_systems(s, row, policy) for s in called_off(asked, row, policy))
    if job.purpose == "response":
        report = params.pop("report", {})
        link, expires = None, None
        if report.get("package"):
            link, expires = await issue_package_link(ctx, report["package"]["package_id"],
                                                     policy.package_link_days)
        outcome = response_outcome(report, policy, link, expires, t, source=loaded.policy, regime=row["regime"],
                                   language=language, since=row.get("kept_at_close"))  # what holds kept, now
        outcome["actions"] += stopped_actions(stopped_runs(row, policy), t)
        decision = params.pop("decision", None)
        if decision:
            outcome["summary"] = decision_summary(decision, row["regime"], t)
            # Nothing was run on this path (workflows/dsr.py): the letter says the processing
            # continues, never that nothing was found.
            outcome["processing_continues"] = bool(decision["compelling_grounds"])
        params = {"outcome": outcome, **params}
        if refuses_in_part(outcome, decision):
            params["remedies"] = remedies()
        elif context["request"]["appeal_of"] and names_authority_after_any_outcome(row["regime"]):
            # A UK complaint's outcome names the Commissioner, a CPA appeal's the Attorney General,
            # even when we now do all that was asked (`names_authority_after_any_outcome`); it
            # refuses nothing.
            params["complaint"] = remedies()
    if "remedies" in params:  # a correction refused: what the subject can do about the data they contest
        params["remedies"]["accuracy_dispute"] = accuracy_dispute(job.purpose, params, row["regime"],
                                                                  row["request_type"], context["portal_url"], t)
    if closed := closed_for_context(row, job.purpose, params, ctx.settings.base_url, language):
        params["closed_for"] = closed  # appeals closed for this one, which now decides nothing
    context.update(params)
    return context


async def issue_package_link(ctx: ActivityContext, package_id: str, days: int) -> tuple[str, datetime]:
    """The download link of a package. The token is derived from the secret (so a retried letter
    carries the same link) and only its hash is stored. The link is valid for `days` from the
    response that carries it: while that letter has not gone (its step failed and waits for
    staff, the relay refused it), each render starts the days again, so a letter that goes out
    late never names a date already past (dsrflow/stores/kept_copies.py `purge_expired` spares
    the package meanwhile). Before, the days ran from the first render."""
    token = keyed_hash(ctx.secret, "package-token", package_id)
    expires = datetime.now(UTC) + timedelta(days=days)
    stored = await ctx.pool.fetchval(
        f"""UPDATE packages p SET token_hash = $2,
                   expires_at = CASE WHEN p.expires_at IS NULL OR NOT {RESPONSE_SENT} THEN $3 ELSE p.expires_at END
            WHERE p.id = $1 RETURNING p.expires_at""",
        package_id, token_hash(token), expires,
    )
    # The portal's page of the package, whose button downloads it (api/public/portal.py).
    return f"{ctx.settings.base_url}/portal/packages/{token}", stored or expires
