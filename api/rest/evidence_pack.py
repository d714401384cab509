"""The evidence pack endpoints (compliance): the same pack as JSON and as one printable page."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse

from activities.letter_labels import staff_type_label
from api.auth import Staff, require_console_role, require_role
from api.deps import Pool, State
from api.page_language import page_language
from api.pages import render
from api.problems import Problem
from api.read_models import event_lines, event_words
from api.read_models.actors import actor_name
from api.read_models.evidence import assemble_evidence, planned_recipients
from api.read_models.evidence_names import Labels
from dsrflow.crypto.keys import load_secret_key
from dsrflow.domain.references import short_reference
from dsrflow.i18n import translations
from dsrflow.settings import Settings
from dsrflow.stores.team_store import staff_names

router = APIRouter(prefix="/v1/requests", tags=["evidence"])


async def _pack(pool: asyncpg.Pool, settings: Settings, request_id: str) -> dict[str, Any]:
    pack = await assemble_evidence(pool, request_id, secret=load_secret_key(settings))
    if pack is None:
        raise Problem(404, "Not found", f"no request {request_id}")
    return pack


@router.get("/{request_id}/evidence")
async def evidence_json(staff: Annotated[Staff, require_role("compliance")], request_id: str, state: State,
                        pool: Pool) -> dict[str, Any]:
    """Everything that shows how the request was handled: the request, verification (times and
    method, never codes), deadlines and extension, plan, per-system results, holds and kept
    records, letters, and its audit-chain segment with the result of verifying its links."""
    return jsonable_encoder(await _pack(pool, state.settings, request_id))


@router.get("/{request_id}/evidence.html", response_class=HTMLResponse)
async def evidence_page(staff: Annotated[Staff, require_console_role("compliance")], request_id: str,
                        request: Request, state: State, pool: Pool) -> HTMLResponse:
    """The evidence pack as one page, to print or save as PDF (a bearer token or a console
    session; a browser that is not signed in is sent to the sign-in page)."""
    pack = await _pack(pool, state.settings, request_id)
    # The page names staff as the console does (`who`); the JSON and the page's audit table keep
    # the actors as the trail records them.
    names = await staff_names(pool)
    # Systems, datasets, statutory holds and categories as the policy names them (the pack's `labels`).
    labels = Labels(**pack["labels"])
    language = page_language(request)
    # Every time on the page in the timezone the request's deadline days are counted in, as on its
    # console page (the `controller_time` filter, api/pages.py); every day as the `longdate` filter writes it.
    timezone = pack["deadlines"]["basis"]["timezone"]
    again = event_lines.lifted_again(pack["audit"]["events"])  # a lift run again after its record
    own = event_lines.own_systems(pack["holds"]["deferred_erasures"])  # a retry's, where its event does not say
    regime = pack["request"]["regime"]
    return render(request, "console/evidence.html", {
        # Named by its short reference, as the console names a request; the full id where a tool or
        # an auditor matches it (the Request facts, the links, the JSON).
        "pack": pack, "staff": staff, "who": lambda actor: actor_name(actor, names),
        "reference": short_reference(pack["request"]["id"]),
        "controller_timezone": timezone,
        "describe": lambda event: event_lines.describe_event(event, names, labels.systems, language=language,
                                                             timezone=timezone, regime=regime, lifted_again=again,
                                                             own_systems=own),
        "system_label": labels.system, "dataset_label": labels.dataset, "hold_label": labels.hold,
        "category_label": labels.category,
        "country": lambda code: event_words.country_words(code, language),
        # The type as staff and an authority read it ("access (Art. 15 GDPR)", "deletion"), as the
        # staff alerts name it: not the subject's words ("access to your personal data").
        "staff_type_label": lambda kind, regime: staff_type_label(kind, regime, translations(language)),
        # The words the page writes for the pack's codes, as the console's request page does, in
        # the words of the request's law ("delete" under the CCPA: a DPO shows it to its regulator).
        **event_words.words_for(regime), "recipients": await planned_recipients(pool, pack)})
