"""The staff JSON API under /v1: requests, their events and evidence, holds, restrictions, tokens, the
suppression check, and the Temporal UI's codec endpoint. Every route needs a staff bearer token."""

from fastapi import APIRouter

from api.rest import (
    accuracy_disputes,
    codec_endpoint,
    deferred_erasures,
    events,
    evidence_pack,
    legal_holds,
    lifts_by_hand,
    listing,
    metrics,
    request_resume,
    restriction_list,
    staff_requests,
    suppressions,
    team,
    tokens,
)

router = APIRouter()
for _module in (codec_endpoint, listing, staff_requests, events, tokens, suppressions, legal_holds,
                restriction_list, evidence_pack, metrics, team, deferred_erasures,
                request_resume, accuracy_disputes, lifts_by_hand):
    router.include_router(_module.router)
