"""API keys: users manage their own; helpers for keys managed on a service account's behalf.

Two layers:

* ``create_own_key``, ``list_own_keys``, ``revoke_own_key``: a user managing its own keys.
  They authorize (``org:read`` on the organization, so a key scoped to other permissions, such
  as ``run:create`` only, cannot mint or revoke keys) and act only on the caller's keys.
* ``create_key``, ``list_keys``, ``get_key``, ``revoke_key``, ``revoke_all_keys``: NO
  authorization of their own. The caller has already authorized (for a service account: those
  who manage the account) and passes the owner. They validate, record audit events and flush.

Secrets are created by ``api_keys.issue.issue_key`` and shown once; only digests are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.api_keys.issue import issue_key
from rolecall.api_keys.models import ApiKey
from rolecall.audit.service import record
from rolecall.authz import policy
from rolecall.authz.facts import CredentialKind
from rolecall.authz.permissions import Permission, parse_permission
from rolecall.errors import InvalidInput, NotFound, PermissionDenied
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization, OrgMembership

#: Longest lifetime a key may be given: ten years of 365 days, in seconds.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600
MAX_DESCRIPTION_LENGTH = 256


def parse_scopes(scopes: Iterable[str | Permission] | None) -> frozenset[Permission] | None:
    """Catalogue permissions from their values; ``None`` means an unscoped key.

    Raises ``InvalidInput`` for an unknown permission or an empty list (a key that may do
    nothing is a mistake, not a request).
    """
    if scopes is None:
        return None
    parsed: set[Permission] = set()
    for value in scopes:
        permission = parse_permission(str(value))
        if permission is None:
            raise InvalidInput(f"unknown permission {value!r} in scopes", field="scopes")
        parsed.add(permission)
    if not parsed:
        raise InvalidInput(
            "scopes must name at least one permission (omit it for all)", field="scopes"
        )
    return frozenset(parsed)


def expiry(expires_in: int | None, now: datetime) -> datetime | None:
    """When a key given ``expires_in`` seconds expires (``None``: never).

    Raises ``InvalidInput`` outside 1 second to 10 years.
    """
    if expires_in is None:
        return None
    if isinstance(expires_in, bool) or not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise InvalidInput(
            f"expires_in is in seconds, from 1 to {MAX_EXPIRES_IN} (10 years)", field="expires_in"
        )
    return now + timedelta(seconds=expires_in)


# --- keys managed for an owner (no authorization here: the caller authorizes) ----------------


def create_key(
    session: Session,
    *,
    actor: Principal,
    org_id: str | None,
    user_id: str | None = None,
    service_account_id: str | None = None,
    description: str | None = None,
    expires_in: int | None = None,
    scopes: Iterable[str | Permission] | None = None,
    now: datetime | None = None,
    bound_to: str | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key for a user or a service account; returns the row and the secret (once).

    Does NOT authorize: the caller must have checked that ``actor`` may manage the owner's keys.
    ``org_id`` places the audit event in that organization's log; ``bound_to``: the one
    organization the key works in (``issue_key``).

    Raises ``InvalidInput`` for a bad description, lifetime or scope; ``ValueError`` unless
    exactly one owner is given (a programming error).
    """
    if (user_id is None) == (service_account_id is None):
        raise ValueError("a key belongs to exactly one user or service account")
    now = now or datetime.now(UTC)
    description = _check_description(description)
    permissions = parse_scopes(scopes)
    expires_at = expiry(expires_in, now)
    key, secret = issue_key(
        session,
        user_id=user_id,
        service_account_id=service_account_id,
        description=description,
        scopes=permissions,
        expires_at=expires_at,
        bound_to=bound_to,
    )
    record(
        session,
        actor=actor,
        action="api_key.create",
        object_type="api_key",
        object_id=key.id,
        object_name=key.hint,
        org_id=org_id,
        after={
            "owner": _owner(key),
            "description": description,
            "scopes": key.scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    session.flush()
    return key, secret


def list_keys(
    session: Session, *, user_id: str | None = None, service_account_id: str | None = None
) -> list[ApiKey]:
    """The owner's keys that are not revoked (expired ones included), oldest first.

    Does NOT authorize: the caller must have.
    """
    return list(
        session.scalars(
            _owned(user_id, service_account_id)
            .where(ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
    )


def get_key(
    session: Session,
    *,
    key_id: str,
    user_id: str | None = None,
    service_account_id: str | None = None,
) -> ApiKey | None:
    """The owner's unrevoked key ``key_id``, or ``None``. Does NOT authorize."""
    if not key_id or len(key_id) > 64 or "\x00" in key_id:
        return None
    return session.scalar(
        _owned(user_id, service_account_id).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    )


def revoke_key(
    session: Session,
    *,
    actor: Principal,
    org_id: str | None,
    key: ApiKey,
    now: datetime | None = None,
) -> None:
    """Revoke one key (it fails authentication from now on). Does NOT authorize."""
    if key.revoked_at is not None:
        return
    key.revoked_at = now or datetime.now(UTC)
    record(
        session,
        actor=actor,
        action="api_key.revoke",
        object_type="api_key",
        object_id=key.id,
        object_name=key.hint,
        org_id=org_id,
        before={"owner": _owner(key), "description": key.description},
    )
    session.flush()


def revoke_all_keys(
    session: Session,
    *,
    user_id: str | None = None,
    service_account_id: str | None = None,
    now: datetime | None = None,
    org_id: str | None = None,
) -> int:
    """Revoke every key of an owner (deleting a service account); returns how many.
    ``org_id``: only the keys that work in that organization only (``ApiKey.org_id``).

    Does NOT authorize and records nothing: the caller's own audit event covers it.
    """
    if (user_id is None) == (service_account_id is None):
        raise ValueError("name the one owner whose keys to revoke")
    owner = (
        ApiKey.user_id == user_id
        if user_id is not None
        else ApiKey.service_account_id == service_account_id
    )
    if org_id is not None:
        owner = and_(owner, ApiKey.org_id == org_id)
    result = session.execute(
        update(ApiKey)
        .where(owner, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now or datetime.now(UTC))
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- a user's own keys --------------------------------------------------------------------------


def create_own_key(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    description: str | None = None,
    expires_in: int | None = None,
    scopes: Iterable[str | Permission] | None = None,
) -> tuple[ApiKey, str]:
    """The calling user issues itself a key; returns the row and the secret (shown once).

    A credential makes no key that outranks or outlives it (``require_within_credential``), nor
    one that works where it does not: a credential bound to one organization makes a key bound
    to it.

    Raises ``PermissionDenied`` without ``org:read``, for a service account (its keys are
    managed by those who manage the account), for an access token, or for scopes or a lifetime
    beyond the caller's key; ``InvalidInput`` for a bad description, lifetime or scope.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    user_id = _own_user_id(actor)
    permissions = parse_scopes(scopes)
    # One clock for the check and the key: the expiry checked is the one stored.
    now = datetime.now(UTC)
    require_within_credential(actor, permissions, expiry(expires_in, now), for_itself=True)
    return create_key(
        session,
        actor=actor,
        org_id=org.id,
        user_id=user_id,
        description=description,
        expires_in=expires_in,
        scopes=permissions,
        now=now,
        # A credential that works in one organization (a single sign-on's session) makes a key
        # that works there only: another organization's sign-on must not mint keys that reach
        # this one.
        bound_to=actor.bound_org_id,
    )


def require_within_credential(
    actor: Principal,
    scopes: frozenset[Permission] | None,
    expires_at: datetime | None,
    *,
    for_itself: bool,
) -> None:
    """``PermissionDenied`` naming ``credential.mint`` when the caller's credential may not make
    a key of these ``scopes`` and expiry, for itself or (``for_itself`` false) for a service
    account (``policy.check_key_mint``)."""
    violation = within_credential(actor, scopes, expires_at, for_itself=for_itself)
    if violation is not None:
        raise PermissionDenied(violation.message, rule=violation.rule)


def within_credential(
    actor: Principal,
    scopes: frozenset[Permission] | None,
    expires_at: datetime | None,
    *,
    for_itself: bool,
) -> policy.RuleViolation | None:
    """``policy.check_key_mint`` for the caller's credential."""
    return policy.check_key_mint(
        credential=actor.credential,
        credential_scopes=actor.key_scopes,
        credential_expires_at=actor.credential_expires_at,
        scopes=scopes,
        expires_at=expires_at,
        for_itself=for_itself,
    )


def list_own_keys(session: Session, *, actor: Principal, org: Organization) -> list[ApiKey]:
    """The calling user's unrevoked keys, without secrets.

    Raises ``PermissionDenied`` without ``org:read`` or for a service account.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    return list_keys(session, user_id=_own_user_id(actor))


def revoke_own_key(session: Session, *, actor: Principal, org: Organization, key_id: str) -> None:
    """The calling user revokes one of its keys (the one in use included).

    A key may always revoke itself, as a session may always end itself: a leaked key scoped to
    less than ``org:read`` is otherwise stuck working. Any other of the user's keys needs
    ``org:read``.

    Raises ``PermissionDenied`` without ``org:read`` or for a service account; ``NotFound`` for
    a key that is not the caller's or is already revoked.
    """
    itself = actor.credential is CredentialKind.API_KEY and key_id == actor.credential_id
    if not itself:
        authz.require(session, actor, Permission.ORG_READ, org)
    key = get_key(session, key_id=key_id, user_id=_own_user_id(actor))
    if key is None:
        raise NotFound(f"you have no API key {key_id!r}", field="key_id")
    revoke_key(session, actor=actor, org_id=org.id, key=key)


# --- a user's keys, by the user or an org admin (the wandb SDK's surface) -----------------------


def visible_user_keys(
    session: Session, *, actor: Principal, org: Organization, user_id: str
) -> list[ApiKey] | None:
    """A user's unrevoked keys (no secrets) for the user itself (with ``org:read``, as
    ``list_own_keys``) or an org admin (``org:manage_users``); ``None`` for anyone else, or for
    a key scoped to other permissions (checked without raising)."""
    itself = actor.user_id == user_id
    needed = Permission.ORG_READ if itself else Permission.ORG_MANAGE_USERS
    if not authz.check(session, actor, needed, org).allowed:
        return None
    if not session.scalar(
        select(OrgMembership.id).where(
            OrgMembership.org_id == org.id, OrgMembership.user_id == user_id
        )
    ):
        return None
    keys = list_keys(session, user_id=user_id)
    return keys if itself else [key for key in keys if _managed_in(session, key, org)]


def _managed_in(session: Session, key: ApiKey, org: Organization) -> bool:
    """Whether ``org``'s admins manage this user's key: it works in ``org`` only, or in every
    organization of a user that belongs to no other. A key that also works in another
    organization is the user's and that organization's too: no one organization's admin lists
    or revokes it (multi-org mode)."""
    if key.org_id is not None:
        return key.org_id == org.id
    return _only_in(session, key.user_id, org)


def _only_in(session: Session, user_id: str | None, org: Organization) -> bool:
    other = select(OrgMembership.id).where(
        OrgMembership.user_id == user_id, OrgMembership.org_id != org.id
    )
    return session.scalar(other.limit(1)) is None


def revoke_user_key(session: Session, *, actor: Principal, org: Organization, key_id: str) -> None:
    """Revoke a user's key: the caller's own, or (org admins) one of an org member's.

    Raises ``PermissionDenied`` (another user's key without ``org:manage_users``, or a service
    account caller); ``NotFound`` for a key that is unknown, revoked or not of this org's users.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    own = get_key(session, key_id=key_id, user_id=_own_user_id(actor))
    if own is not None:
        revoke_key(session, actor=actor, org_id=org.id, key=own)
        return
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    key = (
        session.scalar(
            select(ApiKey)
            .join(OrgMembership, OrgMembership.user_id == ApiKey.user_id)
            .where(
                ApiKey.id == key_id,
                ApiKey.revoked_at.is_(None),
                OrgMembership.org_id == org.id,
            )
        )
        if key_id and len(key_id) <= 64 and "\x00" not in key_id
        else None
    )
    if key is not None and not _managed_in(session, key, org):
        key = None  # another organization's as much as this one's: not this admin's to revoke
    if key is None:
        raise NotFound(f"no API key {key_id!r} of a user of this organization", field="id")
    revoke_key(session, actor=actor, org_id=org.id, key=key)


def _own_user_id(actor: Principal) -> str:
    if actor.user_id is None:
        raise PermissionDenied(
            "only users manage their own API keys; a service account's keys are managed by "
            "those who manage the account"
        )
    return actor.user_id


def _owned(user_id: str | None, service_account_id: str | None):  # type: ignore[no-untyped-def]
    if (user_id is None) == (service_account_id is None):
        raise ValueError("a key belongs to exactly one user or service account")
    if user_id is not None:
        return select(ApiKey).where(ApiKey.user_id == user_id)
    return select(ApiKey).where(ApiKey.service_account_id == service_account_id)


def _owner(key: ApiKey) -> dict[str, str | None]:
    if key.user_id is not None:
        return {"user_id": key.user_id}
    return {"service_account_id": key.service_account_id}


def _check_description(description: str | None) -> str | None:
    if description is None:
        return None
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_LENGTH or any(
        ord(c) < 32 or ord(c) == 127 for c in description
    ):
        raise InvalidInput(
            f"descriptions are at most {MAX_DESCRIPTION_LENGTH} printable characters",
            field="description",
        )
    return description or None
