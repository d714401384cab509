"""What a letter refuses, and the remedies it then names: a letter that refuses the subject in
whole or in part (Art. 12(4) GDPR and its counterparts) carries the regime's authority, courts
and appeal, or the complaint to us under the UK GDPR (`remedies_context`); `build_context` (activities/letters.py) decides it so when it
renders the letter, and `letter_refuses` the same way without rendering it (a letter staff sent
by other means, whose refusal can be appealed: dsrflow/domain/appeals.py)."""

from __future__ import annotations

from typing import Any

from activities.citations import citation, law_grants
from activities.context import ActivityContext
from activities.letter_outcome import response_outcome
from dsrflow.domain.deadlines import COMPLAINT_ACKNOWLEDGEMENT_DAYS, answer_days, reconsiders, takes_complaints
from dsrflow.i18n import ENGLISH, Translator
from policy.model import Policy
from schemas.workflow import LetterJob

# Letters that refuse, whatever their parameters; `cancellation` does unless the subject withdrew.
_REFUSALS = {"denial", "closed_unverified"}

# What a subject whose correction we refused can do about the data they say is wrong, by the law
# of the request (docs/legal.md): the CCPA's regulations have a business that denies a request to
# correct offer to note, on request, internally and to whom it discloses the information, that the
# consumer contests its accuracy (Cal. Code Regs. tit. 11, § 7023(f)); PIPEDA has the organization
# record the substance of an unresolved challenge and, when appropriate, tell third parties with
# access to the information (Schedule 1, clause 4.9.6); the GDPR and the UK GDPR let the subject
# have processing restricted while accuracy is contested (Art. 18(1)(a)). The codes' citations
# are not translated. The other laws provide nothing of the kind: their letters say nothing.
_ACCURACY_DISPUTES = {"ccpa": ("note", "Cal. Code Regs. tit. 11, § 7023(f)"),
                      "pipeda": ("recorded", "PIPEDA, Schedule 1, clause 4.9.6"),
                      "gdpr": ("restrict", None), "uk_gdpr": ("restrict", None)}


def remedies_context(policy: Policy, regime: str, country: str, *, appeal: bool, undecided: bool = False,
                     t: Translator = ENGLISH, form_url: str | None = None,
                     request_type: str | None = None) -> dict[str, Any]:
    """What the `_remedies` partial says in a letter that refuses in whole or in part (Art. 12(4)
    GDPR and its counterparts): the regime's authority, courts and, unless the request is itself
    an appeal (or a complaint), the appeal its law grants, with the statutory days to answer it and
    the further days its one extension may add (the CPA's 60; none under the VCDPA and the CTDPA):
    the workflow accepts that extension, so the letter may not promise the first period alone.
    Under the UK GDPR it is a complaint to us (`kind`, DPA 2018 s. 164A): the 30 days to
    acknowledge it, our target for its outcome (the policy's `answer_days`), and `form_url`, the
    portal's complaint form for this request (None in a context stored before the form existed:
    the letter then gives the privacy address alone). A letter deciding an appeal, or giving a complaint's outcome, says the
    complaint to the authority as one made after it (`complaint_after_appeal`), not "if we deny
    your appeal", and offers no second one to us. A letter that decides nothing a US state law's
    appeal lies against (`undecided`: a restriction lifted, an appeal closed unverified or by
    staff) offers no appeal, and says the complaint to the Attorney General without one
    (`complaint_without_appeal`): before, the lift letter said "If we deny your appeal" of an
    appeal it never offered, and an appeal closed unverified "Now that we have decided on it". A UK
    complaint closed unverified or by staff says it so too, not "If you are not satisfied with the
    outcome of your complaint". A deletion (`request_type` erasure) refused where we sell or share
    personal information asks whether the subject wants to opt out of that (`sale_opt_out`, the
    CCPA's § 7022(f)(4)); no other refusal does. A refusal of a request the regime's law does not
    grant (`law_grants`) has no `refusal_rule`: its letter credits the law with nothing."""
    remedies = policy.remedies_for(regime, country).model_dump(mode="json")
    # A request the law does not grant (an objection under the CCPA, a deletion under PIPEDA): the
    # letter gives its reasons and the remedies, and credits no rule of that law with them.
    if not law_grants(regime, request_type):
        remedies["refusal_rule"] = None
    if request_type != "erasure" or not remedies["sells_or_shares"]:
        remedies["sale_opt_out"] = None
    remedies["judicial_heading"] = remedies["judicial_heading"] or t.gettext("Your right to a judicial remedy")
    # A UK complaint closed undecided has no outcome to be "not satisfied with"; a restriction lifted
    # under the UK GDPR still offers the complaint to us (nothing was complained of yet).
    if remedies["appeal"] is not None and undecided and (reconsiders(regime) == "appeal" or appeal):
        remedies["complaint"] = remedies["appeal"]["complaint_without_appeal"] or remedies["complaint"]
        remedies["appeal"] = None
    elif remedies["appeal"] is not None:
        days, further = answer_days(regime, appeal=True, target_days=remedies["appeal"]["answer_days"])
        if appeal:
            remedies["complaint"] = remedies["appeal"]["complaint_after_appeal"] or remedies["complaint"]
        remedies["appeal"] = None if appeal else {
            **remedies["appeal"], "kind": reconsiders(regime), "days": days, "further_days": further,
            "acknowledge_days": COMPLAINT_ACKNOWLEDGEMENT_DAYS, "form_url": form_url}
    return remedies


