"""Mailchimp Marketing API 3.0 stand-in: audiences (lists) and their members.

Documented behaviour it keeps: HTTP basic auth with any user name and the API key as password
(or an OAuth bearer token), `GET /3.0/lists` paged by `count` (max 1000) and `offset` with
`total_items`, members addressed by subscriber_hash (MD5 of the lower-cased address), PATCH of a
member's status, `POST .../members/{hash}/actions/delete-permanent` answering 204, errors as
application/problem+json {type, title, status, detail, instance}. `fields` and `exclude_fields`
(comma-separated dotted paths) shape an answer as Mailchimp does: a field not asked for is not
there. What Mailchimp refuses and a client could get wrong: a missing or wrong API key (401), a
PATCH body that is not JSON (400)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from devstack.saas.common import Reply, StandIn, bearer, create_standin_app, media_type

PROBLEM = "application/problem+json"
_TITLES = {400: "Invalid Resource", 401: "API Key Invalid", 404: "Resource Not Found",
           405: "Method Not Allowed", 429: "Too Many Requests"}


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def _paths(text: str | None) -> list[list[str]]:
    return [p.strip().split(".") for p in (text or "").split(",") if p.strip()]


def shaped(document: Any, fields: list[list[str]], exclude: list[list[str]]) -> Any:
    """`document` with only the `fields` paths (all when none) and without the `exclude` ones;
    a path runs through the items of a list (lists.id: the id of each list)."""
    if isinstance(document, list):
        return [shaped(item, fields, exclude) for item in document]
    if not isinstance(document, dict):
        return document
    out: dict[str, Any] = {}
    for key, value in document.items():
        if [key] in exclude or (fields and not any(p[0] == key for p in fields)):
            continue
        inner = [p[1:] for p in fields if p[0] == key and len(p) > 1]
        if fields and any(p == [key] for p in fields):
            inner = []  # the whole field was asked for
        out[key] = shaped(value, inner, [p[1:] for p in exclude if p[0] == key and len(p) > 1])
    return out


def _error(status: int, message: str) -> dict[str, Any]:
    return {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": _TITLES.get(status, "Internal Server Error"), "status": status, "detail": message,
            "instance": str(uuid.uuid4())}


class MailchimpData:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.lists: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, dict[str, Any]]] = {}  # list id -> hash -> member
        self.deleted: set[str] = set()  # "list/hash": Mailchimp refuses to re-add these

    def add_list(self, name: str) -> str:
        list_id = secrets.token_hex(5)
        self.lists[list_id] = {"id": list_id, "name": name, "date_created": datetime.now(UTC).isoformat()}
        self.members[list_id] = {}
        return list_id

    def add_member(self, list_id: str, email: str, status: str = "subscribed", **merge_fields: str) -> str:
        digest = subscriber_hash(email)
        self.members[list_id][digest] = {
            "id": digest, "email_address": email, "unique_email_id": secrets.token_hex(5), "status": status,
            "merge_fields": merge_fields, "list_id": list_id, "ip_signup": "203.0.113.7",
            "timestamp_signup": datetime.now(UTC).isoformat(timespec="seconds"), "tags": []}
        return digest


def create_mailchimp_app(api_key: str = "standin0000-us21") -> Any:
    data = MailchimpData(api_key)
    standin = StandIn("Mailchimp", _error)
    app = create_standin_app(standin, media_type=PROBLEM)
    app.state.data = data

    def problem(status: int, detail: str) -> Response:
        return standin.error(status, detail, media_type=PROBLEM)

    def refused(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            password = base64.b64decode(header[6:]).decode(errors="replace").partition(":")[2]
            if password == data.api_key:
                return None
        elif bearer(request) == data.api_key:
            return None
        return problem(401, "Your API key may be invalid, or you've attempted to access the wrong datacenter.")

    def member_of(request: Request, list_id: str, digest: str) -> dict[str, Any] | Response:
        if (refusal := refused(request)) is not None:
            return refusal
        member = data.members.get(list_id, {}).get(digest)
        if member is None:
            return problem(404, "The requested resource could not be found.")
        return member

    @app.get("/3.0/lists", response_model=None)
    async def lists(request: Request) -> Reply:
        if (refusal := refused(request)) is not None:
            return refusal
        offset = int(request.query_params.get("offset") or 0)
        count = standin.page_size(request.query_params.get("count"), 10, 1000)
        rows = list(data.lists.values())
        answer = {"lists": rows[offset:offset + count], "total_items": len(rows),
                  "constraints": {"may_create": True, "max_instances": 5, "current_total_instances": len(rows)},
                  "_links": []}
        return shaped(answer, _paths(request.query_params.get("fields")),
                      _paths(request.query_params.get("exclude_fields")))

    @app.get("/3.0/lists/{list_id}/members/{digest}", response_model=None)
    async def member(list_id: str, digest: str, request: Request) -> Reply:
        found = member_of(request, list_id, digest)
        if isinstance(found, Response):
            return found
        return shaped(found, _paths(request.query_params.get("fields")),
                      _paths(request.query_params.get("exclude_fields")))

    @app.patch("/3.0/lists/{list_id}/members/{digest}", response_model=None)
    async def update_member(list_id: str, digest: str, request: Request) -> Reply:
        found = member_of(request, list_id, digest)
        if isinstance(found, Response):
            return found
        try:
            changes = json.loads(await request.body()) if media_type(request) == "application/json" else None
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return problem(400, "We encountered an unspecified JSON parsing error.")
        if changes.get("status") not in (None, "subscribed", "unsubscribed", "cleaned", "pending"):
            return problem(400, "The resource submitted could not be validated.")
        found.update({k: v for k, v in changes.items() if k in ("status", "merge_fields")})
        return found

    @app.post("/3.0/lists/{list_id}/members/{digest}/actions/delete-permanent", response_model=None)
    async def delete_permanent(list_id: str, digest: str, request: Request) -> Reply:
        found = member_of(request, list_id, digest)
        if isinstance(found, Response):
            return found
        del data.members[list_id][digest]
        data.deleted.add(f"{list_id}/{digest}")
        return Response(status_code=204)

    return app
