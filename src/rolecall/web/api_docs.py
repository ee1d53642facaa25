"""The REST API's reference page (``/api/v1/docs``), with its assets served by rolecall itself.

FastAPI's own page loads Swagger UI from a CDN, which a self-hosted server on a network without
internet access cannot reach: the page stayed blank. The same page is served here with Swagger
UI's files from the ``fastapi-offline`` package (Swagger UI 5, which reads OpenAPI 3.1).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/v1/docs"
ASSETS_URL = f"{DOCS_URL}/assets"

router = APIRouter(include_in_schema=False)


@router.get(DOCS_URL)
async def api_reference() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/api/v1/openapi.json",
        title="rolecall API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


#: Built once, as the routes are: every app of the process shares it (``web.app``).
_ASSETS = StaticFiles(directory=str(files("fastapi_offline") / "static"))


def mount_assets(app: FastAPI) -> None:
    """Swagger UI's files, at ``ASSETS_URL``."""
    app.mount(ASSETS_URL, _ASSETS, name="api-docs-assets")
