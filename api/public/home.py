"""The address `make run` prints: `GET /` leads a browser to the console's sign-in (whose page
links the portal and the API's docs) and gives an API client an index of where things are."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.auth import SIGN_IN_PATH
from api.pages import prefers_html

router = APIRouter(include_in_schema=False)

INDEX = {
    "name": "dsrflow",
    "links": {
        "api": "/v1",
        "openapi": "/openapi.json",
        "docs": "/docs",
        "portal": "/portal",
        "console": "/console/",
        "health": "/healthz",
    },
}


@router.get("/")
async def home(request: Request) -> Response:
    if prefers_html(request.headers.get("accept")):
        return RedirectResponse(SIGN_IN_PATH, status_code=303)
    return JSONResponse(INDEX)


@router.get("/v1")
async def api_index() -> JSONResponse:
    """The index again where the API's paths start, so its `api` link leads somewhere."""
    return JSONResponse(INDEX)
