"""A cap on the REST API's request bodies, enforced before anything reads or parses them.

Every REST body is a small JSON object: the largest a schema allows (LDAP settings with 500
allowed groups, a project made with 100 members, a role with every permission) is some tens of
kilobytes, so ``MAX_BODY`` (1 MiB) stands well clear of any legitimate one. Without it, a
body of any size was read into memory and parsed before validation refused it, even on
unauthenticated routes such as ``POST /api/v1/auth/login``.

A declared ``Content-Length`` over the cap is refused at once, unread; a body without one
(chunked) is counted as it arrives and refused once it passes the cap. Both are 413
``payload_too_large`` in the REST error format (RFC 9110 §15.5.14). SCIM, GraphQL and the
OAuth token endpoint keep the limits of their own (``scim.messages.MAX_BODY``,
``graphql.endpoint.MAX_BODY``, ``forms.MAX_BODY``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from rolecall.web.errors import PAYLOAD_TOO_LARGE, error_response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The REST API's paths.
PREFIX = "/api/v1"
#: The largest REST request body, in bytes.
MAX_BODY = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the cap. An ``HTTPException``, so
    FastAPI's body parsing lets it through to the error handlers (``web.errors``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


class LimitRequestBodies:
    """ASGI middleware: REST request bodies are at most ``max_bytes`` (see the module)."""

    def __init__(self, app: Any, *, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_rest(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, noting_start)
        except BodyTooLarge:
            # Raised where no error handler answers it (a middleware reading the body, such as
            # the access cache's fast lane).
            if started:
                raise
            await _refuse(scope, receive, send, limit)


def _is_rest(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses such a request before it gets here
    return None


def _message(limit: int) -> str:
    return f"request bodies are at most {limit} bytes"


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = error_response(413, PAYLOAD_TOO_LARGE, _message(limit))
    # The rest of the body is not read: the connection is not reused for another request.
    response.headers["Connection"] = "close"
    await response(scope, receive, send)
