"""Service accounts and their API keys.

Org-scoped accounts (with a default team) are managed by org admins; team-scoped ones by those
who hold ``team:manage_service_accounts`` on the parent team (its admins and org admins).
Deleting an account is soft: the row stays so its runs stay attributed, but it holds no
permission and its keys are revoked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.api_keys.issue import issue_key
from rolecall.api_keys.models import ApiKey
from rolecall.api_keys.service import parse_scopes, require_within_credential, within_credential
from rolecall.audit.service import record
from rolecall.authz.permissions import Permission, parse_permission
from rolecall.authz.roles import TeamRole
from rolecall.errors import Conflict, InvalidInput, NotFound, some_of
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import derived_secret, digest, same_digest
from rolecall.orgs.models import Organization
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.models import Team, TeamMembership
from rolecall.teams.service import require_team
from rolecall.users.naming import USERNAME_RE
from rolecall.users.queries import member_with_email

ORG_SCOPE, TEAM_SCOPE = "org", "team"
BUILTIN, EXTERNAL = "builtin", "external"
#: An API key lives at most this long when an expiry is asked for.
MAX_KEY_LIFETIME = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account with its (parent or default) team, and its first key right after creation."""

    account: ServiceAccount
    team: Team
    api_key: str | None = None


def _view(session: Session, account: ServiceAccount) -> AccountView:
    team = session.get(Team, account.team_id)
    assert team is not None  # team_id is a non-null foreign key
    return AccountView(account, team)


# --- lookups and guards -----------------------------------------------------------------------


def get_service_account(session: Session, *, org: Organization, ref: str) -> ServiceAccount | None:
    """A live (not deleted) account of ``org`` by name (case-insensitive) or id."""
    return session.scalar(
        select(ServiceAccount).where(
            ServiceAccount.org_id == org.id,
            ServiceAccount.deleted_at.is_(None),
            or_(ServiceAccount.name_key == ref.strip().lower(), ServiceAccount.id == ref),
        )
    )


def require_service_account(session: Session, *, org: Organization, ref: str) -> ServiceAccount:
    """Like ``get_service_account``. Raises ``NotFound``."""
    account = get_service_account(session, org=org, ref=ref)
    if account is None:
        raise NotFound(f"no service account {ref!r}", field="service_account")
    return account


def _require_manage(
    session: Session, actor: Principal, org: Organization, account: ServiceAccount
) -> None:
    """Org-scoped: org admins. Team-scoped: ``team:manage_service_accounts`` on its team."""
    if account.scope == ORG_SCOPE:
        authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
        return
    team = session.get(Team, account.team_id)
    assert team is not None  # team_id is a non-null foreign key
    authz.require(session, actor, Permission.TEAM_MANAGE_SERVICE_ACCOUNTS, team)


def _audit(
    session: Session, actor: Principal, action: str, account: ServiceAccount, **change: object
) -> None:
    record(
        session,
        actor=actor,
        action=action,
        object_type="service_account",
        object_id=account.id,
        object_name=account.name,
        org_id=account.org_id,
        **change,  # type: ignore[arg-type]
    )


def _check_name(name: str) -> None:
    """Service account names follow the username rules."""
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "service account names use only letters, digits, '_' and '-' (1-64 characters)",
            field="name",
        )


def _check_kind(scope: str, kind: str, subject: str | None) -> str | None:
    """Built-in accounts authenticate with keys; external ones (team-scoped) with a subject."""
    if scope not in (ORG_SCOPE, TEAM_SCOPE):
        raise InvalidInput("scope must be org or team", field="scope")
    if kind == BUILTIN:
        if subject is not None:
            raise InvalidInput("only external service accounts have a subject", field="subject")
        return None
    if kind != EXTERNAL:
        raise InvalidInput("kind must be builtin or external", field="kind")
    if scope != TEAM_SCOPE:
        raise InvalidInput("external service accounts are team-scoped", field="scope")
    if subject is None or not subject.strip():
        raise InvalidInput(
            "external service accounts need a subject (the JWT's sub)", field="subject"
        )
    return subject


# --- accounts ---------------------------------------------------------------------------------


