"""Stripe stand-in: customers, invoices and charges (API v1).

Documented behaviour it keeps: secret-key auth as a bearer token (or HTTP basic with the key as
user name), form-encoded POST bodies, lists as {object: list, data, has_more, url} newest first
with `limit` (1-100) and `starting_after`, `email` as a case-sensitive filter on customers,
`customer` on invoices and charges, an empty string unsetting a field, DELETE answering
{id, object, deleted: true}, errors as {"error": {type, code, message}}. It refuses what Stripe
refuses and a client could get wrong: a POST body that is not form-encoded, a query parameter a
list does not take, a `limit` outside 1-100, a malformed Stripe-Version; and it keeps Stripe's
idempotency: a POST's Idempotency-Key (up to 255 characters) replays the first answer given to it
(header Idempotent-Replayed: true), and the same key with other parameters is an
idempotency_error. A key in `expired` is refused as Stripe refuses an expired one: 401, code
api_key_expired."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse

from devstack.saas.common import Reply, StandIn, bearer, create_standin_app, media_type

_UNSETTABLE = {"phone", "description", "name", "shipping", "address"}
_LIST_PARAMS = {"limit", "starting_after", "ending_before", "created", "expand[]"}
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
FORM = "application/x-www-form-urlencoded"


def _error(status: int, message: str) -> dict[str, Any]:
    # A 403 is Stripe's permission error (a restricted key without the permission the request
    # needs): no code, where the stand-in said `parameter_invalid`, a request staff would then fix.
    # A rate limit's 429 has had no code since API version 2015-09-08 (it was `rate_limit`).
    kind = {401: ("invalid_request_error", None), 403: ("invalid_request_error", None),
            404: ("invalid_request_error", "resource_missing"), 409: ("idempotency_error", "idempotency_key_in_use"),
            429: ("invalid_request_error", None)}.get(status, ("api_error", None))
    if status not in (401, 403, 404, 409, 429) and status < 500:
        kind = ("invalid_request_error", "parameter_invalid")
    body: dict[str, Any] = {"type": kind[0], "message": message}
    if kind[1]:
        body["code"] = kind[1]
    return {"error": body}


def _refusal(status: int, kind: str, message: str, code: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return JSONResponse({"error": error}, status_code=status)


class StripeData:
    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        # Keys Stripe knows and refuses as expired (rolled with an expiry, a CLI key's 90 days past).
        self.expired: set[str] = set()
        self.customers: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        # Idempotency-Key -> (method, path, parameters) and the answer first given to it.
        self.idempotent: dict[str, tuple[tuple[str, str, str], JSONResponse]] = {}

    def add_customer(self, email: str, name: str, *, phone: str | None = None, created: int | None = None) -> str:
        customer_id = f"cus_{secrets.token_hex(7)}"
        self.customers[customer_id] = {
            "id": customer_id, "object": "customer", "email": email, "name": name, "phone": phone,
            "description": None, "address": None, "shipping": None, "metadata": {},
            "created": created or int(time.time()), "livemode": False}
        return customer_id

    def add_invoice(self, customer: str, created: int, total: int = 12100, currency: str = "eur") -> str:
        invoice_id = f"in_{secrets.token_hex(8)}"
        self.invoices[invoice_id] = {
            "id": invoice_id, "object": "invoice", "customer": customer,
            "customer_email": self.customers[customer]["email"], "number": f"INV-{len(self.invoices) + 1:05d}",
            "created": created, "total": total, "currency": currency, "status": "paid"}
        return invoice_id

    def add_charge(self, customer: str, created: int, amount: int = 12100) -> str:
        charge_id = f"ch_{secrets.token_hex(8)}"
        self.charges[charge_id] = {
            "id": charge_id, "object": "charge", "customer": customer, "amount": amount, "currency": "eur",
            "created": created, "paid": True, "receipt_email": self.customers[customer]["email"]}
        return charge_id


def create_stripe_app(api_key: str = "sk_test_standin") -> Any:
    data = StripeData(api_key)
    standin = StandIn("Stripe", _error)
    app = create_standin_app(standin)
    app.state.data = data

    def key_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            return base64.b64decode(header[6:]).decode(errors="replace").split(":", 1)[0]
        return bearer(request)

    def malformed(request: Request) -> JSONResponse | None:
        """What Stripe refuses before it looks at the object: a bad key, a malformed version."""
        key = key_of(request)
        if key is not None and key in data.expired:  # Stripe's authentication error for it
            return _refusal(401, "invalid_request_error", "Expired API Key provided: " + key[:8] + "****",
                            "api_key_expired")
        if key != data.api_key:
            return standin.error(401, "Invalid API Key provided.")
        version = request.headers.get("stripe-version")
        if version is not None and not _VERSION.fullmatch(version):
            return _refusal(400, "invalid_request_error", f"Invalid Stripe API version: {version}")
        return None

    def list_problem(request: Request, filter_param: str) -> JSONResponse | None:
        for name in request.query_params:
            if name not in _LIST_PARAMS | {filter_param} and not name.startswith("created["):
                return _refusal(400, "invalid_request_error", f"Received unknown parameter: {name}",
                                "parameter_unknown")
        limit = request.query_params.get("limit")
        if limit is not None and (not limit.isdigit() or not 1 <= int(limit) <= 100):
            return _refusal(400, "invalid_request_error",
                            "Invalid limit: must be an integer between 1 and 100", "parameter_invalid_integer")
        return None

    def listing(request: Request, objects: dict[str, dict[str, Any]], path: str,
                **filters: str | None) -> dict[str, Any]:
        rows = [o for o in objects.values() if all(v is None or o.get(k) == v for k, v in filters.items())]
        rows.sort(key=lambda o: (o["created"], o["id"]), reverse=True)
        after = request.query_params.get("starting_after")
        if after:
            ids = [o["id"] for o in rows]
            rows = rows[ids.index(after) + 1:] if after in ids else []
        limit = standin.page_size(request.query_params.get("limit"), 10, 100)
        return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit, "url": path}

    def list_route(path: str, objects: dict[str, dict[str, Any]],
                   filter_param: str) -> Callable[[Request], Awaitable[Reply]]:
        async def route(request: Request) -> Reply:
            if (problem := malformed(request) or list_problem(request, filter_param)) is not None:
                return problem
            return listing(request, objects, path, **{filter_param: request.query_params.get(filter_param)})
        return route

    for path, objects, filter_param in (("/v1/customers", data.customers, "email"),
                                        ("/v1/invoices", data.invoices, "customer"),
                                        ("/v1/charges", data.charges, "customer")):
        app.add_api_route(path, list_route(path, objects, filter_param), methods=["GET"], response_model=None)

    @app.post("/v1/customers/{customer_id}", response_model=None)
    async def update_customer(customer_id: str, request: Request) -> Reply:
        if (problem := malformed(request)) is not None:
            return problem
        raw = (await request.body()).decode()
        if raw and media_type(request) != FORM:
            return _refusal(400, "invalid_request_error", "Invalid request (check that your POST content type "
                            f"is {FORM}). If you have any questions, we can help at https://support.stripe.com/.")
        key = request.headers.get("idempotency-key")
        asked = ("POST", request.url.path, raw)
        if key is not None:
            if len(key) > 255:
                return _refusal(400, "invalid_request_error", "Idempotency-Key is longer than 255 characters")
            if key in data.idempotent:
                first, answer = data.idempotent[key]
                if first != asked:
                    return _refusal(400, "idempotency_error", "Keys for idempotent requests can only be used "
                                    "with the same parameters they were first used with.")
                return JSONResponse(json.loads(answer.body), status_code=answer.status_code,
                                    headers={"Idempotent-Replayed": "true"})
        answer = change_customer(customer_id, parse_qsl(raw, keep_blank_values=True))
        if key is not None:  # (Stripe keeps even a 500 for the key)
            data.idempotent[key] = asked, answer
        return answer

    def change_customer(customer_id: str, form: list[tuple[str, str]]) -> JSONResponse:
        customer = data.customers.get(customer_id)
        if customer is None:
            return standin.error(404, f"No such customer: '{customer_id}'")
        for key, value in form:
            if key.startswith("metadata[") and key.endswith("]"):
                customer["metadata"][key[9:-1]] = str(value)
            elif key in _UNSETTABLE or key == "email":
                customer[key] = None if value == "" else str(value)
            else:
                return standin.error(400, f"Received unknown parameter: {key}")
        return JSONResponse(customer)

    @app.delete("/v1/customers/{customer_id}", response_model=None)
    async def delete_customer(customer_id: str, request: Request) -> Reply:
        if (problem := malformed(request)) is not None:
            return problem
        if data.customers.pop(customer_id, None) is None:
            return standin.error(404, f"No such customer: '{customer_id}'")
        return {"id": customer_id, "object": "customer", "deleted": True}

    return app
