"""`/docs`, FastAPI's Swagger UI, served whole from dsrflow: its scripts and styles come from the
pinned PyPI package `fastapi-swagger` (MIT; Swagger UI itself is Apache-2.0), which ships a
current Swagger UI, instead of a CDN, so the page works on a machine without Internet access and
loads nothing from another origin. Swagger UI 5 or later: FastAPI writes OpenAPI 3.1, which
Swagger UI 4 refuses to render ("Unable to render this definition"). ReDoc, which FastAPI would
also load from a CDN, is left out."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/static/swagger-ui"
# Only the package's files are used, not its patching of the app (fastapi_swagger.patch_fastapi).
SWAGGER_UI = files("fastapi_swagger") / "resources"


def install(app: FastAPI) -> None:
    """Before the app's own `/static` mount, which would otherwise answer for ASSETS."""
    app.mount(ASSETS, StaticFiles(directory=str(SWAGGER_UI)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")
