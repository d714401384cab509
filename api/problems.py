"""Errors as `application/problem+json` (RFC 9457), with one entry per bad field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.read_models.cursors import InvalidCursor
from dsrflow.i18n import SOURCE_LANGUAGE, worded

PROBLEM = "application/problem+json"


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        # `wording`: the words of a law its detail speaks in (dsrflow/i18n `worded`: "we deleted
        # your data" under the CCPA, where the message says the GDPR's "erased"), which the JSON's
        # detail and a page's translation of it say; not a key of the JSON.
        self.wording: str | None = extra.pop("wording", None)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(status: int, title: str, detail: str | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple) -> str:
    # Drop the "body"/"query" prefix: callers know where they put the field.
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header") else [str(p) for p in loc]
    return ".".join(parts) or "body"


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [{"field": _field(tuple(e.get("loc", ()))), "message": _message(e)} for e in errors]


def _message(error: Mapping[str, Any]) -> str:
    # pydantic's "Field required" reads as a fault of the form to someone who typed only spaces
    # into a box (a console form leaves blanks out, so they arrive as missing).
    if error.get("type") == "missing":
        return "is required, and was left out or empty"
    return str(error["msg"]).removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(list(exc.errors()))
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(InvalidCursor)
    async def _cursor(request: Request, exc: InvalidCursor) -> JSONResponse:
        # Every paged listing takes its cursor as the query parameter `cursor`.
        return problem_response(422, "Invalid request", f"cursor: {exc}",
                                errors=[{"field": "cursor", "message": str(exc)}])

    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    async def _unstorable_text(request: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        # A body field the schema did not guard (NUL characters cannot be stored in PostgreSQL).
        return problem_response(422, "Invalid request", "text must not contain NUL (\\u0000) characters")

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        detail = worded(SOURCE_LANGUAGE, exc.wording).gettext(exc.detail) if exc.detail and exc.wording else exc.detail
        return problem_response(exc.status, exc.title, detail, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem_response(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response
