"""SCIM 2.0 routes under ``/scim`` and ``/scim/v2``: a thin HTTP adapter over ``rolecall.scim``.

Authentication is the API's (``Authorization: Basic base64(any:API_KEY)`` or ``Bearer``); only
org admins get past the gate (``org:manage_users``, decided by the policy engine). Every change
is audited with surface ``scim``. In multi-org mode the organization is the ``X-Rolecall-Org``
header (or ``?org=``) when sent, else the caller's chosen SCIM organization, else its only one.
Every refusal is a SCIM ``Error`` message with the right ``scimType`` (``web.errors`` renders
those raised outside the routes, such as unknown paths).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from rolecall import authz, strict_json
from rolecall.authz.permissions import Permission
from rolecall.db.session import runs_again_after
from rolecall.errors import RolecallError
from rolecall.orgs.models import Organization
from rolecall.roles import service as roles_service
from rolecall.scim import bulk, discovery, groups, roles, users, versions
from rolecall.scim.errors import (
    INVALID_FILTER,
    INVALID_SYNTAX,
    INVALID_VALUE,
    REFUSALS,
    ScimError,
    refusal,
)
from rolecall.scim.mapping import GROUP_URN, ROLE_URN, USER_URN, project, shows
from rolecall.scim.messages import (
    MAX_BODY,
    Page,
    get,
    list_response,
    page,
    require_object,
    text,
)
from rolecall.scim.sorting import UNSORTED, Sort
from rolecall.settings import OrgMode
from rolecall.teams import service as teams
from rolecall.users.models import User
from rolecall.web.deps import (
    ORG_HEADER,
    Context,
    SettingsDep,
    TransactionalRoute,
    _authenticated,
    _caller,
    _org_for,
    require_credential_works_in,
)
from rolecall.web.errors import scim_error_response
from rolecall.web.forms import read_body_within

MEDIA_TYPE = "application/scim+json"
PREFIXES = ("/scim/v2", "/scim")
SURFACE = "scim"
#: At most this many team or role names are suggested in the User schema.
MAX_CANONICAL = 1000


error_response = scim_error_response


def scim_json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


class ScimContext(Context):
    """The request's transaction, caller (surface ``scim``) and organization."""

    __slots__ = ()

    def _resolve(self) -> None:
        principal = _authenticated(_caller(self._request, self._response, self.session))
        principal = replace(principal, surface=SURFACE)
        org = self._chosen_org(principal.user_id)
        if org is None:
            org = _org_for(self._request, self.session, self.settings, principal)
        require_credential_works_in(principal, org)
        self._org = org
        self._actor = replace(principal, org_id=org.id)
        # The gate: SCIM is for org admins only (the policy decides, and names its rule).
        authz.require(self.session, self._actor, Permission.ORG_MANAGE_USERS, org)

    def _chosen_org(self, user_id: str | None) -> Organization | None:
        """Multi-org mode without an org named: the caller's chosen SCIM organization."""
        if self.settings.mode != OrgMode.MULTI or user_id is None:
            return None
        if self._request.headers.get(ORG_HEADER) or self._request.query_params.get("org"):
            return None
        user = self.session.get(User, user_id)
        if user is None or user.scim_org_id is None:
            return None
        return self.session.get(Organization, user.scim_org_id)

    @property
    def base(self) -> str:
        """Where resources live (``meta.location``): the public URL and the prefix used."""
        path = self._request.url.path
        prefix = next(p for p in PREFIXES if path.startswith(p))
        return f"{self.settings.base_url.rstrip('/')}{prefix}"

    @property
    def has_credentials(self) -> bool:
        return bool(self._request.headers.get("Authorization"))

    @property
    def multi(self) -> bool:
        return self.settings.mode == OrgMode.MULTI

    def query(self, name: str) -> str | None:
        return self._request.query_params.get(name)

    def header(self, name: str) -> str | None:
        return self._request.headers.get(name)

    @property
    def if_match(self) -> str | None:
        """The write's precondition (RFC 7644 §3.14), checked by ``rolecall.scim``."""
        return self.header("If-Match")


async def get_scim_context(request: Request, response: Response) -> ScimContext:
    return ScimContext(request.app.state.settings, request, response, anonymous_ok=False)


