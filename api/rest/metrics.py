"""`GET /metrics`: the API process's metrics and the gauges from Postgres, for Prometheus.

Not public: the API's port is the one published to the internet, and the figures (how many
requests, how many overdue) are the controller's business. It answers the metrics token
(DSRFLOW_METRICS_TOKEN, a secret that reads this page and nothing else, the one Prometheus is
given) or an admin's staff token; no credentials or an unknown token 401, a lower role 403.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from api.auth import staff_from_token
from api.deps import State
from api.problems import Problem
from dsrflow.infra.metrics import CONTENT_TYPE, exposition

router = APIRouter(tags=["operations"])


def _is_metrics_token(request: Request, expected: str | None) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), (expected or "").encode())


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
async def metrics(request: Request, state: State) -> Response:
    """Prometheus metrics (docs/observability.md). Bearer: the metrics token or an admin token."""
    if not _is_metrics_token(request, state.settings.metrics_token):
        staff = await staff_from_token(request, state)  # 401 for an unknown token
        if staff is None:
            raise Problem(401, "Authentication required", "send Authorization: Bearer <metrics or admin token>")
        if not staff.has_role("admin"):
            raise Problem(403, "Forbidden", f"metrics need the metrics token or the admin role; you are {staff.role}")
    body = await exposition(state.metrics_gauges, await state.db(), state.policy.policy.defaults.timezone)
    return Response(body, media_type=CONTENT_TYPE)