def create_service_account(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    name: str,
    scope: str,
    team: str,
    kind: str = BUILTIN,
    description: str = "",
    subject: str | None = None,
    derive_key_with: bytes | None = None,
) -> AccountView:
    """Create an account; a built-in one gets an API key, returned once in the view.

    ``derive_key_with`` (the server's secret key): the first key is derived from it, so
    ``revealable_keys`` can show it again to those who manage the account.

    Org-scoped: ``team`` is its default team, org admins only. Team-scoped: ``team`` is its
    parent team, where it joins with the ``service`` role.
    Raises ``PermissionDenied``, ``NotFound`` (team), ``InvalidInput``, ``Conflict`` (name or
    subject taken).
    """
    if scope == ORG_SCOPE:
        authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    team_row = require_team(session, org=org, ref=team)
    if scope == TEAM_SCOPE:
        authz.require(session, actor, Permission.TEAM_MANAGE_SERVICE_ACCOUNTS, team_row)
    subject = _check_kind(scope, kind, subject)
    if kind == BUILTIN:
        # The account's first key never expires and is unscoped: only a credential that may
        # make such a key makes the account (``policy.check_key_mint``).
        require_within_credential(actor, None, None, for_itself=False)
    _check_name(name)
    if session.scalar(
        select(ServiceAccount.id).where(
            ServiceAccount.org_id == org.id, ServiceAccount.name_key == name.lower()
        )
    ):
        raise Conflict(f"a service account named {name!r} already exists", field="name")
    if subject is not None and session.scalar(
        select(ServiceAccount.id).where(
            ServiceAccount.org_id == org.id,
            ServiceAccount.subject == subject,
            ServiceAccount.deleted_at.is_(None),
        )
    ):
        raise Conflict("another service account has this subject", field="subject")
    if subject is not None and member_with_email(session, org.id, subject.strip()) is not None:
        # Such JWTs sign that user in (federation looks for the user first): an account named
        # after a user's email would never be used, or, if it were, would take their identity.
        raise Conflict(
            "this subject is the email of a user of the organization: JWTs naming it sign that "
            "user in",
            field="subject",
        )
    account = ServiceAccount(
        org_id=org.id,
        name=name,
        name_key=name.lower(),
        description=description,
        scope=scope,
        team_id=team_row.id,
        kind=kind,
        subject=subject,
        created_by_user_id=actor.user_id,
    )
    session.add(account)
    session.flush()
    if scope == TEAM_SCOPE:
        session.add(
            TeamMembership(
                team_id=team_row.id, service_account_id=account.id, role=TeamRole.SERVICE.value
            )
        )
    secret = None
    if kind == BUILTIN:
        _, secret = issue_key(
            session,
            service_account_id=account.id,
            description="created with the account",
            derive_with=derive_key_with,
        )
    after = {"name": name, "scope": scope, "team": team_row.name, "kind": kind, "subject": subject}
    _audit(session, actor, "service_account.create", account, after=after)
    session.flush()
    return AccountView(account, team_row, secret)


def list_service_accounts(
    session: Session, *, actor: Principal, org: Organization, team: str | None = None
) -> list[AccountView]:
    """The live accounts the caller may manage (org admins: all; team admins: their teams').

    ``team``: only accounts of that team (team-scoped) or with it as default team (org-scoped).
    Raises ``PermissionDenied`` (needs ``org:read``), ``NotFound`` (team).
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    query = select(ServiceAccount).where(
        ServiceAccount.org_id == org.id, ServiceAccount.deleted_at.is_(None)
    )
    if team is not None:
        query = query.where(ServiceAccount.team_id == require_team(session, org=org, ref=team).id)
    accounts = list(session.scalars(query.order_by(ServiceAccount.created_at, ServiceAccount.id)))
    if authz.check(session, actor, Permission.ORG_MANAGE_USERS, org).allowed:
        return [_view(session, account) for account in accounts]
    managed: dict[str, bool] = {}
    for account in accounts:
        if account.scope == TEAM_SCOPE and account.team_id not in managed:
            team_row = session.get(Team, account.team_id)
            assert team_row is not None
            decision = authz.check(
                session, actor, Permission.TEAM_MANAGE_SERVICE_ACCOUNTS, team_row
            )
            managed[account.team_id] = decision.allowed
    return [_view(session, a) for a in accounts if a.scope == TEAM_SCOPE and managed[a.team_id]]


def read_service_account(
    session: Session, *, actor: Principal, org: Organization, ref: str
) -> AccountView:
    """One account, for those who manage it. Raises ``NotFound``, ``PermissionDenied``."""
    account = require_service_account(session, org=org, ref=ref)
    _require_manage(session, actor, org, account)
    return _view(session, account)


def delete_service_account(
    session: Session, *, actor: Principal, org: Organization, ref: str
) -> None:
    """Soft-delete an account: it holds no permission, its keys are revoked, its name is free.

    The row stays (its runs stay attributed to it).
    Raises ``NotFound``, ``PermissionDenied``.
    """
    account = require_service_account(session, org=org, ref=ref)
    _require_manage(session, actor, org, account)
    now = datetime.now(UTC)
    account.deleted_at = now
    # The name is unique per org among every row; a deleted account gives it up for reuse.
    account.name_key = f"{account.name_key}~deleted~{account.id}"
    keys = _live_keys(session, account)
    for key in keys:
        key.revoked_at = now
    session.flush()
    _audit(
        session,
        actor,
        "service_account.delete",
        account,
        before={"name": account.name, "scope": account.scope, "kind": account.kind},
        detail=f"{len(keys)} API keys revoked",
    )
    session.flush()


# --- keys -------------------------------------------------------------------------------------


def _live_keys(session: Session, account: ServiceAccount) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey)
            .where(ApiKey.service_account_id == account.id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)
        )
    )


def list_keys(session: Session, *, actor: Principal, org: Organization, ref: str) -> list[ApiKey]:
    """The account's keys that are not revoked. Raises ``NotFound``, ``PermissionDenied``."""
    account = read_service_account(session, actor=actor, org=org, ref=ref).account
    return _live_keys(session, account)


