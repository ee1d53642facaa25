"""Router factory: every REST route commits through ``TransactionalRoute``."""

from __future__ import annotations

from fastapi import APIRouter

from rolecall.web.deps import TransactionalRoute


def make_router(tag: str) -> APIRouter:
    return APIRouter(route_class=TransactionalRoute, tags=[tag])
