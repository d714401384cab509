"""`/docs`, FastAPI's Swagger UI, served whole from dsrflow: its scripts and styles come from the
pinned PyPI package `swagger-ui-bundle` (Apache-2.0, its licence in the package's dist-info)
instead of a CDN, so the page works on a machine without Internet access and loads nothing from
another origin. ReDoc, which FastAPI would also load from a CDN, is left out."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/static/swagger-ui"


def install(app: FastAPI) -> None:
    """Before the app's own `/static` mount, which would otherwise answer for ASSETS."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")
