"""Creating the first organization and its admin (``rolecall init``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rolecall.api_keys.issue import issue_key
from rolecall.audit.service import record
from rolecall.authz.roles import OrgRole, SeatType
from rolecall.errors import Conflict
from rolecall.identity.passwords import (
    hash_password,
    restore_password_ends,
    temporary_password,
)
from rolecall.identity.principal import Principal, operator
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.teams.models import Team
from rolecall.users.models import User
from rolecall.users.naming import check_org_name, normalise_email, username_from_email
from rolecall.users.queries import available_name


@dataclass(frozen=True)
class Restored:
    """A LOCAL_RESTORE temporary password (shown once, in the server log)."""

    org: str
    admin: str
    password: str
    #: When it stops signing in (it also stops as soon as the server runs without LOCAL_RESTORE).
    expires_at: datetime


@dataclass(frozen=True)
class Bootstrap:
    org: Organization
    admin: User
    api_key: str


def initialize(
    session: Session, *, org_name: str, admin_email: str, admin_password: str | None = None
) -> Bootstrap:
    """Create an organization and its first admin (who becomes its admin per ACCESS.md).

    Raises ``Conflict`` if an organization of that name exists.
    """
    check_org_name(org_name, field="org")
    if session.scalar(select(Organization).where(Organization.name_key == org_name.lower())):
        raise Conflict(f"organization {org_name!r} already exists", field="org")
    email = normalise_email(admin_email)
    actor = operator("cli")
    org = Organization(name=org_name, name_key=org_name.lower(), settings={})
    session.add(org)
    session.flush()
    admin = session.scalar(select(User).where(User.email_key == email.lower()))
    if admin is None:
        username = available_name(session, username_from_email(email))
        admin = User(
            email=email, email_key=email.lower(), username=username, username_key=username.lower()
        )
        session.add(admin)
        session.flush()
        session.add(
            Team(
                org_id=org.id,
                name=username,
                name_key=username.lower(),
                kind="personal",
                personal_owner_id=admin.id,
            )
        )
    if admin_password:
        admin.password_hash = hash_password(admin_password)
    session.add(
        OrgMembership(
            org_id=org.id,
            user_id=admin.id,
            role=OrgRole.ADMIN.value,
            models_seat=SeatType.FULL.value,
            weave_seat=SeatType.FULL.value,
            active=True,
        )
    )
    _, secret = issue_key(session, user_id=admin.id, description="created by rolecall init")
    record(
        session,
        actor=actor,
        action="org.initialize",
        object_type="organization",
        object_id=org.id,
        object_name=org.name,
        org_id=org.id,
        after={"org": org.name, "admin": admin.email},
    )
    session.flush()
    return Bootstrap(org=org, admin=admin, api_key=secret)


def restore_admin_password(
    session: Session, *, actor: Principal, now: datetime | None = None
) -> Restored | None:
    """``LOCAL_RESTORE``: give the first organization's first active admin a new temporary
    local password (argon2id); returns it so start-up can log it once.

    The temporary password is kept apart from the admin's own (``User.restore_password_hash``),
    which keeps working; it signs in only while the server runs with ``LOCAL_RESTORE`` and for
    ``RESTORE_PASSWORD_LIFETIME`` (``identity.sessions.sign_in_with_password``). Each start-up
    makes a new one; any earlier one, of this admin or another user, is dropped.

    The actor is the server host's operator (setting LOCAL_RESTORE needs access to the host), so
    nothing is authorized here. The audit event never holds the password. ``None`` when there is
    no organization or no active admin yet.
    """
    now = now or datetime.now(UTC)
    org = session.scalar(select(Organization).order_by(Organization.created_at).limit(1))
    if org is None:
        return None
    admin = session.scalar(
        select(User)
        .join(OrgMembership, OrgMembership.user_id == User.id)
        .where(
            OrgMembership.org_id == org.id,
            OrgMembership.role == OrgRole.ADMIN.value,
            OrgMembership.active.is_(True),
        )
        .order_by(OrgMembership.created_at, OrgMembership.id)
        .limit(1)
    )
    if admin is None:
        return None
    session.execute(
        update(User)
        .where(User.restore_password_hash.is_not(None), User.id != admin.id)
        .values(restore_password_hash=None, restore_password_set_at=None)
        .execution_options(synchronize_session="fetch")
    )
    password = temporary_password()
    admin.restore_password_hash = hash_password(password)
    admin.restore_password_set_at = now
    expires_at = restore_password_ends(now)
    record(
        session,
        actor=actor,
        action="user.password.restore",
        object_type="user",
        object_id=admin.id,
        object_name=admin.username,
        org_id=org.id,
        after={"expires_at": expires_at.isoformat()},
        detail="LOCAL_RESTORE: temporary password set at start-up (the user's own is kept)",
    )
    session.flush()
    return Restored(org=org.name, admin=admin.email, password=password, expires_at=expires_at)
