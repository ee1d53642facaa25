"""Maps the error tree onto REST JSON, once: ``{"error": {"code", "message", "field"?}}``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount

from rolecall.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RolecallError,
    Unavailable,
)
from rolecall.scim.errors import INVALID_SYNTAX, INVALID_VALUE, ScimError, from_domain
from rolecall.web import metrics

log = logging.getLogger("rolecall.web")

#: The code of a 413 (``web.body_limit``).
PAYLOAD_TOO_LARGE = "payload_too_large"
#: The code of a 503 while the database cannot be used, and what it says.
DATABASE_UNAVAILABLE = "database_unavailable"
DATABASE_UNAVAILABLE_MESSAGE = "the database is unavailable; try again later"
#: How long a client is asked to wait before trying again after ``DATABASE_UNAVAILABLE``.
RETRY_AFTER_SECONDS = 5

#: SQLite's primary result codes (the low byte of an extended one) for a database that cannot
#: be used now, though nothing is wrong with the statement: SQLITE_BUSY ("database is locked":
#: another process held the write lock past the busy timeout), SQLITE_LOCKED, SQLITE_IOERR,
#: SQLITE_FULL, SQLITE_CANTOPEN. "no such table" and the like are SQLITE_ERROR (1): bugs.
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 13, 14})
#: PostgreSQL's SQLSTATEs for a server that cannot serve this connection now: class 08
#: (connection exceptions) by prefix, too_many_connections, and the server shutting down,
#: restarting or starting up (admin_shutdown, crash_shutdown, cannot_connect_now).
_POSTGRES_UNAVAILABLE = frozenset({"53300", "57P01", "57P02", "57P03"})

STATUS = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    Unavailable: 503,
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    rule: str | None = None
    trace: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    """Every REST error has this shape."""

    error: ErrorDetail


#: The error answers every documented route declares (its router's ``responses``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Malformed request (the body is not JSON)",
        401: "Missing or invalid credentials",
        403: "Refused by the policy; the body names the rule",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "The request body is too large",
        422: "Invalid input",
    }.items()
}


#: For the routes that talk to a directory or identity provider (declared on those routes only).
UNAVAILABLE_RESPONSE = {
    503: {
        "model": ErrorBody,
        "description": "A directory or identity provider rolecall depends on cannot be used now",
    }
}


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be used right now (stopped, unreachable, out
    of connections, or SQLite's write lock held by another process past the busy timeout),
    rather than that the statement is wrong: only these become 503, a bug stays a 500."""
    if isinstance(error, PoolTimeout):
        return True  # every pooled connection stayed busy past the pool's timeout
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True  # SQLAlchemy saw the connection drop ("server closed the connection")
    if not isinstance(error, OperationalError):
        return False
    orig = error.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code & 0xFF in _SQLITE_UNAVAILABLE
    if hasattr(orig, "sqlstate"):  # psycopg
        # An OperationalError without a SQLSTATE comes from the client's side of the
        # connection (refused, reset, closed): the server never answered.
        sqlstate = orig.sqlstate
        return sqlstate is None or sqlstate[:2] == "08" or sqlstate in _POSTGRES_UNAVAILABLE
    return False


