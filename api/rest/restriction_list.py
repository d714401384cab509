"""`GET /v1/restrictions`: the restrictions of processing (Art. 18) on record, newest first, so
compliance can find every restriction in force (and lift it on its request, `POST
/v1/requests/{id}/lift-restriction`). Request ids and grounds only: no subject's address."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder

from api.auth import Staff, require_role
from api.deps import Pool
from dsrflow.stores.restrictions_store import as_view, list_restrictions

router = APIRouter(prefix="/v1/restrictions", tags=["restrictions"])


@router.get("")
async def list_all(
    staff: Annotated[Staff, require_role("compliance")],
    pool: Pool,
    active: Annotated[bool | None, Query(description="true: in force or being lifted; false: lifted")] = None,
) -> dict[str, Any]:
    rows = await list_restrictions(pool, active=active)
    return jsonable_encoder({"items": [{"request_id": str(r["request_id"]), **(as_view(r) or {})} for r in rows]})
