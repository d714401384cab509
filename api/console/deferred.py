"""Erasures a hold deferred, on the console's request page: where each system's stands and, for a
processor that did not carry one out once the hold ended, asking it again or recording it as done
by other means, with a note saying how (dsrflow/stores/deferred_store.py; the REST API:
api/rest/deferred_erasures.py). Compliance's, as the holds behind them are
(api/staff_writes.py `DEFERRED_ROLES`). Forms post plainly and come back to the page; each says
the attempt and state its page showed, and is refused once the erasure stands otherwise."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.auth import ConsoleForbidden, Staff, require_console_role
from api.console.panels import back_to_panel, request_or_404
from api.console.refusals import outcome_params, refusal_params
from api.console.view import policy_system_labels
from api.deps import Pool, State
from api.erasure_sweeps import ask_processor_again, with_retries_under_way
from api.forms import read_form
from api.pages import problem_pages
from api.staff_writes import DEFERRED_ROLES
from api.state import AppState
from dsrflow.i18n import in_law_words
from dsrflow.stores.deferred_store import DeferredRefused, DeferredStale, Shown, deferred_erasures, settle_deferred

router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False,
                   route_class=problem_pages("console/problem.html"))

# The panel is no live region (a poll would swap a half-written note away): a reload shows the answer.
DONE = {"asked": "The processor is being asked again; reload this page for its answer once it is on record.",
        "queued": "Asking again is on record; the daily erasure sweep asks the processor (it could not start now).",
        "settled": "Recorded as erased by other means, with your note.",
        # Our own system's (sql): nobody is asked, the sweep erases again.
        "erasing": "The erasure is being run again in our own system; reload this page to see it once it is on record.",
        "erasing_queued": "Asking again is on record; the daily erasure sweep erases it (it could not start now)."}

# The refusals in the panel's words, by the store's status (None: the form did not say what its page
# showed): {label} is the system's, filled in after the law's words are (a label is not reworded).
REFUSED: dict[int | None, str] = {
    None: "Not done: this form does not say which attempt of {label}'s deferred erasure it answers (a page "
          "from before forms did): reload the page and answer what it shows.",
    409: "Not done: {label}'s deferred erasure is no longer as this page showed it (someone acted on it "
         "meanwhile); the panel shows where it stands now.",
    404: "Not done: no erasure in {label} was deferred by a hold for this request."}


async def deferred_context(state: AppState, request_id: str, staff: Staff, done: str | None,
                           error: str | None) -> dict[str, Any]:
    """The request page's deferred-erasure panel: empty for a role that may not read it.
    `error`: a refusal as api/console/refusals.py `shown_refusal` let it through."""
    if not staff.has_role(DEFERRED_ROLES["read"]):
        return {"deferred": []}
    deferred = await deferred_erasures(await state.db(), request_id)
    return {"deferred": await with_retries_under_way(state, request_id, deferred),
            "deferred_done": DONE.get(done or ""), "deferred_error": error}


def _check(staff: Staff, action: str) -> None:
    role = DEFERRED_ROLES[action]
    if not staff.has_role(role):
        raise ConsoleForbidden("Forbidden", f"{action} needs the {role} role; you are {staff.role}")


def _refused(state: AppState, request_id: str, system: str, refused: DeferredRefused | None,
             regime: str | None) -> RedirectResponse:
    """Back to the page with the refusal in its words: the system by its label, where the store's
    (the REST API's) names it by its id ("surveys's is settled"), and the erasure in the words of
    the request's law (`regime`: a "deletion" under the CCPA), as the panel says it. A page gone
    stale is the usual cause: another member of staff acted on the erasure meanwhile, and the
    panel shows it now. None: the form did not say what its page showed (`_shown`)."""
    # A system the policy does not name is not echoed: the address is anyone's to write, and a
    # signed refusal with words of theirs in it ("... Session expired: sign in at ...") shows on
    # any request's page of whoever follows the link (compliance could make one for an admin).
    label = policy_system_labels(state).get(system, "this system")

    def said(text: str) -> str:  # our words only: the label is the policy's, a failure the processor's
        return in_law_words(text, regime)

    if isinstance(refused, DeferredStale):
        text = f"{refused.words(label, said)} (the panel shows it now)."
    elif refused is None or refused.status in REFUSED:
        text = said(REFUSED[None if refused is None else refused.status]).format(label=label)
    else:
        text = f"Not done: {refused}."  # a note refused: what to write instead
    return back_to_panel(request_id, "deferred", **refusal_params(state.settings, "deferred_error", text))


def _shown(form: FormData) -> Shown | None:
    """The attempt and state the form's page showed (its hidden fields); None when it does not say
    them (a page from before forms did, a hand-made post): it would answer the erasure as it
    stands now, which nobody read."""
    try:
        shown = Shown.model_validate({key: str(form[key]).strip() for key in ("attempt", "state") if key in form})
    except ValidationError:
        return None
    return shown if shown.attempt is not None and shown.state is not None else None


@router.post("/requests/{request_id}/deferred/{system}/retry")
async def retry(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                system: str, state: State, pool: Pool) -> Response:
    _check(staff, "retry")
    regime = (await request_or_404(pool, request_id))["regime"]
    if (shown := _shown(await read_form(request))) is None:
        return _refused(state, request_id, system, None, regime)
    try:
        asked_now = await ask_processor_again(state, request_id, system, actor=staff.actor, shown=shown)
    except DeferredRefused as refused:
        return _refused(state, request_id, system, refused, regime)
    named = state.policy.policy.systems.get(system)
    own = named is not None and named.connector == "sql"  # nobody is asked: the sweep erases again
    done = ("erasing" if own else "asked") if asked_now else ("erasing_queued" if own else "queued")
    return back_to_panel(request_id, "deferred", **outcome_params(state.settings, request_id, "deferred_done", done))


@router.post("/requests/{request_id}/deferred/{system}/settle")
async def settle(staff: Annotated[Staff, require_console_role("agent")], request: Request, request_id: str,
                 system: str, pool: Pool, state: State) -> Response:
    _check(staff, "settle")
    regime = (await request_or_404(pool, request_id))["regime"]
    form = await read_form(request)
    if (shown := _shown(form)) is None:
        return _refused(state, request_id, system, None, regime)
    try:
        await settle_deferred(pool, request_id, system, str(form.get("note", "")), actor=staff.actor, shown=shown)
    except DeferredRefused as refused:
        return _refused(state, request_id, system, refused, regime)
    return back_to_panel(request_id, "deferred", **outcome_params(state.settings, request_id, "deferred_done", "settled"))
