"""HubSpot stand-in: OAuth 2.0 tokens, contacts (CRM v3 search), their notes, GDPR delete.

Documented behaviour it keeps: `POST /oauth/2026-03/token` and the deprecated `/oauth/v1/token`
(form; refresh_token or client_credentials grant; the versioned one with no parameter in the URL)
answering {access_token, refresh_token, expires_in, token_type, hub_id, scopes}, refusals as
RFC 6749's {error, error_description} with HubSpot's {status, message}; bearer tokens that expire
(401, category EXPIRED_AUTHENTICATION); search with filterGroups (ORed, their filters ANDed; at most 5 of at most
6 filters, 18 in all; EQ and CONTAINS_TOKEN, which matches tokens), `limit` and `after`, answering
{total, results, paging.next.after}; association lists paged by `paging.next.{after, link}`;
`POST /crm/v3/objects/contacts/gdpr-delete` {objectId, idProperty} answering 204, and adding an
e-mail address that matches no contact to the blocklist; errors as
{status: error, message, correlationId, category}, a 429 as {status: error, message, errorType:
RATE_LIMIT, correlationId, policyName} with X-HubSpot-RateLimit-* headers.

What HubSpot refuses and a client could get wrong: a POST body that is not application/json
(415), a search `limit` above 200, more than five searches a second with one token (HubSpot's
search limit: 429), a GDPR delete without objectId or by a property other than email (400).
Search is eventually consistent, as HubSpot documents for its search endpoints: with
`app.state.search_lag` (seconds; 0 by default) a contact deleted that recently is still listed by
search, while reading its associations answers 404 as for any contact gone. Next-page links are absolute URLs; `app.state.link_style` "type_ids" gives them as HubSpot's
answers do (another path: /objects/0-1/{id}/associations/0-46?portalId=...&after=...), "relative"
as HubSpot's reference examples do (`?after=...`)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from devstack.saas.common import Reply, StandIn, bearer, create_standin_app, media_type

_CATEGORY = {400: "VALIDATION_ERROR", 401: "EXPIRED_AUTHENTICATION", 403: "MISSING_SCOPES",
             404: "OBJECT_NOT_FOUND", 429: "RATE_LIMITS"}


SEARCHES_PER_SECOND = 5
THROTTLED = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "100",
             "X-HubSpot-RateLimit-Remaining": "0"}


def _error(status: int, message: str) -> dict[str, Any]:
    if status == 429:  # the rate limiter's own shape: no category
        return {"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()), "policyName": "SECONDLY"}
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": _CATEGORY.get(status, "INTERNAL_ERROR")}


def _tokens(text: Any) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", str(text or "").lower()))


# EQ: the whole value, case aside; CONTAINS_TOKEN: every token of the value among the property's
# (words and numbers: "ada@example.com" is in "x@y.com;ada@example.com", and in "ada@example.com.au").
_OPERATORS = {"EQ": lambda have, want: str(have or "").lower() == str(want).lower(),
              "CONTAINS_TOKEN": lambda have, want: _tokens(want) <= _tokens(have)}


def _matches(contact: dict[str, Any], search_filter: dict[str, Any]) -> bool:
    have = contact["properties"].get(search_filter.get("propertyName"))
    return bool(_OPERATORS[search_filter["operator"]](have, search_filter.get("value")))


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubSpotData:
    def __init__(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        self.client_id, self.client_secret, self.refresh_token = client_id, client_secret, refresh_token
        self.contacts: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.note_links: dict[str, list[str]] = {}  # contact id -> note ids
        self.blocklist: set[str] = set()
        self.gdpr_deleted: list[str] = []
        self.deleted_at: dict[str, tuple[float, dict[str, Any]]] = {}  # contact id -> (when, the contact)

    def add_contact(self, email: str, firstname: str, lastname: str, **properties: str) -> str:
        contact_id = str(100 + len(self.contacts) + len(self.gdpr_deleted))
        self.contacts[contact_id] = {
            "id": contact_id, "createdAt": _stamp(), "updatedAt": _stamp(), "archived": False,
            "properties": {"email": email, "firstname": firstname, "lastname": lastname,
                           "hs_object_id": contact_id, **properties}}
        self.note_links[contact_id] = []
        return contact_id

    def add_note(self, contact_id: str, body: str) -> str:
        note_id = str(9000 + len(self.notes))
        self.notes[note_id] = {"id": note_id, "createdAt": _stamp(), "updatedAt": _stamp(), "archived": False,
                               "properties": {"hs_note_body": body, "hs_timestamp": _stamp()}}
        self.note_links[contact_id].append(note_id)
        return note_id

    def find(self, email: str) -> str | None:
        return next((cid for cid, c in self.contacts.items()
                     if c["properties"]["email"].lower() == email.strip().lower()), None)


def create_hubspot_app(client_id: str = "standin-client", client_secret: str = "standin-secret",
                       refresh_token: str = "standin-refresh") -> Any:
    data = HubSpotData(client_id, client_secret, refresh_token)
    standin = StandIn("HubSpot", _error, throttle_headers=dict(THROTTLED))
    app = create_standin_app(standin)
    app.state.data = data
    app.state.link_style = "absolute"
    app.state.search_lag = 0.0
    searches: dict[str, deque[float]] = {}  # token -> when its last searches came

    def refused(request: Request) -> Response | None:
        token = bearer(request)
        if token is None or not standin.tokens.valid(token):
            return standin.error(401, "The OAuth token used to make this call expired or is not valid.")
        return None

    async def json_document(request: Request) -> dict[str, Any] | Response:
        if media_type(request) != "application/json":
            return standin.error(415, f"Content type '{media_type(request)}' not supported")
        try:
            document = json.loads(await request.body())
        except ValueError:
            return standin.error(400, "Invalid input JSON")
        return document if isinstance(document, dict) else standin.error(400, "Invalid input JSON")

    def search_throttled(request: Request) -> Response | None:
        recent = searches.setdefault(bearer(request) or "", deque())
        now = time.monotonic()
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= SEARCHES_PER_SECOND:
            return standin.error(429, "search rate limit")  # the search API sends no rate headers
        recent.append(now)
        return None

    def oauth_error(error: str, status: str, message: str) -> Response:
        """RFC 6749's {error, error_description}, with HubSpot's older status and message."""
        return JSONResponse({"error": error, "error_description": message, "status": status, "message": message},
                            status_code=400)

    @app.post("/oauth/v1/token", response_model=None)  # deprecated: HubSpot ends it on 16 February 2027
    @app.post("/oauth/2026-03/token", response_model=None)
    async def token(request: Request) -> Reply:
        if request.url.path.endswith("/2026-03/token") and request.url.query:
            # The versioned endpoint takes its parameters in the body only (never in the URL, logs).
            return oauth_error("invalid_request", "BAD_REQUEST", "parameters must be in the form-encoded body")
        if media_type(request) != "application/x-www-form-urlencoded":
            return oauth_error("invalid_request", "BAD_REQUEST", "the body must be form-encoded")
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("client_id") != data.client_id or form.get("client_secret") != data.client_secret:
            return oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or unknown client_id / client_secret")
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") != data.refresh_token:
                return oauth_error("invalid_grant", "BAD_REFRESH_TOKEN", "refresh token is invalid, expired or revoked")
        elif form.get("grant_type") != "client_credentials":
            return oauth_error("unsupported_grant_type", "BAD_GRANT_TYPE", "unsupported grant_type")
        # HubSpot's refresh token stays the same: its docs say to store the one from the install
        # and use it for every new access token.
        return {**standin.tokens.issue(), "refresh_token": data.refresh_token, "hub_id": 62515,
                "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"]}

    @app.post("/crm/v3/objects/contacts/search", response_model=None)
    async def search(request: Request) -> Reply:
        if (refusal := refused(request)) is not None:
            return refusal
        query = await json_document(request)
        if isinstance(query, Response):
            return query
        if (throttled := search_throttled(request)) is not None:
            return throttled
        if int(query.get("limit") or 10) > 200:
            return standin.error(400, "limit: must be less than or equal to 200")
        groups = [group.get("filters", []) for group in query.get("filterGroups", [])]
        if len(groups) > 5 or any(len(g) > 6 for g in groups) or sum(map(len, groups)) > 18:
            return standin.error(400, "at most 5 filterGroups of at most 6 filters each, 18 filters in all")
        if unknown := {f.get("operator") for g in groups for f in g} - set(_OPERATORS):
            return standin.error(400, f"operator {sorted(map(str, unknown))[0]} is not supported by the stand-in")
        lagging = [c for at, c in data.deleted_at.values() if time.monotonic() - at < app.state.search_lag]
        rows = [r for r in list(data.contacts.values()) + lagging
                if not groups or any(all(_matches(r, f) for f in g) for g in groups)]  # groups ORed, filters ANDed
        start = int(query.get("after") or 0)
        limit = standin.page_size(query.get("limit"), 10, 200)
        page = rows[start:start + limit]
        wanted = query.get("properties") or ["email", "firstname", "lastname"]
        body: dict[str, Any] = {"total": len(rows), "results": [
            {**r, "properties": {k: v for k, v in r["properties"].items() if k in wanted or k == "hs_object_id"}}
            for r in page]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    @app.get("/crm/v3/objects/contacts/{contact_id}/associations/notes", response_model=None)
    # The object type ids HubSpot's own next links use: 0-1 contacts, 0-46 notes.
    @app.get("/crm/v3/objects/0-1/{contact_id}/associations/0-46", response_model=None)
    async def associations(contact_id: str, request: Request) -> Reply:
        if (refusal := refused(request)) is not None:
            return refusal
        if contact_id not in data.contacts:
            return standin.error(404, "Object not found.")
        links = data.note_links[contact_id]
        start = int(request.query_params.get("after") or 0)
        limit = standin.page_size(request.query_params.get("limit"), 100, 500)
        body: dict[str, Any] = {"results": [{"id": n, "type": "contact_to_note"} for n in links[start:start + limit]]}
        if start + limit < len(links):
            after = str(start + limit)
            if app.state.link_style == "relative":
                link = f"?after={after}"
            elif app.state.link_style == "type_ids":  # as HubSpot answers: by object type ids, with the portal
                link = f"{request.base_url}crm/v3/objects/0-1/{contact_id}/associations/0-46?portalId=62515&after={after}"
            else:
                link = str(request.url.include_query_params(after=after))
            body["paging"] = {"next": {"after": after, "link": link}}
        return body

    @app.get("/crm/v3/objects/notes/{note_id}", response_model=None)
    async def note(note_id: str, request: Request) -> Reply:
        if (refusal := refused(request)) is not None:
            return refusal
        if note_id not in data.notes:
            return standin.error(404, "Object not found.")
        return data.notes[note_id]

    @app.post("/crm/v3/objects/contacts/gdpr-delete", response_model=None)
    async def gdpr_delete(request: Request) -> Reply:
        if (refusal := refused(request)) is not None:
            return refusal
        document = await json_document(request)
        if isinstance(document, Response):
            return document
        object_id, id_property = str(document.get("objectId") or ""), document.get("idProperty")
        if not object_id:
            return standin.error(400, "objectId: must not be empty")
        if id_property not in (None, "email", "hs_object_id"):
            return standin.error(400, f"Property {id_property} is not a unique identifier property")
        contact_id = data.find(object_id) if id_property == "email" else object_id
        if contact_id not in data.contacts:
            if id_property == "email":
                data.blocklist.add(object_id.strip().lower())
                return Response(status_code=204)
            return standin.error(404, "Object not found.")
        contact = data.contacts.pop(contact_id)
        data.deleted_at[contact_id] = (time.monotonic(), contact)
        for note_id in data.note_links.pop(contact_id, []):
            data.notes.pop(note_id, None)
        data.gdpr_deleted.append(contact["properties"]["email"])
        return Response(status_code=204)

    return app
