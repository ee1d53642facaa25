"""``POST /graphql``: the wandb SDK's surface, executed with graphql-core over ``schema``.

Request: ``{"query", "variables"?, "operationName"?}`` (JSON). The SDK sends
``"operationName": ""`` for every document of one operation: that means "the only one".

Answers:

* 200 ``{"data": ...}`` when the document ran; refusals and bad arguments add ``errors``
  (``extensions.code`` is the REST error code, ``extensions.rule`` the rule that denied). A
  request with errors changes nothing: its transaction is rolled back.
* 400 ``{"errors": [...]}`` when nothing could run: malformed JSON, no query, a syntax error, a
  document that does not validate against the schema, an unknown operation, bad variables.
* 401 ``{"errors": [...]}`` for a wrong, expired or missing credential (the SDK then fails
  cleanly and does not retry).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    execute,
    get_operation_ast,
    parse,
    validate,
)

from rolecall import strict_json
from rolecall.errors import PermissionDenied, RolecallError
from rolecall.web import metrics
from rolecall.web.deps import ATTRIBUTION_RESULT_HEADER, ContextDep, TransactionalRoute
from rolecall.web.errors import (
    DATABASE_UNAVAILABLE,
    DATABASE_UNAVAILABLE_MESSAGE,
    ERROR_RESPONSES,
    GRAPHQL_PATH,
    database_unavailable,
    graphql_error_response,
    status_for,
)
from rolecall.web.forms import read_body_within
from rolecall.web.graphql.nodes import Context
from rolecall.web.graphql.schema import build_schema

log = logging.getLogger("rolecall.web")

PATH = GRAPHQL_PATH
#: The surface audit records name.
SURFACE = "graphql"
#: Largest request body read; the SDK's documents are a few kilobytes.
MAX_BODY = 256 * 1024
#: Most tokens a document may have (graphql-core stops parsing past it).
MAX_TOKENS = 5000

router = APIRouter(
    route_class=TransactionalRoute,
    tags=["graphql"],
    responses=ERROR_RESPONSES,
)
SCHEMA: GraphQLSchema = build_schema()


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


def _errors(status: int, message: str, code: str, **headers: str) -> JSONResponse:
    return graphql_error_response(status, message, code, headers)


async def read_request(request: Request) -> GraphQLRequest | JSONResponse:
    """The request's JSON body as a GraphQL request, or the 400 saying why it is not one.

    Async: it reads the body on the event loop, before the endpoint's thread-pool trip.
    """
    body = await read_body_within(request, MAX_BODY)
    if body is None:
        return _errors(413, f"the request body is larger than {MAX_BODY} bytes", "too_large")
    try:
        data = strict_json.loads(body)
    except strict_json.Refused as exc:
        return _errors(400, f"the request body is refused: {exc}", "malformed_json")
    except ValueError:  # UnicodeDecodeError is one
        return _errors(400, "the request body is not valid JSON", "malformed_json")
    if isinstance(data, list):
        return _errors(400, "batched requests are not supported: send one object", "bad_request")
    if not isinstance(data, dict):
        return _errors(400, "the request body must be a JSON object", "bad_request")
    query, variables = data.get("query"), data.get("variables")
    name = data.get("operationName")
    if not isinstance(query, str) or not query.strip():
        return _errors(400, "query must be a non-empty string", "bad_request")
    if variables is not None and not isinstance(variables, dict):
        return _errors(400, "variables must be a JSON object", "bad_request")
    if name is not None and not isinstance(name, str):
        return _errors(400, "operationName must be a string", "bad_request")
    # The wandb SDK sends "" for "the document's only operation"; graphql-core would look
    # for an operation named "".
    return GraphQLRequest(query, variables, name or None)


RequestDep = Annotated[GraphQLRequest | JSONResponse, Depends(read_request)]


def _format(error: GraphQLError) -> dict[str, Any]:
    """One GraphQL error; domain errors keep their code (and the rule that denied)."""
    formatted = error.formatted
    original = error.original_error
    if isinstance(original, RolecallError):
        extensions: dict[str, Any] = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        if isinstance(original, PermissionDenied) and original.rule is not None:
            extensions["rule"] = original.rule
        formatted["message"] = original.message
        formatted["extensions"] = extensions
    elif original is not None and database_unavailable(original):
        # The database went away during the query, after the caller was found: the answer
        # says so (the request's start would have been a 503), not "internal".
        log.warning("database unavailable in GraphQL %s: %s", error.path, type(original).__name__)
        formatted["message"] = DATABASE_UNAVAILABLE_MESSAGE
        formatted["extensions"] = {"code": DATABASE_UNAVAILABLE}
    elif original is not None and not isinstance(original, GraphQLError):
        request_id = uuid.uuid4().hex
        log.error("unexpected error %s in GraphQL %s: %r", request_id, error.path, original)
        formatted["message"] = f"internal error (request id {request_id})"
        formatted["extensions"] = {"code": "internal"}
    else:
        formatted.setdefault("extensions", {"code": "graphql_error"})
    return formatted


def _run(ctx: ContextDep, graphql_request: GraphQLRequest) -> ExecutionResult | JSONResponse:
    # The caller (and the organization) first: a bad or missing credential is a 401 whatever
    # the document.
    actor = replace(ctx.actor, surface=SURFACE)
    context = Context(ctx.session, actor, ctx.org, ctx.settings)
    try:
        document = parse(graphql_request.query, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        return _errors(400, error.message, "graphql_syntax_error")
    problems = validate(SCHEMA, document)
    if problems:
        code = {"code": "graphql_validation_failed"}
        errors = [{**problem.formatted, "extensions": code} for problem in problems]
        return JSONResponse({"errors": errors}, status_code=400)
    operation = get_operation_ast(document, graphql_request.operation_name)
    if operation is None:
        name = graphql_request.operation_name
        message = f"no operation named {name!r}" if name else "send exactly one operation"
        return _errors(400, message, "bad_request")
    result = execute(
        SCHEMA,
        document,
        variable_values=graphql_request.variables,
        operation_name=graphql_request.operation_name,
        context_value=context,
    )
    assert isinstance(result, ExecutionResult)  # every resolver is synchronous
    if result.errors:
        ctx.session.rollback()  # nothing half-written survives a refused request
    return result


@router.post(
    PATH,
    operation_id="graphql-execute",
    summary="GraphQL for the wandb SDK",
    response_class=JSONResponse,
    # Not part of the REST API's OpenAPI document: the GraphQL schema describes it.
    include_in_schema=False,
)
def graphql(response: Response, body: RequestDep, ctx: ContextDep) -> Response:
    """Run one GraphQL document (the wandb SDK's user and team administration)."""
    if isinstance(body, JSONResponse):
        return body
    try:
        result = _run(ctx, body)
    except RolecallError as error:  # finding the caller or the organization
        status = status_for(error)
        if status == 401:
            metrics.AUTH_FAILURES.labels(reason=error.code).inc()
        return _errors(status, error.message, error.code)
    if isinstance(result, JSONResponse):
        return result
    if result.data is None and result.errors:
        # Nothing ran (variables that do not fit the operation): a request error.
        return JSONResponse({"errors": [_format(e) for e in result.errors]}, status_code=400)
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [_format(error) for error in result.errors]
    headers = {}
    if said := response.headers.get(ATTRIBUTION_RESULT_HEADER):
        headers[ATTRIBUTION_RESULT_HEADER] = said
    return JSONResponse(payload, headers=headers)
