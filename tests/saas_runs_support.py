"""The Mailchimp stand-in as the long-run tests use it (tests/test_saas_long_runs.py,
tests/test_saas_run_journal.py): the shipped configuration at a test's pace, Mailchimp's rate limit
in front of the stand-in, a subject in many lists, and what its deletes were answered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from devstack.saas.mailchimp import PROBLEM, create_mailchimp_app
from tests.fanout_stack import served
from tests.yaml_files import read_yaml

KEY = "0123456789abcdef-us21"
PER_SECOND = 400  # what the connector paces itself to (Mailchimp's own yaml says 5, for 10 at once)
SERVICE_LIMIT = 450  # what the stand-in answers before it refuses with a 429


def newsletter() -> dict[str, Any]:
    """The shipped Mailchimp configuration with a faster pace (a test cannot wait an hour)."""
    config = read_yaml(Path(__file__).resolve().parents[1] / "policy/http/mailchimp.yaml")
    config["limits"]["per_second"] = PER_SECOND
    return {"label": "Newsletter", "connector": "http", "config": config}


def rate_limited(app: Any, per_second: int) -> None:
    """Mailchimp's limit in front of the stand-in: past `per_second` requests in a second, a 429
    with Mailchimp's problem document, as its API answers."""
    arrivals: list[float] = []
    standin = app.state.standin

    @app.middleware("http")
    async def limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        now = time.monotonic()
        arrivals[:] = [t for t in arrivals if now - t < 1.0]
        if len(arrivals) >= per_second:
            return standin.error(429, "You have exceeded the limit of 10 simultaneous connections.",
                                 media_type=PROBLEM)
        arrivals.append(now)
        return await call_next(request)


@asynccontextmanager
async def mailchimp(monkeypatch: Any) -> AsyncIterator[Any]:
    app = create_mailchimp_app(KEY)
    rate_limited(app, SERVICE_LIMIT)
    async with served(app) as url:
        monkeypatch.setenv("MAILCHIMP_API_BASE", url)
        monkeypatch.setenv("MAILCHIMP_API_KEY", KEY)
        yield app


def member_of_lists(app: Any, email: str, lists: int) -> None:
    data = app.state.data
    for n in range(lists):
        data.add_member(data.add_list(f"List {n}"), email, FNAME="Ada")


def answered(document: Any, empty: int = 204) -> Response:
    """The stand-in's own answer to a delete, for a tamper to pass on: its problem document (a
    404), or no content with the status `empty` (204 as Mailchimp answers, or what a test makes it)."""
    if document is not None:
        return JSONResponse(document, status_code=document["status"], media_type=PROBLEM)
    return Response(status_code=empty)


def deletes(app: Any) -> list[int]:
    """The statuses the stand-in answered to delete-permanent requests, in order."""
    return [s.status for s in app.state.standin.requests("POST", "/actions/delete-permanent")]


class HeldAnswer(Response):
    """The stand-in's answer to a request it has carried out, sent once `gate` opens: the service
    has acted, and its caller does not know yet."""

    def __init__(self, gate: asyncio.Event, answer: Response) -> None:
        super().__init__(status_code=answer.status_code)
        self._gate, self._answer = gate, answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._gate.wait()
        await self._answer(scope, receive, send)