def accuracy_dispute(purpose: str, params: dict[str, Any], regime: str, request_type: str, portal_url: str,
                     t: Translator = ENGLISH) -> dict[str, Any] | None:
    """What the remedies of a correction refused in whole (a denial) or in part (a response that
    left records as they were) say the subject can do about the data they contest (`kind`, with
    its `rule`; `_ACCURACY_DISPUTES`), or None: another request, another letter (a request closed
    unverified or cancelled decided nothing), a law without such a provision, or a denial because
    we could not identify the subject (we can record nothing against a person we cannot identify)."""
    if request_type != "rectification" or regime not in _ACCURACY_DISPUTES or purpose not in ("denial", "response"):
        return None
    if params.get("reason_code") == "identity_not_established":
        return None
    kind, rule = _ACCURACY_DISPUTES[regime]
    return {"kind": kind, "rule": rule or citation(regime, "18(1)(a)", t), "portal_url": portal_url}


def names_authority_after_any_outcome(regime: str) -> bool:
    """Whether an appeal's (a UK complaint's) outcome names where to complain even where it now does
    all that was asked: the Information Commissioner (a complainant may still be dissatisfied: DPA
    2018 s. 165) and the Attorney General of Colorado, whom the controller tells the consumer they
    can contact if they have concerns about the result of the appeal, whatever it is (C.R.S.
    § 6-1-1306(3)). The VCDPA and the CTDPA name the Attorney General where an appeal is denied."""
    return takes_complaints(regime) or regime == "cpa"


def refuses_outright(purpose: str, params: dict[str, Any]) -> bool:
    """A letter that refuses whatever its outcome: a denial, a request closed unverified, a
    cancellation the subject did not ask for."""
    return purpose in _REFUSALS or (purpose == "cancellation" and not params["withdrawn"])


async def letter_refuses(ctx: ActivityContext, row: dict[str, Any], job: LetterJob) -> bool:
    """Whether letter `job` refuses in whole or in part, as `build_context` decides (it then
    carries the remedies), without rendering it or issuing anything (a package's link)."""
    params = job.params  # the report and the decision, as the workflow sent them
    if job.purpose != "response":
        return refuses_outright(job.purpose, params)
    loaded = await ctx.policy(row["policy_version"])
    outcome = response_outcome(params.get("report", {}), loaded.policy, None, None, ENGLISH, source=loaded.policy,
                               regime=row["regime"])
    return refuses_in_part(outcome, params.get("decision"))


def refuses_in_part(outcome: dict[str, Any], decision: dict[str, Any] | None) -> bool:
    """A response that does not do all the subject asked: records kept (Art. 17(3)), data left out
    of a copy, records a correction left as an erasure kept them, processing that continues on
    compelling grounds (Art. 21(1))."""
    return bool(outcome["kept"] or outcome.get("missing") or outcome.get("uncorrected")
                or (decision and decision["compelling_grounds"]))
