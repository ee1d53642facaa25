"""REST routes: service accounts and their API keys (``{ref}`` is an account's name or id)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response

from rolecall.service_accounts import service
from rolecall.service_accounts.schemas import (
    ServiceAccountCreate,
    ServiceAccountKeyCreate,
    ServiceAccountKeyCreated,
    ServiceAccountKeyList,
    ServiceAccountKeyRead,
    ServiceAccountList,
    ServiceAccountRead,
)
from rolecall.web.api.v1._router import make_router
from rolecall.web.api.v1.paging import DEFAULT_LIMIT, Limit, Offset
from rolecall.web.deps import ContextDep

router = make_router("service-accounts")

#: Control characters (NUL above all, which PostgreSQL refuses in a query) are a 422.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
AccountRef = Annotated[str, Path(min_length=1, max_length=128, pattern=_PRINTABLE)]
KeyId = Annotated[str, Path(min_length=1, max_length=64, pattern=_PRINTABLE)]
TeamFilter = Annotated[str | None, Query(min_length=1, max_length=128, pattern=_PRINTABLE)]


@router.get(
    "/service-accounts", operation_id="service-accounts-list", response_model=ServiceAccountList
)
def list_service_accounts(
    ctx: ContextDep, team: TeamFilter = None, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT
) -> ServiceAccountList:
    """A page of the service accounts the caller manages (optionally of one team), oldest
    first."""
    # Which accounts a team admin manages is decided account by account: the page is cut after.
    views = service.list_service_accounts(ctx.session, actor=ctx.actor, org=ctx.org, team=team)
    items = [ServiceAccountRead.of(view) for view in views[offset : offset + limit]]
    return ServiceAccountList(items=items, total=len(views), offset=offset, limit=limit)


@router.post(
    "/service-accounts",
    operation_id="service-accounts-create",
    response_model=ServiceAccountRead,
    status_code=201,
)
def create_service_account(body: ServiceAccountCreate, ctx: ContextDep) -> ServiceAccountRead:
    """Create an org- or team-scoped account; a built-in one's API key is returned once."""
    view = service.create_service_account(
        ctx.session, actor=ctx.actor, org=ctx.org, **body.model_dump()
    )
    return ServiceAccountRead.of(view)


@router.get(
    "/service-accounts/{ref}",
    operation_id="service-accounts-get",
    response_model=ServiceAccountRead,
)
def get_service_account(ref: AccountRef, ctx: ContextDep) -> ServiceAccountRead:
    """One service account, for those who manage it."""
    view = service.read_service_account(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return ServiceAccountRead.of(view)


@router.delete(
    "/service-accounts/{ref}",
    operation_id="service-accounts-delete",
    status_code=204,
    response_class=Response,
)
def delete_service_account(ref: AccountRef, ctx: ContextDep) -> Response:
    """Delete an account: its keys are revoked and it holds no permission."""
    service.delete_service_account(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return Response(status_code=204)


@router.get(
    "/service-accounts/{ref}/api-keys",
    operation_id="service-accounts-list-keys",
    response_model=ServiceAccountKeyList,
)
def list_keys(ref: AccountRef, ctx: ContextDep) -> ServiceAccountKeyList:
    """The account's API keys that are not revoked."""
    keys = service.list_keys(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return ServiceAccountKeyList(items=[ServiceAccountKeyRead.model_validate(k) for k in keys])


@router.post(
    "/service-accounts/{ref}/api-keys",
    operation_id="service-accounts-create-key",
    response_model=ServiceAccountKeyCreated,
    status_code=201,
)
def create_key(
    ref: AccountRef, body: ServiceAccountKeyCreate, ctx: ContextDep
) -> ServiceAccountKeyCreated:
    """Issue another API key for a built-in account; the key is shown once."""
    key, secret = service.create_key(
        ctx.session, actor=ctx.actor, org=ctx.org, ref=ref, **body.model_dump()
    )
    return ServiceAccountKeyCreated.of(key, secret)


@router.delete(
    "/service-accounts/{ref}/api-keys/{key_id}",
    operation_id="service-accounts-revoke-key",
    status_code=204,
    response_class=Response,
)
def revoke_key(ref: AccountRef, key_id: KeyId, ctx: ContextDep) -> Response:
    """Revoke one of the account's API keys."""
    service.revoke_key(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref, key_id=key_id)
    return Response(status_code=204)
