"""Typed exceptions for refused calls, carrying what the server said.

The server answers every refusal with ``{"error": {"code", "message", "field"?, "rule"?,
"trace"?}}`` (docs/rest-api.md); ``error_from_response`` turns that into the matching class.
"""

from __future__ import annotations

from typing import Any

import httpx


class RolecallError(Exception):
    """A call the server refused (or could not be made).

    ``status`` is the HTTP status (0 when the server was not reached), ``code`` the server's
    stable error code, ``message`` its explanation, ``rule`` the policy rule that decided a 403,
    ``field`` the offending input field, ``trace`` the policy's steps when the server sent them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "error",
        rule: str | None = None,
        field: str | None = None,
        trace: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.rule = rule
        self.field = field
        self.trace = trace or []

    def __str__(self) -> str:
        mentioned = self.rule is not None and self.rule in self.message
        suffix = f" (rule {self.rule})" if self.rule and not mentioned else ""
        return f"{self.message}{suffix}"


class ConnectionFailed(RolecallError):
    """The server could not be reached (connection refused, timeout, bad URL)."""


class AuthenticationError(RolecallError):
    """401: no credential, or the API key is unknown, revoked or expired."""


class PermissionDenied(RolecallError):
    """403: the policy refused; ``rule`` names the rule that decided."""


class NotFound(RolecallError):
    """404: the thing named does not exist (or is not visible to the caller)."""


class Conflict(RolecallError):
    """409: duplicate name, last active admin, or another state conflict."""


class LastAdmin(Conflict):
    """409 ``last_admin``: the change would leave the organization without an active admin."""


class InvalidInput(RolecallError):
    """422: the request was malformed; ``field`` names the offending input when known."""


_BY_STATUS: dict[int, type[RolecallError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
}
#: Error codes with a class of their own (a subclass of the status's class).
_BY_CODE: dict[str, type[RolecallError]] = {
    "last_admin": LastAdmin,
}


def error_from_response(response: httpx.Response) -> RolecallError:
    """The exception for a 4xx/5xx response, with the server's message, code and rule."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        # Not our error envelope (a proxy page, say): keep what there is.
        text = response.text.strip()[:500] or response.reason_phrase
        error = {"code": "http_error", "message": f"HTTP {response.status_code}: {text}"}
    cls = _BY_STATUS.get(response.status_code, RolecallError)
    special = _BY_CODE.get(str(error.get("code")))
    if special is not None and issubclass(special, cls):
        cls = special
    trace = error.get("trace")
    return cls(
        str(error.get("message") or response.reason_phrase),
        status=response.status_code,
        code=str(error.get("code") or "error"),
        rule=error.get("rule"),
        field=error.get("field"),
        trace=trace if isinstance(trace, list) else None,
    )
