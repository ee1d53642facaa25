"""Issuing a key: the one place a secret is created and its digest stored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from rolecall.api_keys.models import ApiKey
from rolecall.authz.permissions import Permission
from rolecall.identity.secrets import API_KEY_PREFIX, digest, hint, new_secret


def issue_key(
    session: Session,
    *,
    user_id: str | None = None,
    service_account_id: str | None = None,
    description: str | None = None,
    scopes: Iterable[Permission] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key row and return it with the secret (shown once, never stored)."""
    secret = new_secret(API_KEY_PREFIX)
    key = ApiKey(
        digest=digest(secret),
        hint=hint(secret),
        user_id=user_id,
        service_account_id=service_account_id,
        description=description,
        scopes=sorted(p.value for p in scopes) if scopes is not None else None,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return key, secret
