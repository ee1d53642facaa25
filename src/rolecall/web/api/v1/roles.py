"""REST routes: roles."""

from __future__ import annotations

from rolecall.web.api.v1._router import make_router

router = make_router("roles")
