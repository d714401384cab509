"""The staff console (HTML): sign-in, the queue, the request page with its actions, the dashboard,
the inbox, the direct-marketing suppression list, legal holds and the staff tokens."""

from fastapi import APIRouter

from api.console import (
    accuracy_disputes,
    dashboard,
    deferred,
    holds,
    inbox,
    letter_copies,
    lifts_by_hand,
    queue,
    request_actions,
    request_page,
    request_resume,
    suppressions,
    team,
    tokens,
)

router = APIRouter()
# The queue first: /console/requests/new is the new-request form, not a request id.
# The team's routes (and resuming a request, recording a dispute) before the request page's actions'
# `/{request_id}/{action}` (request_actions, after the page's own routes).
for _module in (queue, team, deferred, request_resume, accuracy_disputes, lifts_by_hand, request_page,
                request_actions, letter_copies, dashboard, inbox,
                suppressions, holds, tokens):
    router.include_router(_module.router)