async def read_body(request: Request) -> Any:
    """The JSON body (``application/scim+json`` or ``application/json``); ``invalidSyntax``
    when it is not JSON. Read here, on the event loop, before the threaded endpoint."""
    raw = await read_body_within(request, MAX_BODY)
    if raw is None:
        raise ScimError(413, f"request bodies are at most {MAX_BODY} bytes")
    try:
        return strict_json.loads(raw) if raw.strip() else None
    except strict_json.Refused as exc:
        raise ScimError(400, f"the request body is refused: {exc}", INVALID_SYNTAX) from None
    except ValueError:  # UnicodeDecodeError is one
        raise ScimError(400, "the request body is not valid JSON", INVALID_SYNTAX) from None


ScimDep = Annotated[ScimContext, Depends(get_scim_context)]
BodyDep = Annotated[Any, Depends(read_body)]


def scim_endpoint(endpoint: Callable[..., Response]) -> Callable[..., Response]:
    """Render every refusal as a SCIM error (the transaction then rolls back: status >= 400),
    except a name taken by a concurrent request when the request runs again
    (``db.session.runs_again_after``): run again, it is answered as a lone request is."""

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Response:
        try:
            return endpoint(*args, **kwargs)
        except REFUSALS as exc:
            contexts = (value for value in kwargs.values() if isinstance(value, Context))
            if any(runs_again_after(ctx.session, exc) for ctx in contexts):
                raise
            return error_response(refusal(exc))

    return run


def _listed(
    ctx: ScimContext, urn: str, found: dict[str, Any], search: Search | None = None
) -> Response:
    attributes, excluded = ctx.query("attributes"), ctx.query("excludedAttributes")
    if search is not None:
        attributes, excluded = search.attributes, search.excluded
    found["Resources"] = [project(r, attributes, excluded, urn) for r in found["Resources"]]
    return scim_json(found)


def _one(ctx: ScimContext, urn: str, resource: dict[str, Any], status: int = 200) -> Response:
    """One resource, with its ``ETag`` (RFC 7644 §3.14) and, when created, its ``Location``."""
    attributes, excluded = ctx.query("attributes"), ctx.query("excludedAttributes")
    headers = {"Location": resource["meta"]["location"]} if status == 201 else {}
    version = resource["meta"].get("version")
    if version is not None:
        headers["ETag"] = version
    return scim_json(project(resource, attributes, excluded, urn), status, headers)


def _read(ctx: ScimContext, urn: str, resource: dict[str, Any]) -> Response:
    """A GET of one resource: 304 Not Modified when ``If-None-Match`` names its version (or is
    ``*``), else the resource. A resource shown without a version matches only ``*``."""
    if_none_match = ctx.header("If-None-Match")
    if if_none_match is not None:
        version = resource["meta"].get("version")
        if versions.matches(if_none_match, version):
            return Response(status_code=304, headers={"ETag": version} if version else None)
    return _one(ctx, urn, resource)


def _window(ctx: ScimContext) -> Page:
    return page(ctx.query("startIndex"), ctx.query("count"))


@dataclass(frozen=True)
class Search:
    """What a list asks for: from the query string (GET) or a SearchRequest (POST .search)."""

    filter: str | None
    window: Page
    attributes: str | None
    excluded: str | None
    sort: Sort = UNSORTED

    @classmethod
    def of_query(cls, ctx: ScimContext) -> Search:
        return cls(
            ctx.query("filter"),
            _window(ctx),
            ctx.query("attributes"),
            ctx.query("excludedAttributes"),
            Sort(ctx.query("sortBy"), ctx.query("sortOrder")),
        )

    @classmethod
    def of_body(cls, body: Any) -> Search:
        """RFC 7644 §3.4.3: a SearchRequest's filter, sortBy, sortOrder, startIndex, count and
        attribute lists."""
        body = require_object(body)

        def listed(name: str) -> str | None:
            value = get(body, name)
            if value is None or isinstance(value, str):
                return value
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return ",".join(value)
            raise ScimError(400, f"{name} must be a list of attribute paths", INVALID_VALUE)

        def number(name: str) -> str | None:
            value = get(body, name)
            if value is None:
                return None
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            raise ScimError(400, f"{name} must be an integer", INVALID_VALUE)

        filter_text = get(body, "filter")
        if filter_text is not None and not isinstance(filter_text, str):
            raise ScimError(400, "filter must be a string", INVALID_FILTER)
        window = page(number("startIndex"), number("count"))
        sort = Sort(text(get(body, "sortBy"), "sortBy"), text(get(body, "sortOrder"), "sortOrder"))
        return cls(filter_text, window, listed("attributes"), listed("excludedAttributes"), sort)


