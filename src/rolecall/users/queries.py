"""User lookups used by several domains."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from rolecall.orgs.models import OrgMembership
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
