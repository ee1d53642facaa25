"""Router factory: every REST route commits through ``TransactionalRoute``."""

from __future__ import annotations

from fastapi import APIRouter

from rolecall.web.deps import TransactionalRoute
from rolecall.web.errors import ERROR_RESPONSES

#: Where the REST API lives. Part of each router (not added at inclusion) so that a route's
#: ``path`` is the full template the metrics label requests with.
PREFIX = "/api/v1"


def make_router(tag: str) -> APIRouter:
    """A REST router. Its routes declare the error answers themselves: they join the app's
    route list as they are (``web.app``), so nothing is added to them at inclusion."""
    return APIRouter(
        prefix=PREFIX,
        route_class=TransactionalRoute,
        tags=[tag],
        responses=ERROR_RESPONSES,
    )
