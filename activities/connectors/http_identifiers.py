"""Identifiers a deletion service knows the subject by (GA4: client ids, user ids, app instance
ids), read from another system's access records when the request is planned: the fan-out erases
every system at once, and the analytics data they come from may be gone by the time the
deletion service is asked. Stored in Postgres until the service accepts each one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from activities.connectors import build_connector
from activities.connectors.base import ActionOutcome, ConnectorEnv, Subject
from dsrflow.crypto.hashing import keyed_hash
from policy.http_model import Identifier


async def snapshot_identifiers(env: ConnectorEnv, identifiers: list[Identifier], subject: Subject) -> int:
    """Collect the subject's identifiers from their source systems; returns how many."""
    wanted: dict[str, list[Identifier]] = {}
    for identifier in identifiers:
        wanted.setdefault(identifier.system, []).append(identifier)
    values: set[tuple[str, str]] = set()
    for system_name, kinds in wanted.items():
        source = build_connector(replace(env, system_name=system_name, system=env.policy.systems[system_name]))
        try:
            async for record in source.access(subject):
                for kind in kinds:
                    value = record.fields.get(kind.field) if record.dataset == kind.dataset else None
                    if value not in (None, ""):
                        values.add((kind.type, kind.value_of(str(value))))
        finally:
            await source.close()
    await env.pool.executemany(
        """INSERT INTO http_identifiers (request_id, system, id_type, value_hash, value)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""",
        [(subject.request_id, env.system_name, kind,
          keyed_hash(env.secret, "http-identifier", env.system_name, kind, value), value)
         for kind, value in sorted(values)])
    return len(values)


async def open_identifiers(env: ConnectorEnv, request_id: str) -> list[dict[str, Any]]:
    """Those not yet accepted, with their values: a request closed unanswered cleared its values
    (dsrflow/stores/requests_store.py), which were then sent as the text "None"."""
    rows = await env.pool.fetch(
        """SELECT id_type, value_hash, value FROM http_identifiers
           WHERE request_id = $1 AND system = $2 AND accepted_at IS NULL AND value IS NOT NULL
           ORDER BY id_type, value_hash""",
        request_id, env.system_name)
    return [dict(r) for r in rows]


async def mark_accepted(env: ConnectorEnv, request_id: str, id_type: str, value_hash: str,
                        collected: dict[str, Any]) -> None:
    """Accepted: the value is no longer needed here, so it goes; what the service said stays (the
    pool's jsonb codec encodes it), as its step collected it (http_notes.py `kept_value`: no
    NUL, which jsonb cannot hold)."""
    await env.pool.execute(
        """UPDATE http_identifiers SET accepted_at = now(), value = NULL, collected = $5
           WHERE request_id = $1 AND system = $2 AND id_type = $3 AND value_hash = $4""",
        request_id, env.system_name, id_type, value_hash, collected)


async def accepted_summary(env: ConnectorEnv, request_id: str) -> tuple[int, int, dict[str, list[Any]]]:
    """(identifiers in all, accepted so far, collected values by name over the accepted ones)."""
    rows = await env.pool.fetch(
        "SELECT accepted_at IS NOT NULL AS accepted, collected FROM http_identifiers WHERE request_id = $1 AND system = $2",
        request_id, env.system_name)
    collected: dict[str, list[Any]] = {}
    for row in rows:
        for name, value in (row["collected"] or {}).items():
            if value is not None:
                collected.setdefault(name, []).append(value)
    return len(rows), sum(1 for r in rows if r["accepted"]), collected


async def accepted_so_far(env: ConnectorEnv, request_id: str, service: str) -> ActionOutcome:
    """What a deletion the quota held back had done: each identifier the service accepted was
    asked to delete what the service holds under it, the rest was not sent."""
    total, accepted, _ = await accepted_summary(env, request_id)
    return ActionOutcome(status="done", found=total, changed=accepted,
                         datasets={"identifiers": {"found": total, "submitted": accepted}},
                         message=f"{accepted} of {total} identifiers accepted by {service} before it; "
                                 f"the {total - accepted} left not sent")
