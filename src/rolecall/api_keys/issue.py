"""Issuing a key: the one place a secret is created and its digest stored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from rolecall.api_keys.models import ApiKey
from rolecall.authz.permissions import Permission
from rolecall.db.base import new_id
from rolecall.identity.secrets import API_KEY_PREFIX, derived_secret, digest, hint, new_secret


def issue_key(
    session: Session,
    *,
    user_id: str | None = None,
    service_account_id: str | None = None,
    description: str | None = None,
    scopes: Iterable[Permission] | None = None,
    expires_at: datetime | None = None,
    derive_with: bytes | None = None,
    bound_to: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key row and return it with the secret (shown once, never stored).

    ``derive_with`` (the server's secret key): the secret is derived from it and the key's id
    (``identity.secrets.derived_secret``), so the server can show it again to those allowed.
    ``bound_to``: the one organization the key works in (``ApiKey.org_id``); none: all its
    user's.
    """
    key_id = new_id()
    secret = derived_secret(derive_with, key_id) if derive_with else new_secret(API_KEY_PREFIX)
    key = ApiKey(
        id=key_id,
        digest=digest(secret),
        hint=hint(secret),
        user_id=user_id,
        service_account_id=service_account_id,
        description=description,
        scopes=sorted(p.value for p in scopes) if scopes is not None else None,
        expires_at=expires_at,
        org_id=bound_to,
    )
    session.add(key)
    session.flush()
    return key, secret
