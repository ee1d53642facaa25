"""``HEAD`` wherever ``GET`` is served (RFC 9110 §9.3.2: "identical to GET except that the
server MUST NOT send content"; §9.1: general-purpose servers MUST support it).

FastAPI's routes take only the methods they declare, so every ``GET`` route answered ``HEAD``
with 405. Rather than declare ``HEAD`` on each, this middleware runs a ``HEAD`` request as the
``GET`` it stands for and drops the body: same status, same headers (``Content-Length`` of the
body a ``GET`` would receive), no content. A path without ``GET`` answers 405 as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: What routing records in the scope it is given, and ``metrics.route_template`` reads.
_ROUTING_KEYS = ("app_root_path", "endpoint", "path_params", "root_path", "route")


class HeadAsGet:
    """ASGI middleware: ``HEAD`` runs as ``GET``, without the body (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server reads the request's method from its own scope while it sends
        # (uvicorn sends no body for HEAD, and expects none).
        as_get = {**scope, "method": "GET"}

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(as_get, receive, without_body)
        finally:
            # The middlewares outside (the metrics) label the request by the route matched.
            for key in _ROUTING_KEYS:
                if key in as_get:
                    scope[key] = as_get[key]
