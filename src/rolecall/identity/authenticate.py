"""Turning a credential into a ``Principal``.

API keys and browser sessions are looked up by the digest of the presented secret (a unique
index), then compared again in constant time.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, literal, or_, select, update
from sqlalchemy.orm import Session

from rolecall.api_keys.models import ApiKey
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.permissions import Permission
from rolecall.db.changes import BOOKKEEPING
from rolecall.errors import AuthenticationFailed
from rolecall.identity.models import AccessToken, BrowserSession
from rolecall.identity.passwords import RESTORE_METHOD
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import digest, same_digest
from rolecall.orgs.models import OrgMembership
from rolecall.service_accounts.models import ServiceAccount
from rolecall.users.models import User

#: last_used_at is written at most this often per key, so reads do not all become writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_SECRET_LENGTH = 512
#: ``session.info`` key of the key use ``record_key_use`` writes.
PENDING_KEY_USE = "rolecall.pending_key_use"
#: ``session.info`` key: a callable that executes and commits a bookkeeping statement outside
#: the session (``db.changes.SqliteChanges.write_quietly``), instead of the session.
QUIET_WRITER = "rolecall.quiet_writer"
INVALID_KEY = "invalid API key"
INVALID_TOKEN = "invalid access token"


def secret_from_authorization(header: str | None) -> str | None:
    """The secret in ``Authorization: Basic base64(any:SECRET)`` or ``Bearer SECRET``.

    Raises ``AuthenticationFailed`` for a malformed header (a clear 401, never a 500).
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() in ("basic", "bearer") and not value:
        raise AuthenticationFailed(
            f"empty {scheme} credentials: send the API key", code="malformed_credentials"
        )
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, non-ASCII input
            raise AuthenticationFailed(
                "malformed Basic credentials", code="malformed_credentials"
            ) from exc
        _, sep, password = decoded.partition(":")
        if not sep or not password:
            raise AuthenticationFailed(
                "Basic credentials need the API key as the password", code="malformed_credentials"
            )
        return password
    raise AuthenticationFailed(
        "unsupported Authorization scheme: use Basic or Bearer", code="malformed_credentials"
    )


def _deactivated_everywhere(user_id: Any) -> Any:
    """SQL: the user has org memberships and none of them is active (a correlated expression,
    so the check rides along with the query that finds the credential)."""
    memberships = select(OrgMembership.id).where(OrgMembership.user_id == user_id)
    active = memberships.where(OrgMembership.active.is_(True))
    return and_(memberships.exists(), ~active.exists())


#: One round trip: the key with its owning user (service accounts are fetched separately, they
#: are the rarer case). Built once: building it costs more than running it.
_KEY_WITH_OWNER = (
    select(ApiKey, User, _deactivated_everywhere(ApiKey.user_id))
    .outerjoin(User, User.id == ApiKey.user_id)
    .where(ApiKey.digest == bindparam("digest"))
)