@functools.cache
def build_router() -> APIRouter:
    """The SCIM routes, relative to a prefix: the app mounts them at each of ``PREFIXES``.

    Built once per process: the routes read everything per request from ``request.app.state``,
    so every app shares them (building them costs about 30 ms, and the tests build an app per
    test).

    Mounted, not included: an included router's routes join the app's one list, which a request
    walks in order, so every SCIM request would first try each REST route (and each REST request
    every SCIM route). A mount tries its prefix once."""
    router = APIRouter(route_class=TransactionalRoute, tags=["scim"], include_in_schema=False)
    _discovery(router)
    _users(router)
    _groups(router)
    _roles(router)
    _bulk(router)
    return router


def _base(request: Request, settings: Any) -> str:
    path = request.url.path
    return settings.base_url.rstrip("/") + next(p for p in PREFIXES if path.startswith(p))


async def refuse_filters(request: Request) -> None:
    """RFC 7644 §4: the discovery endpoints take no filter, and SHOULD answer one with 403, so
    that no client takes what they list for what matched."""
    if "filter" in request.query_params:
        raise ScimError(403, "the discovery endpoints take no filter: they list everything")


NO_FILTER = Depends(refuse_filters)


def _discovery(router: APIRouter) -> None:
    @router.api_route("/Me", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def me() -> Response:
        # RFC 7644 §3.11: a service provider without the alias SHOULD answer 501.
        detail = "the /Me alias is not supported: use /Users/{id}"
        return error_response(ScimError(501, detail))

    @router.post("/.search")
    async def search_everything() -> Response:
        # RFC 7644 §3.4.3: a search across resource types; answered 501 (RFC 7644 §3.12).
        detail = "searching several resource types at once is not supported: use /Users/.search"
        return error_response(ScimError(501, detail))

    @router.get("/ServiceProviderConfig", dependencies=[NO_FILTER])
    async def service_provider_config(request: Request, settings: SettingsDep) -> Response:
        return scim_json(discovery.service_provider_config(_base(request, settings)))

    @router.get("/ResourceTypes", dependencies=[NO_FILTER])
    async def resource_types(request: Request, settings: SettingsDep) -> Response:
        found = discovery.resource_types(_base(request, settings))
        return scim_json(list_response(found, len(found), 1))

    @router.get("/ResourceTypes/{name}", dependencies=[NO_FILTER])
    async def resource_type(name: str, request: Request, settings: SettingsDep) -> Response:
        found = discovery.resource_type(name, _base(request, settings))
        if found is None:
            return error_response(ScimError(404, f"no resource type {name[:64]!r}"))
        return scim_json(found)

    @router.get("/Schemas", dependencies=[NO_FILTER])
    def schemas(ctx: ScimDep) -> Response:
        found = discovery.schemas(ctx.base, *_names(ctx))
        return scim_json(list_response(found, len(found), 1))

    @router.get("/Schemas/{urn}", dependencies=[NO_FILTER])
    def schema(urn: str, ctx: ScimDep) -> Response:
        found = discovery.schema(urn, ctx.base, *_names(ctx))
        if found is None:
            return error_response(ScimError(404, f"no schema {urn[:128]!r}"))
        return scim_json(found)


def _names(ctx: ScimContext) -> tuple[list[str] | None, list[str] | None]:
    """An org admin's team and custom role names, for the User schema's ``canonicalValues``;
    nothing for an anonymous caller (discovery needs no credentials) or a refused one."""
    if not ctx.has_credentials:
        return None, None
    try:
        team_names = [t.name for t in teams.list_teams(ctx.session, actor=ctx.actor, org=ctx.org)]
        role_names = [
            r.name for r in roles_service.list_roles(ctx.session, actor=ctx.actor, org=ctx.org)
        ]
    except RolecallError:
        return None, None
    return team_names[:MAX_CANONICAL], role_names[:MAX_CANONICAL]


def _users(router: APIRouter) -> None:
    def search_users(ctx: ScimContext, search: Search) -> Response:
        found = users.list_users(
            ctx.session,
            actor=ctx.actor,
            org=ctx.org,
            base=ctx.base,
            filter_text=search.filter,
            window=search.window,
            sort=search.sort,
        )
        return _listed(ctx, USER_URN, found, search)

    @router.get("/Users")
    @scim_endpoint
    def list_users(ctx: ScimDep) -> Response:
        return search_users(ctx, Search.of_query(ctx))

    @router.post("/Users/.search")
    @scim_endpoint
    def search_users_by_post(ctx: ScimDep, body: BodyDep) -> Response:
        return search_users(ctx, Search.of_body(body))

    @router.post("/Users")
    @scim_endpoint
    def create_user(ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base, "multi": ctx.multi}
        created = users.create_user(ctx.session, body=body, **args)
        return _one(ctx, USER_URN, created, 201)

    @router.get("/Users/{user_id}")
    @scim_endpoint
    def get_user(user_id: str, ctx: ScimDep) -> Response:
        found = users.get_user(
            ctx.session, actor=ctx.actor, org=ctx.org, base=ctx.base, user_id=user_id
        )
        return _read(ctx, USER_URN, found)

    @router.put("/Users/{user_id}")
    @scim_endpoint
    def replace_user(user_id: str, ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base, "multi": ctx.multi}
        found = users.replace_user(
            ctx.session, user_id=user_id, body=body, if_match=ctx.if_match, **args
        )
        return _one(ctx, USER_URN, found)

    @router.patch("/Users/{user_id}")
    @scim_endpoint
    def patch_user(user_id: str, ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base, "multi": ctx.multi}
        found = users.patch_user(
            ctx.session, user_id=user_id, body=body, if_match=ctx.if_match, **args
        )
        return _one(ctx, USER_URN, found)

    @router.delete("/Users/{user_id}", status_code=204)
    @scim_endpoint
    def delete_user(user_id: str, ctx: ScimDep) -> Response:
        users.delete_user(
            ctx.session, actor=ctx.actor, org=ctx.org, user_id=user_id, if_match=ctx.if_match
        )
        return Response(status_code=204)


def _groups(router: APIRouter) -> None:
    def search_groups(ctx: ScimContext, search: Search) -> Response:
        found = groups.list_groups(
            ctx.session,
            actor=ctx.actor,
            org=ctx.org,
            base=ctx.base,
            filter_text=search.filter,
            window=search.window,
            with_members=_wants_members(search.attributes, search.excluded),
            sort=search.sort,
        )
        return _listed(ctx, GROUP_URN, found, search)

    @router.get("/Groups")
    @scim_endpoint
    def list_groups(ctx: ScimDep) -> Response:
        return search_groups(ctx, Search.of_query(ctx))

    @router.post("/Groups/.search")
    @scim_endpoint
    def search_groups_by_post(ctx: ScimDep, body: BodyDep) -> Response:
        return search_groups(ctx, Search.of_body(body))

    @router.post("/Groups")
    @scim_endpoint
    def create_group(ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        created = groups.create_group(
            ctx.session, body=body, with_members=_shows_members(ctx), **args
        )
        return _one(ctx, GROUP_URN, created, 201)

    @router.get("/Groups/{group_id}")
    @scim_endpoint
    def get_group(group_id: str, ctx: ScimDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        found = groups.get_group(
            ctx.session,
            group_id=group_id,
            with_members=_shows_members(ctx),
            **args,
        )
        return _read(ctx, GROUP_URN, found)

    @router.put("/Groups/{group_id}")
    @scim_endpoint
    def replace_group(group_id: str, ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        found = groups.replace_group(
            ctx.session,
            group_id=group_id,
            body=body,
            if_match=ctx.if_match,
            with_members=_shows_members(ctx),
            **args,
        )
        return _one(ctx, GROUP_URN, found)

    @router.patch("/Groups/{group_id}")
    @scim_endpoint
    def patch_group(group_id: str, ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        # RFC 7644 §3.5.2: 200 and the group when attributes are named, else 204 (which Entra
        # ID and Okta accept): a large group is not rendered for nothing (``scim.groups``).
        asked = ctx.query("attributes") is not None or ctx.query("excludedAttributes") is not None
        found = groups.patch_group(
            ctx.session,
            group_id=group_id,
            body=body,
            if_match=ctx.if_match,
            with_members=_shows_members(ctx),
            answers=asked,
            **args,
        )
        if found is None:
            return Response(status_code=204)
        return _one(ctx, GROUP_URN, found)

    @router.delete("/Groups/{group_id}")
    @scim_endpoint
    def delete_group(group_id: str, ctx: ScimDep) -> Response:
        groups.delete_group(ctx.session, actor=ctx.actor, org=ctx.org, group_id=group_id)
        return Response(status_code=204)  # pragma: no cover - delete_group always refuses


def _shows_members(ctx: ScimContext) -> bool:
    """Whether this request's answer shows ``members`` (its query string)."""
    return _wants_members(ctx.query("attributes"), ctx.query("excludedAttributes"))


def _wants_members(attributes: str | None, excluded: str | None) -> bool:
    """Whether the response shows ``members`` (Entra ID asks without them, to save work)."""
    return shows("members", attributes, excluded, GROUP_URN)


def _roles(router: APIRouter) -> None:
    def search_roles(ctx: ScimContext, search: Search) -> Response:
        found = roles.list_roles(
            ctx.session,
            actor=ctx.actor,
            org=ctx.org,
            base=ctx.base,
            filter_text=search.filter,
            window=search.window,
            sort=search.sort,
        )
        return _listed(ctx, ROLE_URN, found, search)

    @router.get("/Roles")
    @scim_endpoint
    def list_roles(ctx: ScimDep) -> Response:
        return search_roles(ctx, Search.of_query(ctx))

    @router.post("/Roles/.search")
    @scim_endpoint
    def search_roles_by_post(ctx: ScimDep, body: BodyDep) -> Response:
        return search_roles(ctx, Search.of_body(body))

    @router.post("/Roles")
    @scim_endpoint
    def create_role(ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        created = roles.create_role(ctx.session, body=body, **args)
        return _one(ctx, ROLE_URN, created, 201)

    @router.get("/Roles/{role_id}")
    @scim_endpoint
    def get_role(role_id: str, ctx: ScimDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        return _read(ctx, ROLE_URN, roles.get_role(ctx.session, role_id=role_id, **args))

    @router.put("/Roles/{role_id}")
    @scim_endpoint
    def replace_role(role_id: str, ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        found = roles.replace_role(
            ctx.session, role_id=role_id, body=body, if_match=ctx.if_match, **args
        )
        return _one(ctx, ROLE_URN, found)

    @router.patch("/Roles/{role_id}")
    @scim_endpoint
    def patch_role(role_id: str, ctx: ScimDep, body: BodyDep) -> Response:
        args = {"actor": ctx.actor, "org": ctx.org, "base": ctx.base}
        found = roles.patch_role(
            ctx.session, role_id=role_id, body=body, if_match=ctx.if_match, **args
        )
        return _one(ctx, ROLE_URN, found)

    @router.delete("/Roles/{role_id}", status_code=204)
    @scim_endpoint
    def delete_role(role_id: str, ctx: ScimDep) -> Response:
        roles.delete_role(
            ctx.session, actor=ctx.actor, org=ctx.org, role_id=role_id, if_match=ctx.if_match
        )
        return Response(status_code=204)


def _bulk(router: APIRouter) -> None:
    @router.post("/Bulk")
    @scim_endpoint
    def run_bulk(ctx: ScimDep, body: BodyDep) -> Response:
        """RFC 7644 §3.7: each operation as its own request would be, in one transaction."""
        context = bulk.BulkContext(ctx.session, ctx.actor, ctx.org, ctx.base, ctx.multi)
        return scim_json(bulk.run(context, body))
