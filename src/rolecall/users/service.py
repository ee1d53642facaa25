"""Users of an organization: create, find, list, role and seats, deactivate, reactivate, delete.

Surface-neutral (REST, SCIM and SSO provisioning call these). Each function authorizes first,
applies the domain rules, records an audit event in the caller's transaction and flushes. A
``User`` is a global identity; an ``OrgMembership`` makes it a user of one organization.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit.service import record
from rolecall.authz.permissions import Permission
from rolecall.authz.policy import check_identity_change
from rolecall.authz.roles import OrgRole, SeatType, parse_org_role
from rolecall.db.base import new_id
from rolecall.db.rows import insert_now
from rolecall.db.session import runs_again_after
from rolecall.errors import Conflict, InvalidInput, NotFound
from rolecall.identity.principal import Principal
from rolecall.identity.sessions import revoke_user_sessions
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.orgs.service import guard_last_admin, remove_membership
from rolecall.roles.models import CustomRole
from rolecall.teams import writes
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from rolecall.users.naming import (
    USERNAME_RE,
    check_username,
    normalise_email,
    username_from_email,
)
from rolecall.users.queries import (
    available_name,
    names_taken,
    org_membership,
    user_name_key,
)

MAX_PAGE_SIZE = 500
MAX_FULL_NAME_LENGTH = 256
MAX_REF_LENGTH = 320
MAX_NAME_PART_LENGTH = 128
MAX_EXTERNAL_ID_LENGTH = 256
MAX_USER_NAME_LENGTH = 320
#: Fields of ``update_user`` kept on the identity (the others are on the org membership).
USER_FIELDS = frozenset({"full_name", "given_name", "family_name", "email", "user_name"})


class Unset(enum.Enum):
    """Marks an argument that was not given (``None`` is a value: it clears ``full_name``)."""

    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


class OrgUser(NamedTuple):
    """A user as a member of one organization (what ``UserRead`` shows)."""

    user: User
    membership: OrgMembership


class UserPage(NamedTuple):
    """One page of a listing, with the total the filters match."""

    items: list[OrgUser]
    total: int
    offset: int
    limit: int


# --- reading ----------------------------------------------------------------------------------


def get_user(session: Session, *, actor: Principal, org: Organization, ref: str) -> OrgUser | None:
    """A user of ``org`` by id, username or email, or ``None``; ``PermissionDenied`` without
    ``org:read``."""
    authz.require(session, actor, Permission.ORG_READ, org)
    return _find_member(session, org, ref)


def require_user(session: Session, *, actor: Principal, org: Organization, ref: str) -> OrgUser:
    """Like ``get_user``, but raises ``NotFound`` when ``org`` has no such user."""
    authz.require(session, actor, Permission.ORG_READ, org)
    return _require_member(session, org, ref)


def list_users(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    q: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> UserPage:
    """A page of ``org``'s users, deactivated ones included, in the order they joined the
    organization, then by id (stable).

    ``q`` matches a substring of the username or email, case-insensitively.

    Raises ``PermissionDenied`` without ``org:read``; ``InvalidInput`` for a bad page or ``q``.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"offset must be >= 0 and limit 1 to {MAX_PAGE_SIZE}", field="limit")
    query = _members(OrgMembership.org_id == org.id)
    if q:
        if "\x00" in q:
            raise InvalidInput("q may not contain NUL characters", field="q")
        needle = q.strip().lower()
        query = query.where(
            User.username_key.contains(needle, autoescape=True)
            | User.email_key.contains(needle, autoescape=True)
        )
    total = _total(session, org, query, filtered=bool(q))
    order = (OrgMembership.created_at, OrgMembership.user_id)
    rows = _page(session, org, query, order, offset, limit, by_index=not q)
    return UserPage([OrgUser(*row) for row in rows], total, offset, limit)


