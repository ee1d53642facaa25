"""User lookups used by several domains."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import ColumnElement, bindparam, func, or_, select
from sqlalchemy.orm import Session

from rolecall.orgs.models import OrgMembership
from rolecall.teams.models import Team
from rolecall.users.models import User


def find_user(session: Session, ref: str) -> User | None:
    """A user by id, username or email (username and email case-insensitively)."""
    key = ref.strip().lower()
    if not key:
        return None
    return session.scalar(
        select(User).where(or_(User.id == ref, User.username_key == key, User.email_key == key))
    )


def org_membership(session: Session, org_id: str, user_id: str) -> OrgMembership | None:
    return session.scalar(
        select(OrgMembership).where(
            OrgMembership.org_id == org_id, OrgMembership.user_id == user_id
        )
    )


def member_with_email(session: Session, org_id: str, email: str) -> tuple[User, bool] | None:
    """The user of the organization whose email is ``email`` (case-insensitively), and
    whether its membership is active; ``None`` when no member has it."""
    row = session.execute(
        select(User, OrgMembership.active)
        .join(OrgMembership, OrgMembership.user_id == User.id)
        .where(OrgMembership.org_id == org_id, User.email_key == email.lower())
    ).first()
    return None if row is None else (row[0], row[1])


def user_name_key() -> ColumnElement[str]:
    """The lower-cased SCIM ``userName``: the expression ``uq_users_scim_user_name`` indexes."""
    return func.coalesce(User.user_name_key, User.username_key)


class NamesTaken(NamedTuple):
    """What a name is already used as (lower-cased, compared case-insensitively)."""

    #: Some user's login name (SCIM ``userName``, or its username when it has none).
    user_name: bool
    #: Some user's username or login name, or some team's name: one namespace of entities (a
    #: username equal to another user's login name would make a lookup by name ambiguous).
    entity: bool


_KEY = bindparam("key")
#: One round trip, three index lookups (``uq_users_scim_user_name``, ``username_key``,
#: ``name_key``); built once, since building a statement costs more than running it.
NAMES_TAKEN = select(
    select(User.id).where(user_name_key() == _KEY).exists(),
    select(User.id).where(User.username_key == _KEY).exists(),
    select(Team.id).where(Team.name_key == _KEY).exists(),
)


def names_taken(session: Session, key: str) -> NamesTaken:
    """Whether ``key`` (lower-cased) is taken as a login name, and as an entity name."""
    as_user_name, as_username, as_team = (
        session.connection().execute(NAMES_TAKEN, {"key": key}).one()
    )
    return NamesTaken(bool(as_user_name), bool(as_user_name or as_username or as_team))


def available_name(session: Session, wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``wanted-3``... whichever is free as an entity name (see
    ``NamesTaken.entity``), for a new username or team name: one round trip per name tried, and
    no need to check it again. ``wanted`` is a valid name of at most 120 characters, so that a
    suffix keeps it valid."""
    candidate, n = wanted, 1
    while names_taken(session, candidate.lower()).entity:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate
