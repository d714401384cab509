"""Starting the erasure sweep (workflows/erasure_sweep.py) for one subject from the API: when a
legal-claims hold is released, when a processor answers an erasure asked of it after a hold
ended (activities/deferred_processors.py), and when compliance asks such a processor again, so
that the answer is on record, or the question asked, now rather than at the next daily sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy

from api.state import AppState
from dsrflow.infra.failpoints import failpoint
from dsrflow.infra.logging import get_logger
from dsrflow.infra.temporal_client import ENGINE_CALL
from dsrflow.stores.deferred_store import Shown, retry_deferred
from dsrflow.stores.holds_store import release_hold
from schemas.holds import SweepInput

log = get_logger(__name__)


async def start_subject_sweep(state: AppState, subject_hash: str, *, reason: str, workflow_id: str) -> None:
    """One sweep per id: starting it again finds the running one, or runs it again once it has
    finished."""
    client = await state.temporal()
    await client.start_workflow(
        "ErasureSweepWorkflow",
        SweepInput(subject_hash=subject_hash, reason=reason),
        id=workflow_id,
        task_queue=state.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        rpc_timeout=ENGINE_CALL,
    )


async def release_and_sweep(state: AppState, pool: asyncpg.Pool, hold_id: str, actor: str, *,
                            reason: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """Release a legal-claims hold, saying why (`reason`, api/legal_hold_body.py `HoldRelease`),
    then start erasing what it kept (DELETE /v1/legal-holds/{id}, the console's Release):
    the hold (None: no such hold) and, when the sweep could not start, the error's name. The
    release stands whatever the workflow engine says; one sweep per hold, so releasing again finds
    it running, or runs it again."""
    async with pool.acquire() as conn:
        hold = await release_hold(conn, hold_id, actor, reason=reason)
    if hold is None:
        return None, None
    failpoint("hold-released", str(hold["id"]))  # released, its sweep not yet started (a repeat starts it)
    try:
        await start_subject_sweep(state, hold["subject_hash"], reason=f"legal hold {hold['id']} released",
                                  workflow_id=f"sweep-release-{hold['id']}")
    except Exception as exc:  # noqa: BLE001 - the release stands whatever the workflow engine says
        log.warning("release sweep not started", hold_id=hold["id"], error=type(exc).__name__)
        return hold, type(exc).__name__
    return hold, None


async def sweep_for_processor_answer(state: AppState, conn: asyncpg.Connection | asyncpg.Pool, system: str,
                                     external_id: str) -> None:
    """A processor answered job `external_id`: if it is a deferred erasure still followed, sweep
    its subject now. Best effort: the daily sweep asks the processor itself otherwise."""
    subject = await conn.fetchval(
        """SELECT subject_hash FROM deferred_erasures
            WHERE external_id = $1 AND system = $2 AND done_at IS NULL AND failed_at IS NULL LIMIT 1""",
        external_id, system)
    if subject is None:
        return
    try:
        await start_subject_sweep(state, subject, reason=f"{system} answered a deferred erasure",
                                  workflow_id=f"sweep-processor-{system}-{external_id}")
    except Exception as exc:  # noqa: BLE001 - the answer is recorded; the daily sweep follows it up
        log.warning("deferred erasure sweep not started", system=system, error=type(exc).__name__)


def _retry_sweep_id(request_id: str, system: str, attempt: int) -> str:
    """One sweep per retry: asking again while it waits to be asked starts that one (see below)."""
    return f"sweep-retry-{request_id}-{system}-{attempt}"


async def retry_sweep_running(state: AppState, request_id: str, system: str, attempt: int) -> bool:
    """Whether the sweep that asks the processor for retry `attempt` is running now: it is about to
    ask, and asking again would only find it. False when the workflow engine cannot say."""
    try:
        client = await state.temporal()
        described = await client.get_workflow_handle(_retry_sweep_id(request_id, system, attempt)).describe(
            rpc_timeout=timedelta(seconds=5))
    except Exception:  # noqa: BLE001 - never started (not found), or the engine away: nothing asks it now
        return False
    return described.status == WorkflowExecutionStatus.RUNNING


async def with_retries_under_way(state: AppState, request_id: str,
                                  deferred: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each system's erasures (dsrflow/stores/deferred_store.py `deferred_erasures`, for the console's
    page and REST alike) with `resent`, for one asked again but not yet sent to the processor
    (offered "retry" though none failed: dsrflow/stores/deferred_store.py): "running" while the
    sweep that sends it runs (the page comes back from starting it before the sweep has asked,
    and asking again would only find that sweep: not offered), else "not started" (the API died
    first, or the workflow engine was away: pressing starts it)."""
    for entry in deferred:
        entry["resent"] = None
        if "retry" in entry["actions"] and "failed" not in entry["states"]:
            running = await retry_sweep_running(state, request_id, entry["system"], entry["attempt"])
            entry["resent"] = "running" if running else "not started"
            if running:
                entry["actions"] = [action for action in entry["actions"] if action != "retry"]
    return deferred


async def ask_processor_again(state: AppState, request_id: str, system: str, *, actor: str,
                              shown: Shown | None = None) -> bool:
    """Compliance asks a processor again to carry out an erasure it did not (raises
    DeferredRefused when there is none to ask, or it no longer stands as `shown`); True once the
    sweep that asks it has started, False when only the daily sweep will (the retry is on record
    either way)."""
    subject, attempt = await retry_deferred(await state.db(), request_id, system, actor=actor, shown=shown)
    failpoint("deferred-retried", system)  # on record, its sweep not yet started (a repeat starts it)
    try:
        await start_subject_sweep(state, subject, reason=f"compliance asked {system} again",
                                  workflow_id=_retry_sweep_id(request_id, system, attempt))
    except Exception as exc:  # noqa: BLE001 - on record; the daily sweep asks the processor
        log.warning("deferred erasure retry: sweep not started", system=system, error=type(exc).__name__)
        return False
    return True
