"""The access cache's fast lane, in front of the router.

The two hottest requests, an API-key caller's project read and its ``POST /api/v1/authz/check``
about itself, are answered here when everything their guard needs is in the access cache: the
caller's key, the organization, the facts of the decision (and, for a read, the project's
body). ``policy.decide`` runs as always; only FastAPI's routing, dependency solving and body
validation are skipped, which cost about as much as the rest of such a request.

Anything else (a miss, a refusal, a body this lane does not fully understand, another caller
kind) goes on to the router unchanged, where the route's own code answers it (and fills the
cache). So this lane answers only what the route would answer with the same bytes from the
same cache entries; ``tests/api/test_access_cache.py`` compares the two.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from rolecall import strict_json
from rolecall.authz import policy
from rolecall.authz.load import observed
from rolecall.authz.permissions import Permission, parse_permission
from rolecall.errors import InvalidInput
from rolecall.projects.queries import split_path
from rolecall.web.api.v1.authz import decision_body
from rolecall.web.deps import ATTRIBUTION_HEADERS, cached_in_org, lookup_cached, project_entry
from rolecall.web.metrics import FAST_ANSWERS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROJECTS = "/api/v1/projects/"
PROJECT_TEMPLATE = "/api/v1/projects/{entity}/{project}"
CHECK = "/api/v1/authz/check"
#: A self-check body is about 100 bytes; anything much larger goes to the router.
MAX_CHECK_BODY = 1024
_ATTRIBUTION = tuple(name.lower().encode() for name in ATTRIBUTION_HEADERS)


class AccessCacheFastPath:
    """ASGI middleware: answers cached project reads and self-checks (see the module)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._routes: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path.startswith(PROJECTS):
                if await self._project_read(scope, send, path[len(PROJECTS) :]):
                    return
            elif method == "POST" and path == CHECK:
                receive = await self._self_check(scope, receive, send)
                if receive is None:
                    return
        await self.app(scope, receive, send)

    # --- the two requests -------------------------------------------------------------------

    async def _project_read(self, scope: Scope, send: Send, rest: str) -> bool:
        entity, sep, name = rest.partition("/")
        if not sep or not entity or not name or "/" in name:
            return False
        found = self._lookup(scope, entity, name)
        if found is None:
            return False
        cache = scope["app"].state.access_cache
        decision = policy.decide(found[1], Permission.PROJECT_READ)
        body = cached_in_org(cache, project_entry(entity, name)) if decision.allowed else None
        if body is None:
            return False  # a refusal is explained by the route (its error body, its trace)
        observed(decision)
        await self._answer(scope, send, PROJECT_TEMPLATE, body)
        return True

    async def _self_check(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answers and returns None, or returns what the router must receive (the body read
        so far, then the rest)."""
        if not _is_json(scope):
            return receive
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return _replay(messages, receive)
            body += message.get("body", b"")
            if len(body) > MAX_CHECK_BODY:
                return _replay(messages, receive)
            if not message.get("more_body", False):
                break
        question = _self_question(body)
        found = self._lookup(scope, *question[1]) if question is not None else None
        if question is None or found is None:
            return _replay(messages, receive)
        await self._answer(scope, send, CHECK, decision_body(policy.decide(found[1], question[0])))
        return None

    # --- shared ---------------------------------------------------------------------------

    def _lookup(self, scope: Scope, entity: str, name: str) -> Any:
        app = scope["app"]
        authorization = None
        attributed = False
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key in _ATTRIBUTION and value.strip():
                attributed = True
        _epoch, found = lookup_cached(
            getattr(app.state, "access_cache", None),
            app.state.settings,
            authorization,
            attributed=attributed,
            entity=entity,
            name=name,
        )
        return found

    async def _answer(self, scope: Scope, send: Send, template: str, body: bytes) -> None:
        # The route the router would have matched, so the metrics label the request as ever.
        scope["route"] = self._route(scope, template)
        FAST_ANSWERS.labels(template).inc()
        headers = [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _route(self, scope: Scope, template: str) -> Any:
        if self._routes is None:
            routes = scope["app"].routes
            self._routes = {r.path: r for r in routes if getattr(r, "path", None)}
        return self._routes.get(template)


_JSON = b"application/json"
_CHECK_FIELDS = frozenset({"principal", "permission", "project"})


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == _JSON)
    return False


def _self_question(body: bytes) -> tuple[Permission, tuple[str, str]] | None:
    """(permission, (entity, name)) when ``body`` is a valid question about the caller itself,
    exactly as ``AuthzCheck`` would accept it; else None (the router decides what it is)."""
    try:
        question = strict_json.loads(body)
    except ValueError:
        return None
    if not isinstance(question, dict) or not question.keys() <= _CHECK_FIELDS:
        return None
    permission, project = question.get("permission"), question.get("project")
    if question.get("principal") is not None:
        return None
    if not isinstance(permission, str) or not 1 <= len(permission) <= 64:
        return None
    if not isinstance(project, str) or not 3 <= len(project) <= 260:
        return None
    wanted = parse_permission(permission)
    if wanted is None:
        return None
    try:
        return wanted, split_path(project)
    except InvalidInput:
        return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives back what was read, then reads on."""

    async def replayed() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replayed