def _parse_scopes(scopes: Iterable[str]) -> list[Permission]:
    """Catalogue permissions from client strings. Raises ``InvalidInput``."""
    parsed = {value: parse_permission(value) for value in scopes}
    unknown = [value for value, permission in parsed.items() if permission is None]
    if unknown:
        raise InvalidInput(f"unknown permissions: {some_of(unknown)}", field="scopes")
    return [permission for permission in parsed.values() if permission is not None]


def create_key(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    ref: str,
    description: str | None = None,
    expires_in: int | None = None,
    scopes: Iterable[str] | None = None,
) -> tuple[ApiKey, str]:
    """Issue another key for a built-in account; the secret is returned once.

    Raises ``NotFound``, ``PermissionDenied``, ``InvalidInput`` (external account, unknown
    scope, lifetime out of range).
    """
    account = read_service_account(session, actor=actor, org=org, ref=ref).account
    if account.kind != BUILTIN:
        raise InvalidInput(
            "external service accounts sign in with JWTs, not API keys", field="kind"
        )
    permissions = _parse_scopes(scopes) if scopes is not None else None
    expires_at = None
    if expires_in is not None:
        if not 0 < expires_in <= MAX_KEY_LIFETIME.total_seconds():
            raise InvalidInput("expires_in is 1 second to 10 years", field="expires_in")
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    scoped = frozenset(permissions) if permissions is not None else None
    require_within_credential(actor, scoped, expires_at, for_itself=False)
    key, secret = issue_key(
        session,
        service_account_id=account.id,
        description=description,
        scopes=permissions,
        expires_at=expires_at,
    )
    after = {"key_id": key.id, "hint": key.hint, "scopes": key.scopes}
    _audit(session, actor, "service_account.api_key.create", account, after=after)
    session.flush()
    return key, secret


def revoke_key(
    session: Session, *, actor: Principal, org: Organization, ref: str, key_id: str
) -> None:
    """Revoke one of the account's keys. Raises ``NotFound``, ``PermissionDenied``."""
    account = read_service_account(session, actor=actor, org=org, ref=ref).account
    key = session.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id,
            ApiKey.service_account_id == account.id,
            ApiKey.revoked_at.is_(None),
        )
    )
    if key is None:
        raise NotFound(f"no API key {key_id!r} for {account.name}", field="key_id")
    key.revoked_at = datetime.now(UTC)
    session.flush()
    before = {"key_id": key.id, "hint": key.hint}
    _audit(session, actor, "service_account.api_key.revoke", account, before=before)
    session.flush()


def revealable_keys(
    session: Session, *, actor: Principal, team: Team, server_key: bytes | None
) -> dict[str, str]:
    """The API keys of ``team``'s live built-in accounts that can be shown again, by account id.

    Only for those who manage the team's service accounts (``team:manage_service_accounts``,
    checked without raising: others get ``{}``), only for keys derived from ``server_key``
    (created with ``derive_key_with``), and only keys the caller's credential could have made
    (``policy.check_key_mint``: a scoped or expiring credential is shown no key that outranks
    or outlives it). Each key shown is audited.
    """
    if server_key is None:
        return {}
    if not authz.check(session, actor, Permission.TEAM_MANAGE_SERVICE_ACCOUNTS, team).allowed:
        return {}
    rows = session.execute(
        select(ServiceAccount, ApiKey)
        .join(ApiKey, ApiKey.service_account_id == ServiceAccount.id)
        .where(
            ServiceAccount.team_id == team.id,
            ServiceAccount.scope == TEAM_SCOPE,
            ServiceAccount.deleted_at.is_(None),
            ApiKey.revoked_at.is_(None),
        )
        .order_by(ApiKey.created_at, ApiKey.id)
    ).all()
    now = datetime.now(UTC)
    shown: dict[str, str] = {}
    for account, key in rows:
        if account.id in shown or (key.expires_at is not None and key.expires_at <= now):
            continue
        scopes = parse_scopes(key.scopes)
        if within_credential(actor, scopes, key.expires_at, for_itself=False) is not None:
            continue
        secret = derived_secret(server_key, key.id)
        if not same_digest(digest(secret), key.digest):
            continue  # a random key (REST, CLI): shown once at creation, never again
        shown[account.id] = secret
        after = {"key_id": key.id, "hint": key.hint}
        _audit(session, actor, "service_account.api_key.reveal", account, after=after)
    session.flush()
    return shown
