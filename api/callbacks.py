"""Processor callbacks. The signature over the raw body is checked against the processor's
certificate (from its discovery document) before the body is parsed at all; a bad signature is
403 and changes nothing."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from activities.connectors.opendsr import discovery_url_for
from activities.connectors.opendsr_signature import ProcessorCertificates, ProcessorCertificateError
from api.problems import Problem
from api.ratelimit import limiter
from dsrflow.audit import append_event
from schemas.workflow import ProcessorUpdate, task_workflow_id
from workflows.system_task import SystemTaskWorkflow

router = APIRouter(prefix="/v1/callbacks", tags=["processor callbacks"])
_certificates = ProcessorCertificates()


def _discovery_url(request: Request, system: str) -> str:
    policy = request.app.state.dsr.policy.policy
    config = policy.systems.get(system)
    if config is None or config.connector != "opendsr":
        raise Problem(404, "Unknown processor", f"no OpenDSR system named {system!r}")
    return discovery_url_for(config)


@router.post("/opendsr", status_code=202)
async def opendsr_callback(request: Request, system: str = Query(..., max_length=64)) -> JSONResponse:
    """Status callback from an OpenDSR processor (signed with `X-OpenDSR-Signature`).
    Limited per client (429 with `Retry-After`) before the body is read or a signature checked."""
    await limiter(request).hit(request, "callback")
    body = await request.body()
    signature = request.headers.get("x-opendsr-signature", "")
    discovery = _discovery_url(request, system)
    try:
        verified = await _certificates.verify(discovery, body, signature)
    except ProcessorCertificateError as exc:
        raise Problem(503, "Processor certificate unavailable", str(exc)) from None
    if not verified:
        raise Problem(403, "Bad signature",
                      "X-OpenDSR-Signature does not verify against the processor's certificate")
    try:
        payload = json.loads(body)
        external_id = str(payload["subject_request_id"])
        status = str(payload["request_status"])
    except (ValueError, KeyError, TypeError):
        raise Problem(422, "Malformed callback", "expected JSON with subject_request_id and request_status") from None

    state = request.app.state.dsr
    pool = await state.db()
    task = await pool.fetchrow(
        "SELECT request_id, system, action, attempt FROM system_tasks WHERE external_id = $1 AND system = $2",
        external_id, system,
    )
    if task is None:
        raise Problem(404, "Unknown request", "no task matches this subject_request_id")
    request_id = str(task["request_id"])
    async with pool.acquire() as conn:
        await append_event(
            conn, event_key=f"{request_id}:callback:{system}:{external_id}:{status}", request_id=request_id,
            event_type="processor.callback", actor=f"processor:{system}",
            data={"system": system, "status": status},
        )
    client = await state.temporal()
    child = task_workflow_id(request_id, task["system"], task["action"], task["attempt"])
    try:
        await client.get_workflow_handle(child).signal(
            SystemTaskWorkflow.processor_update, ProcessorUpdate(status=status))
    except RPCError as exc:
        # The task already settled (a poll got there first): the callback has nothing to add.
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    return JSONResponse({"accepted": True}, status_code=202)