def _user_is_deactivated_everywhere(session: Session, user_id: str) -> bool:
    return bool(session.scalar(select(_deactivated_everywhere(literal(user_id)))))


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What an accepted API key stands for, with the facts that stay true until the key or its
    owner changes in the database (what the access cache may keep); the expiry must still be
    compared with the clock on every use."""

    principal: Principal
    expires_at: datetime | None
    #: The key's last use as recorded (or about to be, by ``record_key_use``).
    last_used_at: datetime | None

    def usable_without_lookup(self, now: datetime) -> bool:
        """Whether a request at ``now`` may use the key without the database: it has not
        expired and its last use needs no new record."""
        if self.expires_at is not None and self.expires_at <= now:
            return False
        return self.last_used_at is not None and now - self.last_used_at < LAST_USED_RESOLUTION


def authenticate_access_token(
    session: Session, secret: str, *, now: datetime | None = None
) -> Principal:
    """The user or external service account an access token from ``POST /oidc/token`` was
    issued to, checked live: the user must still be an active member of the token's
    organization, the account must not be deleted. ``AuthenticationFailed`` otherwise."""
    now = now or datetime.now(UTC)
    if len(secret) > MAX_SECRET_LENGTH:
        raise AuthenticationFailed(INVALID_TOKEN, code="invalid_access_token")
    presented = digest(secret)
    row = session.execute(
        select(AccessToken, User, OrgMembership.active, ServiceAccount)
        .outerjoin(User, User.id == AccessToken.user_id)
        .outerjoin(
            OrgMembership,
            and_(
                OrgMembership.user_id == AccessToken.user_id,
                OrgMembership.org_id == AccessToken.org_id,
            ),
        )
        .outerjoin(ServiceAccount, ServiceAccount.id == AccessToken.service_account_id)
        .where(AccessToken.digest == presented)
    ).first()
    if row is None:
        raise AuthenticationFailed(INVALID_TOKEN, code="invalid_access_token")
    token, user, active, account = row
    if not same_digest(token.digest, presented) or token.revoked_at is not None:
        raise AuthenticationFailed(INVALID_TOKEN, code="invalid_access_token")
    if token.expires_at <= now:
        raise AuthenticationFailed(
            "access token has expired: exchange the JWT again", code="access_token_expired"
        )
    if user is not None:
        if not active:  # deactivated, or no longer a member of the token's organization
            raise AuthenticationFailed("this user is deactivated", code="invalid_access_token")
        return Principal(
            PrincipalKind.USER,
            user.username,
            CredentialKind.ACCESS_TOKEN,
            user_id=user.id,
            credential_id=token.id,
            credential_expires_at=token.expires_at,
            org_id=token.org_id,
            bound_org_id=token.org_id,
        )
    if account is None or account.deleted_at is not None:
        raise AuthenticationFailed(INVALID_TOKEN, code="invalid_access_token")
    return Principal(
        PrincipalKind.SERVICE_ACCOUNT,
        account.name,
        CredentialKind.ACCESS_TOKEN,
        service_account_id=account.id,
        credential_id=token.id,
        credential_expires_at=token.expires_at,
        org_id=token.org_id,
        bound_org_id=token.org_id,
    )


def authenticate_api_key(
    session: Session, secret: str, *, now: datetime | None = None
) -> Principal:
    """The principal owning API key ``secret``; ``AuthenticationFailed`` otherwise."""
    return grant_for_api_key(session, secret, now=now).principal


def grant_for_api_key(session: Session, secret: str, *, now: datetime | None = None) -> KeyGrant:
    """``authenticate_api_key`` with what the key stands for; ``AuthenticationFailed``."""
    now = now or datetime.now(UTC)
    if len(secret) > MAX_SECRET_LENGTH:
        raise AuthenticationFailed(INVALID_KEY, code="invalid_api_key")
    presented = digest(secret)
    row = session.execute(_KEY_WITH_OWNER, {"digest": presented}).first()
    if row is None:
        raise AuthenticationFailed(INVALID_KEY, code="invalid_api_key")
    key, user, deactivated = row
    if not same_digest(key.digest, presented) or key.revoked_at is not None:
        raise AuthenticationFailed(INVALID_KEY, code="invalid_api_key")
    if key.expires_at is not None and key.expires_at <= now:
        raise AuthenticationFailed("API key has expired", code="api_key_expired")
    scopes = frozenset(Permission(s) for s in key.scopes) if key.scopes is not None else None
    if key.user_id is not None:
        # Read in the key's own statement, and a user's keys go with it (ON DELETE CASCADE).
        assert user is not None
        if deactivated:
            raise AuthenticationFailed("this user is deactivated", code="user_deactivated")
        principal = Principal(
            PrincipalKind.USER,
            user.username,
            CredentialKind.API_KEY,
            user_id=user.id,
            credential_id=key.id,
            key_scopes=scopes,
            credential_expires_at=key.expires_at,
            org_id=key.org_id,
            bound_org_id=key.org_id,
        )
    else:
        account = session.get(ServiceAccount, key.service_account_id)
        if account is None or account.deleted_at is not None:
            raise AuthenticationFailed(INVALID_KEY, code="invalid_api_key")
        principal = Principal(
            PrincipalKind.SERVICE_ACCOUNT,
            account.name,
            CredentialKind.API_KEY,
            service_account_id=account.id,
            credential_id=key.id,
            key_scopes=scopes,
            credential_expires_at=key.expires_at,
            org_id=account.org_id,
        )
    last_used = key.last_used_at
    if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
        session.info[PENDING_KEY_USE] = (key.id, now)
        last_used = now
    return KeyGrant(principal, key.expires_at, last_used)


def record_key_use(session: Session) -> bool:
    """Write the last-used time ``authenticate_api_key`` left pending; True if the session
    holds the write and must be committed.

    The caller runs this in a transaction of its own, after the request's: the request's
    transaction may be read-only (on SQLite a read transaction must not turn into a write), and
    a key's use is worth recording even when the request itself was refused.
    """
    pending = session.info.pop(PENDING_KEY_USE, None)
    if pending is None:
        return False
    key_id, when = pending
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .where(
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= when - LAST_USED_RESOLUTION)
        )
        .values(last_used_at=when)
        # Changes no access fact: caches need not be told.
        .execution_options(**{BOOKKEEPING: True})
    )
    quiet = session.info.get(QUIET_WRITER)
    if quiet is not None:
        quiet(statement)
        return False
    session.execute(statement)
    return True


def _restoring(session: Session) -> bool:
    """Whether the request's server runs with ``LOCAL_RESTORE`` (its settings ride on the
    session); without settings, no."""
    settings = session.info.get("settings")
    return bool(getattr(settings, "local_restore", False))


def authenticate_session(
    session: Session, cookie: str, *, now: datetime | None = None
) -> tuple[Principal, BrowserSession]:
    """The signed-in user of a session cookie; ``AuthenticationFailed`` if it is not valid."""
    now = now or datetime.now(UTC)
    if len(cookie) > MAX_SECRET_LENGTH:
        raise AuthenticationFailed("session is not valid", code="invalid_session")
    presented = digest(cookie)
    row = session.scalar(select(BrowserSession).where(BrowserSession.digest == presented))
    if row is None or not same_digest(row.digest, presented) or row.revoked_at is not None:
        raise AuthenticationFailed("session is not valid", code="invalid_session")
    if row.expires_at <= now:
        raise AuthenticationFailed("session has expired", code="session_expired")
    if row.method == RESTORE_METHOD and not _restoring(session):
        # A recovery session ends with the recovery: LOCAL_RESTORE is off on this server.
        raise AuthenticationFailed(
            "this LOCAL_RESTORE session ended when LOCAL_RESTORE was turned off; sign in again",
            code="session_expired",
        )
    user = session.get(User, row.user_id)
    if user is None or _user_is_deactivated_everywhere(session, user.id):
        raise AuthenticationFailed("session is not valid", code="invalid_session")
    principal = Principal(
        PrincipalKind.USER,
        user.username,
        CredentialKind.SESSION,
        user_id=user.id,
        credential_id=row.id,
        org_id=row.org_id,
        bound_org_id=row.org_id,
    )
    return principal, row