def status_for(error: RolecallError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 400


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if field:
        body["field"] = field
    headers = {"WWW-Authenticate": 'Basic realm="rolecall"'} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def graphql_error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A GraphQL-over-HTTP error answer: ``{"errors": [{message, extensions: {code}}]}``."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Basic realm="rolecall"')
    return JSONResponse(body, status_code=status, headers=headers or None)


#: A token endpoint's answers are never cached (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error_response(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An OAuth 2.0 error answer (RFC 6749 §5.2): ``{"error", "error_description"}``."""
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


#: Paths answering errors in a format of their own (the rest: REST's, or SCIM's under /scim).
GRAPHQL_PATH = "/graphql"
OAUTH_TOKEN_PATH = "/oidc/token"


#: The methods a 405's ``Allow`` may name: those rolecall's routes take.
ROUTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """The methods this request's path takes, as ``Allow`` lists them: each tried against the
    app's routes (into mounts such as /scim's), as routing would try it."""
    routes = request.app.router.routes
    scope = request.scope
    # Routing into a mount moved ``root_path`` to the mount's; the app's is kept aside.
    top = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    allowed = [m for m in ROUTED_METHODS if _routed(routes, {**top, "method": m})]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")  # served as GET (``web.head``)
    return ", ".join(allowed)


def _routed(routes: list[BaseRoute], scope: dict[str, object]) -> bool:
    for route in routes:
        match, child = route.matches(scope)
        if match != Match.FULL:
            continue
        if not isinstance(route, Mount):
            return True
        if _routed(route.routes, {**scope, **child}):
            return True
    return False


def _routing_error(
    request: Request, status: int, detail: str, headers: dict[str, str]
) -> JSONResponse:
    """A 404 or 405 from routing (no such path, a method the path does not take), in the
    format of the surface the path belongs to."""
    if status == 405:
        allowed = headers.get("Allow")
        # Both echoed: the method is any token a client sent, the path as long as it liked.
        detail = f"{request.method[:32]} is not allowed on {request.url.path[:200]}" + (
            f"; use {allowed}" if allowed else ""
        )
    code = {404: "not_found", 405: "method_not_allowed", 413: PAYLOAD_TOO_LARGE}.get(
        status, "http_error"
    )
    if status == 400:
        # FastAPI's own refusal of a body it cannot decode as JSON: not UTF-8, or nested past
        # the parser's recursion (rolecall raises no HTTPException of its own).
        code, detail = "malformed_json", "the request body is not valid JSON"
    if _is_scim(request):
        return scim_error_response(ScimError(status, detail))
    if request.url.path == GRAPHQL_PATH:
        return graphql_error_response(status, detail, code)
    if request.url.path == OAUTH_TOKEN_PATH:
        return oauth_error_response(status, "invalid_request", detail)
    return error_response(status, code, detail)


def _is_scim(request: Request) -> bool:
    path = request.url.path
    return path == "/scim" or path.startswith("/scim/")


def scim_error_response(error: ScimError) -> JSONResponse:
    """A SCIM ``Error`` message (RFC 7644 §3.12): the SCIM surface never answers in REST form."""
    headers = {"WWW-Authenticate": 'Basic realm="rolecall"'} if error.status == 401 else None
    return JSONResponse(
        error.body(),
        status_code=error.status,
        media_type="application/scim+json",
        headers=headers,
    )


def database_unavailable_response(request: Request) -> JSONResponse:
    """503 while the database cannot be used, in the format of the request's surface, with
    ``Retry-After`` (RFC 9110 §10.2.3)."""
    message = DATABASE_UNAVAILABLE_MESSAGE
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if _is_scim(request):
        response = scim_error_response(ScimError(503, message))
    elif request.url.path == GRAPHQL_PATH:
        response = graphql_error_response(503, message, DATABASE_UNAVAILABLE)
    elif request.url.path == OAUTH_TOKEN_PATH:
        response = oauth_error_response(503, "temporarily_unavailable", message)
    else:
        response = error_response(503, DATABASE_UNAVAILABLE, message)
    response.headers.update(headers)
    return response


def install(app: FastAPI) -> None:
    @app.exception_handler(ScimError)
    async def _scim_error(request: Request, exc: ScimError) -> JSONResponse:
        return scim_error_response(exc)

    @app.exception_handler(RolecallError)
    async def _rolecall_error(request: Request, exc: RolecallError) -> JSONResponse:
        if _is_scim(request):
            return scim_error_response(from_domain(exc))
        status = status_for(exc)
        if status == 401:
            metrics.AUTH_FAILURES.labels(reason=exc.code).inc()
        headers = {"WWW-Authenticate": 'Basic realm="rolecall"'} if status == 401 else None
        return JSONResponse({"error": exc.as_dict()}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _is_scim(request):
            return scim_error_response(ScimError(400, "invalid request", INVALID_SYNTAX))
        errors = exc.errors()
        if any(error.get("type") == "json_invalid" for error in errors):
            return error_response(400, "malformed_json", "the request body is not valid JSON")
        first = errors[0] if errors else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        message = first.get("msg", "invalid input")
        field = ".".join(loc) or None
        return error_response(
            422, "invalid_input", f"{field}: {message}" if field else message, field
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # A 405 must say what the path takes (RFC 9110 §15.5.6). Starlette's ``Allow``
            # names the methods of the first route on the path only; a path served by several
            # routes (SCIM's GET and POST /Users) takes all of theirs.
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        response = _routing_error(request, exc.status_code, str(exc.detail), headers)
        response.headers.update(headers)
        return response

    @app.exception_handler(DataError)
    async def _unstorable_value(request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses to hold or compare (PostgreSQL: a NUL character in
        # text, an integer out of range): bad input, and the request's transaction is rolled
        # back. The statement and its parameters stay out of the answer and the log.
        log.info("refused an unstorable value on %s %s", request.method, request.url.path)
        message = "a value cannot be stored (for example, text holding a NUL character)"
        if _is_scim(request):
            return scim_error_response(ScimError(400, message, INVALID_VALUE))
        return error_response(422, "invalid_input", message)

    @app.exception_handler(SQLAlchemyError)
    async def _database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a bug: the catch-all below answers 500 and the server logs it
        # One line: the driver's error class and first line, no traceback, SQL or values.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.warning(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.url.path[:200],
            type(getattr(exc, "orig", None) or exc).__name__,
            reason[0][:200] if reason else "",
        )
        return database_unavailable_response(request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex
        log.error(
            "unexpected error %s on %s %s: %r", request_id, request.method, request.url.path, exc
        )
        if _is_scim(request):
            return scim_error_response(ScimError(500, f"internal error (request id {request_id})"))
        return error_response(500, "internal", f"internal error (request id {request_id})")