def search_users(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    where: ColumnElement[bool] | None = None,
    order: Sequence[ColumnElement[Any]] = (),
    offset: int = 0,
    limit: int = 100,
) -> UserPage:
    """A page of ``org``'s users matching ``where`` (a condition over ``User`` and
    ``OrgMembership``, such as a translated SCIM filter), ordered by ``order`` (a translated
    SCIM sort), then by user id: unique, so pages never overlap, and the order the (org, user)
    index already holds.

    ``limit`` 0 only counts. Raises ``PermissionDenied`` without ``org:read``.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    query = _members(OrgMembership.org_id == org.id)
    if where is not None:
        query = query.where(where)
    total = _total(session, org, query, filtered=where is not None)
    if limit <= 0:
        return UserPage([], total, offset, 0)
    by_index = where is None and not order
    rows = _page(session, org, query, (*order, OrgMembership.user_id), offset, limit, by_index)
    return UserPage([OrgUser(*row) for row in rows], total, offset, limit)


def get_user_by_id(
    session: Session, *, actor: Principal, org: Organization, user_id: str
) -> OrgUser | None:
    """A user of ``org`` by id only (one indexed query), or ``None``; ``PermissionDenied``
    without ``org:read``."""
    authz.require(session, actor, Permission.ORG_READ, org)
    return member_by_id(session, org=org, user_id=user_id)


def member_by_id(session: Session, *, org: Organization, user_id: str) -> OrgUser | None:
    """``get_user_by_id`` without authorization: for a caller that has already been allowed
    to read or write this user."""
    if not user_id or len(user_id) > MAX_REF_LENGTH or "\x00" in user_id:
        return None
    row = session.execute(_members(OrgMembership.org_id == org.id, User.id == user_id)).first()
    return OrgUser(*row) if row else None


def teams_of_users(
    session: Session, *, org: Organization, user_ids: list[str]
) -> dict[str, list[tuple[Team, str]]]:
    """For each user, its teams of ``org`` (not personal entities) with its role's name there
    (a predefined role or the custom role's name), by team name: one query for a whole page.
    No authorization: for callers that have already read these users."""
    found: dict[str, list[tuple[Team, str]]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return found
    query = (
        select(TeamMembership.user_id, Team, TeamMembership.role, CustomRole.name)
        .join(Team, Team.id == TeamMembership.team_id)
        .outerjoin(CustomRole, CustomRole.id == TeamMembership.custom_role_id)
        .where(Team.org_id == org.id, Team.kind == "team", TeamMembership.user_id.in_(user_ids))
        .order_by(Team.name_key)
    )
    for user_id, team, role, custom in session.execute(query):
        found[user_id].append((team, custom or role))
    return found


def user_teams(session: Session, *, actor: Principal, org: Organization, ref: str) -> list[Team]:
    """The teams of ``org`` (not personal entities) the user belongs to, by name: those whose
    members the caller may see (``team:read``; its own teams, to a user asking about itself),
    so that no team's roster is pieced together user by user.

    Raises ``PermissionDenied`` without ``org:read``; ``NotFound`` for an unknown user.
    """
    authz.require(session, actor, Permission.ORG_READ, org)
    user = _require_member(session, org, ref).user
    query = (
        select(Team)
        .join(TeamMembership, TeamMembership.team_id == Team.id)
        .where(Team.org_id == org.id, Team.kind == "team", TeamMembership.user_id == user.id)
    )
    teams = list(session.scalars(query.order_by(Team.name_key)))
    if user.id == actor.user_id:
        return teams
    return [
        team for team in teams if authz.check(session, actor, Permission.TEAM_READ, team).allowed
    ]


def signed_in_user(session: Session, *, user_id: str) -> OrgUser | None:
    """The user with its first active membership, for a sign-in response (no authorization:
    the caller has just authenticated this very user)."""
    query = _members(User.id == user_id, OrgMembership.active.is_(True))
    row = session.execute(query.order_by(OrgMembership.created_at, OrgMembership.id)).first()
    return OrgUser(*row) if row else None


# --- creating ---------------------------------------------------------------------------------


def create_user(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    email: str,
    username: str | None = None,
    full_name: str | None = None,
    role: str | OrgRole = OrgRole.MEMBER,
    models_seat: str | SeatType = SeatType.FULL,
    weave_seat: str | SeatType = SeatType.FULL,
    user_name: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
    external_id: str | None = None,
    active: bool = True,
) -> OrgUser:
    """Add a user to ``org``: a new identity with its personal entity, or an existing one.

    Emails are unique case-insensitively; a username (letters, digits, ``_``, ``-``; derived
    from the email when not given) is unique case-insensitively among usernames and team names
    (one namespace of entities). A user of another organization (multi-org mode) joins with its
    existing identity and personal entity; its username and full name stay as they are.

    Raises ``PermissionDenied`` without ``org:manage_users``; ``InvalidInput`` for a bad email,
    username, full name, role or seat; ``Conflict`` when the email or username is taken, or the
    user is already a member.

    ``user_name`` (SCIM ``userName``: an identity provider's login name, unique
    case-insensitively) becomes the username when it is a valid, free one; otherwise the
    username is derived and the login name is kept beside it. ``external_id`` is the identity
    provider's id for the user in this organization; ``active=False`` adds it deactivated.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    email = normalise_email(email)
    membership = OrgMembership(
        org_id=org.id,
        role=_parse_role(role).value,
        models_seat=_parse_seat(models_seat, "models_seat").value,
        weave_seat=_parse_seat(weave_seat, "weave_seat").value,
        active=active,
        deactivated_at=None if active else datetime.now(UTC),
        external_id=_check_text(external_id, "external_id", MAX_EXTERNAL_ID_LENGTH),
    )
    full_name = _check_full_name(full_name)
    given_name = _check_text(given_name, "given_name", MAX_NAME_PART_LENGTH)
    family_name = _check_text(family_name, "family_name", MAX_NAME_PART_LENGTH)
    if username is not None:
        check_username(username)
    if user_name is not None:
        user_name = _check_user_name(user_name)
    user = _user_with_email(session, email.lower())
    detail = None
    if user is None:
        login_name_is_username = False
        if user_name is not None:
            taken = names_taken(session, user_name.lower())
            if taken.user_name:
                raise _user_name_taken(user_name)
            login_name_is_username = (
                username is None and bool(USERNAME_RE.fullmatch(user_name)) and not taken.entity
            )
        if login_name_is_username:
            username = user_name  # just found free: no second look
        elif username is not None:
            _check_name_free(session, username)
        else:  # derived, and found free
            seed = user_name if user_name and "@" in user_name else email
            username = available_name(session, username_from_email(seed))
        user = User(email=email, email_key=email.lower(), username=username)
        user.username_key, user.full_name = username.lower(), full_name
        user.given_name, user.family_name = given_name, family_name
        _set_user_name(user, user_name)
    else:
        _check_can_join(session, org, user, username)
        if user_name is not None and user_name.lower() != scim_user_name(user).lower():
            raise Conflict(
                f"{user.email} already exists with userName {scim_user_name(user)!r}",
                field="user_name",
            )
        detail = "an existing user (of another organization) joined"
    after = {"email": user.email, "username": user.username, **_fields(membership)}
    _insert(
        session,
        org,
        user,
        membership,
        lambda: _record(session, actor, org, user, "user.create", None, after, detail),
    )
    return OrgUser(user, membership)


def _check_name_free(session: Session, username: str) -> None:
    if not _free_username(session, username):
        raise Conflict(f"the name {username!r} is taken by a user or team", field="username")


def _free_username(session: Session, username: str) -> bool:
    """Whether ``username`` is valid and free as a username, an entity name and a userName."""
    if not USERNAME_RE.fullmatch(username):
        return False
    return not names_taken(session, username.lower()).entity


def scim_user_name(user: User) -> str:
    """The user's login name as SCIM shows it (``userName``)."""
    return user.user_name or user.username


def scim_user_name_column() -> ColumnElement[str]:
    """``scim_user_name`` as a column, for queries that need no ``User`` objects."""
    return func.coalesce(User.user_name, User.username)


def user_name_matches(key: str) -> ColumnElement[bool]:
    """``userName`` equals ``key`` (lower-cased): one index lookup, no scan."""
    return user_name_key() == key


_USER_WITH_EMAIL = select(User.id).where(User.email_key == bindparam("email_key"))


def _user_with_email(session: Session, email_key: str) -> User | None:
    """The user with that (lower-cased) email: its id first (most creates find none), then the
    user itself through the session."""
    found = session.connection().execute(_USER_WITH_EMAIL, {"email_key": email_key}).scalar()
    return None if found is None else session.get(User, found)


def check_user_name_free(session: Session, user_name: str, *, user_id: str | None = None) -> None:
    """Raises ``Conflict`` (code ``uniqueness``) when another user has that login name."""
    query = select(User.id).where(user_name_matches(user_name.lower()))
    if user_id is not None:
        query = query.where(User.id != user_id)
    if session.scalar(query.limit(1)) is not None:
        raise _user_name_taken(user_name)


def _user_name_taken(user_name: str) -> Conflict:
    return Conflict(f"the userName {user_name!r} is taken", field="user_name", code="uniqueness")


def _set_user_name(user: User, user_name: str | None) -> None:
    if user_name is None or user_name == user.username:
        user.user_name, user.user_name_key = None, None
    else:
        user.user_name, user.user_name_key = user_name, user_name.lower()


def _check_can_join(session: Session, org: Organization, user: User, username: str | None) -> None:
    if org_membership(session, org.id, user.id) is not None:
        raise Conflict(f"{user.email} is already a user of this organization", field="email")
    if username is not None and username.lower() != user.username_key:
        raise Conflict(
            f"{user.email} already exists with username {user.username!r}", field="username"
        )


def _insert(
    session: Session,
    org: Organization,
    user: User,
    membership: OrgMembership,
    audit: Callable[[], None],
) -> None:
    """Write the user (when new), then its personal entity, the membership and the ``audit``
    record (which flushes) together, in a savepoint: a concurrent request that took the email
    or name first makes a ``Conflict``, not a 500, unless the request runs again
    (``runs_again_after``), and then sees that request's user: it joins it (multi-org mode) or
    is refused as any request for a taken email or name is."""
    try:
        with session.begin_nested():
            new_rows: list[object] = []
            if user.id is None:  # a new identity, with its personal entity
                user.id = new_id()
                personal = Team(
                    org_id=org.id,
                    name=user.username,
                    name_key=user.username_key,
                    kind="personal",
                    personal_owner_id=user.id,
                )
                new_rows += [user, personal]
            membership.user_id = user.id
            insert_now(session, *new_rows, membership)
            audit()
    except IntegrityError as exc:
        if runs_again_after(session, exc):
            raise
        raise Conflict("that email or username was taken at the same moment; retry") from exc


# --- changing ---------------------------------------------------------------------------------


def update_user(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    ref: str,
    role: str | OrgRole | None = None,
    models_seat: str | SeatType | None = None,
    weave_seat: str | SeatType | None = None,
    full_name: str | Unset | None = UNSET,
    given_name: str | Unset | None = UNSET,
    family_name: str | Unset | None = UNSET,
    email: str | Unset = UNSET,
    user_name: str | Unset = UNSET,
    external_id: str | Unset | None = UNSET,
) -> OrgUser:
    """Set a user's org role (admin, member, viewer), seats (full, viewer, none), names,
    email, login name (SCIM ``userName``) or external id; a ``None`` role or seat, or an
    ``UNSET`` value, stays as it is.

    Raises ``PermissionDenied`` without ``org:manage_users``; ``NotFound`` for an unknown user;
    ``InvalidInput`` for a bad value; ``Conflict`` (code ``last_admin``) demoting the last admin,
    when the email or login name belongs to another user, or (code ``shared_identity``) changing
    the email, login name or names of a user that other organizations hold too.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    user, membership = member = _require_member(session, org, ref)
    changes: dict[str, Any] = {}
    for field, text, limit in (
        ("given_name", given_name, MAX_NAME_PART_LENGTH),
        ("family_name", family_name, MAX_NAME_PART_LENGTH),
        ("external_id", external_id, MAX_EXTERNAL_ID_LENGTH),
    ):
        if text is not UNSET:
            value = _check_text(text, field, limit)
            owner_row = membership if field == "external_id" else user
            if value != getattr(owner_row, field):
                changes[field] = value
    if email is not UNSET:
        new_email = normalise_email(email)
        if new_email != user.email:
            other = session.scalar(
                select(User.id).where(User.email_key == new_email.lower(), User.id != user.id)
            )
            if other is not None:
                raise Conflict(f"{new_email} belongs to another user", field="email")
            changes["email"] = new_email
    if user_name is not UNSET:
        new_name = _check_user_name(user_name)
        if new_name != scim_user_name(user):
            check_user_name_free(session, new_name, user_id=user.id)
            changes["user_name"] = new_name
    if role is not None:
        new_role = _parse_role(role).value
        if new_role != membership.role:
            guard_last_admin(session, org, membership, stays_admin=new_role == OrgRole.ADMIN)
            changes["role"] = new_role
    for field, seat in (("models_seat", models_seat), ("weave_seat", weave_seat)):
        value = getattr(membership, field) if seat is None else _parse_seat(seat, field).value
        if value != getattr(membership, field):
            changes[field] = value
    if full_name is not UNSET and _check_full_name(full_name) != user.full_name:
        changes["full_name"] = _check_full_name(full_name)
    if changes.keys() & USER_FIELDS:
        # Before anything is set: a refusal leaves the user as it was (and the query's
        # autoflush sends no half-made change).
        _guard_shared_identity(session, org, user)
    owner = {field: user if field in USER_FIELDS else membership for field in changes}
    before = {
        field: scim_user_name(user) if field == "user_name" else getattr(owner[field], field)
        for field in changes
    }
    for field, value in changes.items():
        if field == "user_name":
            _set_user_name(user, value)
        else:
            setattr(owner[field], field, value)
        if field == "email":
            user.email_key = value.lower()
    if changes:
        membership.updated_at = datetime.now(UTC)
        _record(session, actor, org, user, "user.update", before, changes)
    return member


def rename_user(
    session: Session, *, actor: Principal, org: Organization, ref: str, username: str
) -> OrgUser:
    """Give a user a new username; its personal entity (and so its personal projects' paths)
    follows. Used when the identity provider decides usernames (GORILLA_USE_IDENTIFIER_CLAIMS).

    Raises ``PermissionDenied`` without ``org:manage_users``; ``NotFound``; ``InvalidInput`` for
    a bad username; ``Conflict`` when another user or a team has the name, or (code
    ``shared_identity``) when other organizations hold the user too.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    user, _membership = member = _require_member(session, org, ref)
    check_username(username)
    if username == user.username:
        return member
    _guard_shared_identity(session, org, user)
    if username.lower() != user.username_key:
        _check_name_free(session, username)
    before = {"username": user.username}
    personal = session.scalar(select(Team).where(Team.personal_owner_id == user.id))
    user.username, user.username_key = username, username.lower()
    if personal is not None:
        personal.name, personal.name_key = username, username.lower()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        if runs_again_after(session, exc):
            raise
        raise Conflict("that username was taken at the same moment; retry") from exc
    _record(session, actor, org, user, "user.update", before, {"username": username})
    return member


def _guard_shared_identity(session: Session, org: Organization, user: User) -> None:
    """A user of other organizations too keeps its identity as it is (``authz.domain_rules``;
    a rule of ours, where ACCESS.md is silent).

    Raises ``Conflict`` with the rule's message and code ``shared_identity``.
    """
    others = session.scalar(
        select(func.count())
        .select_from(OrgMembership)
        .where(OrgMembership.user_id == user.id, OrgMembership.org_id != org.id)
    )
    violation = check_identity_change(other_organizations=others or 0)
    if violation is not None:
        raise Conflict(violation.message, code="shared_identity")


def set_user_active(
    session: Session, *, actor: Principal, org: Organization, ref: str, active: bool
) -> OrgUser:
    """Deactivate (``active=False``) or reactivate a user; setting the current state is a no-op.

    A deactivated user stays listed but holds no permission, and its browser sessions end.

    Raises ``PermissionDenied`` without ``org:manage_users``; ``NotFound`` for an unknown user;
    ``Conflict`` (code ``last_admin``) when deactivating the last active org admin.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    user, membership = member = _require_member(session, org, ref)
    if membership.active == active:
        return member
    now = datetime.now(UTC)
    if not active:
        guard_last_admin(session, org, membership, stays_admin=False)
        revoke_user_sessions(session, user_id=user.id, now=now, org_id=org.id)
    membership.active, membership.deactivated_at = active, None if active else now
    action = "user.reactivate" if active else "user.deactivate"
    _record(session, actor, org, user, action, {"active": not active}, {"active": active})
    return member


def delete_user(session: Session, *, actor: Principal, org: Organization, ref: str) -> None:
    """Remove a user from ``org`` (see ``orgs.service.remove_membership`` for what goes).

    The ``User`` row stays, so runs keep their creator.

    Raises ``PermissionDenied`` without ``org:manage_users``; ``NotFound`` for an unknown user;
    ``Conflict`` (code ``last_admin``) for the last active org admin.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    user, membership = _require_member(session, org, ref)
    # ``teams.writes``' lock order: the teams the user leaves before its own rows.
    writes.hold_teams_of(session, org_id=org.id, user_id=user.id)
    writes.seal_leaving(session, membership)
    guard_last_admin(session, org, membership, stays_admin=False)
    before = {"email": user.email, "username": user.username, **_fields(membership)}
    keys = remove_membership(session, org=org, membership=membership)
    detail = f"removed from the organization; {keys} API key(s) revoked"
    _record(session, actor, org, user, "user.delete", before, None, detail)


def choose_scim_org(session: Session, *, actor: Principal, org: Organization) -> User:
    """Make ``org`` the caller's SCIM organization: where its SCIM requests go in multi-org
    mode when they name none (the seeds' "SCIM API Organization" user setting).

    Raises ``PermissionDenied`` unless the caller is a user who may manage ``org``'s users.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_USERS, org)
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        raise InvalidInput("only a user has a SCIM organization", field="org")
    if user.scim_org_id != org.id:
        before = {"scim_org": user.scim_org_id}
        user.scim_org_id = org.id
        _record(session, actor, org, user, "user.scim_org", before, {"scim_org": org.id})
    return user


# --- helpers ----------------------------------------------------------------------------------


def _parse_role(value: str | OrgRole) -> OrgRole:
    role = parse_org_role(str(value))
    if role is None:
        raise InvalidInput(f"unknown org role {value!r}: use admin, member or viewer", field="role")
    return role


def _parse_seat(value: str | SeatType, field: str) -> SeatType:
    try:
        return SeatType(str(value).strip().lower())
    except ValueError:
        message = f"unknown seat {value!r}: use full, viewer or none"
        raise InvalidInput(message, field=field) from None


def _check_full_name(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_FULL_NAME_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in value):
        message = f"full names are at most {MAX_FULL_NAME_LENGTH} printable characters"
        raise InvalidInput(message, field="full_name")
    return value or None


def _check_text(value: str | None, field: str, limit: int) -> str | None:
    """A trimmed printable text of at most ``limit`` characters; empty means ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    value = value.strip()
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{field} is at most {limit} printable characters", field=field)
    return value or None


def _check_user_name(value: str) -> str:
    checked = _check_text(value, "user_name", MAX_USER_NAME_LENGTH)
    if checked is None:
        raise InvalidInput("userName may not be empty", field="user_name")
    return checked


def _fields(membership: OrgMembership) -> dict[str, Any]:
    return {f: getattr(membership, f) for f in ("role", "models_seat", "weave_seat", "active")}


def _total(session: Session, org: Organization, query: Any, *, filtered: bool) -> int:
    """How many of ``org``'s members ``query`` (``_members`` of the org) finds. Unfiltered, the
    memberships' index alone counts them: every membership has its user (a foreign key,
    deleted with it), and an identity provider's import counts the whole directory again on
    every page it reads."""
    if filtered:
        counted = select(func.count()).select_from(query.subquery())
    else:
        counted = select(func.count()).select_from(OrgMembership)
        counted = counted.where(OrgMembership.org_id == org.id)
    return session.scalar(counted) or 0


def _page(
    session: Session,
    org: Organization,
    query: Any,
    order: Sequence[ColumnElement[Any]],
    offset: int,
    limit: int,
    by_index: bool,
) -> list[Any]:
    """The rows of one page of ``query`` (``_members`` of ``org``), by ``order``. With
    ``by_index`` (no filter; ``order`` columns of org memberships that an index of them holds
    in that order: ``(org, user)``, ``(org, created, user)``) the page's users are chosen from
    that index alone, then only they are read, by id. Before, an offset of 50,000 joined the
    50,000 rows it skipped, and the REST list's order (across the join) sorted the whole
    directory for each page.
    Two statements, because SQLite, planning without statistics, ran the single one (``IN``
    the page's subquery) by walking the whole index and testing each member against the page.
    On PostgreSQL (read committed) a user who leaves between the two is missing from the page,
    as if it had left just before."""
    if not by_index:
        return list(session.execute(query.order_by(*order).offset(offset).limit(limit)))
    chosen = (
        select(OrgMembership.user_id)
        .where(OrgMembership.org_id == org.id)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    )
    ids = list(session.scalars(chosen))
    if not ids:
        return []
    position = {user_id: i for i, user_id in enumerate(ids)}
    rows = session.execute(query.where(OrgMembership.user_id.in_(ids)))
    return sorted(rows, key=lambda row: position[row[1].user_id])


def _members(*conditions: ColumnElement[bool]):  # type: ignore[no-untyped-def]
    """Users joined with their org memberships, filtered."""
    return (
        select(User, OrgMembership)
        .join(OrgMembership, OrgMembership.user_id == User.id)
        .where(*conditions)
    )


def _find_member(session: Session, org: Organization, ref: str) -> OrgUser | None:
    """A member of ``org`` by id, then username, then email (so one ref never means two)."""
    ref = ref.strip()
    # PostgreSQL refuses NUL in text, and no id, username or email is that long.
    if not ref or len(ref) > MAX_REF_LENGTH or "\x00" in ref:
        return None
    key = ref.lower()
    for condition in (User.id == ref, User.username_key == key, User.email_key == key):
        row = session.execute(_members(OrgMembership.org_id == org.id, condition)).first()
        if row is not None:
            return OrgUser(*row)
    return None


def _require_member(session: Session, org: Organization, ref: str) -> OrgUser:
    member = _find_member(session, org, ref)
    if member is None:
        raise NotFound(f"no user {ref!r} in this organization", field="user")
    return member


def _record(
    session: Session,
    actor: Principal,
    org: Organization,
    user: User,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    detail: str | None = None,
) -> None:
    """Audit a change to ``user`` in ``org``, then flush (the change and its record together)."""
    record(
        session,
        actor=actor,
        action=action,
        object_type="user",
        object_id=user.id,
        object_name=user.email,
        org_id=org.id,
        before=before,
        after=after,
        detail=detail,
    )
    session.flush()
