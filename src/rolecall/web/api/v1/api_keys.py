"""REST routes: the caller's own API keys (``/api-keys``)."""

from __future__ import annotations

from rolecall.api_keys import service
from rolecall.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyRead
from rolecall.web.api.v1._router import make_router
from rolecall.web.deps import ContextDep

router = make_router("api-keys")


@router.get("/api-keys", operation_id="api-keys-list", response_model=ApiKeyList)
def list_api_keys(ctx: ContextDep) -> ApiKeyList:
    """The caller's keys that are not revoked, without secrets."""
    keys = service.list_own_keys(ctx.session, actor=ctx.actor, org=ctx.org)
    return ApiKeyList(items=[ApiKeyRead.model_validate(key) for key in keys])


@router.post(
    "/api-keys", operation_id="api-keys-create", response_model=ApiKeyCreated, status_code=201
)
def create_api_key(body: ApiKeyCreate, ctx: ContextDep) -> ApiKeyCreated:
    """Issue the caller a key; the secret (``key``) is shown this once."""
    key, secret = service.create_own_key(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        description=body.description,
        expires_in=body.expires_in,
        scopes=body.scopes,
    )
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", operation_id="api-keys-revoke", status_code=204)
def revoke_api_key(key_id: str, ctx: ContextDep) -> None:
    """Revoke one of the caller's keys."""
    service.revoke_own_key(ctx.session, actor=ctx.actor, org=ctx.org, key_id=key_id)
