"""Arrange data directly as rows (flush, never commit), the way warehouse's factories do.

These build state for a test; the behaviour under test always goes through the services or the
HTTP surface.
"""

from __future__ import annotations

import base64
import functools
import itertools
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from rolecall.api_keys.issue import issue_key
from rolecall.authz.permissions import Permission
from rolecall.identity.passwords import hash_password
from rolecall.orgs.bootstrap import initialize
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.projects.models import Project, ProjectMembership
from rolecall.roles.models import CustomRole
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User

_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


@dataclass
class World:
    org: Organization
    admin: User
    admin_key: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def admin_headers(self) -> dict[str, str]:
        return headers(self.admin_key)


def headers(secret: str) -> dict[str, str]:
    token = base64.b64encode(f"api:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


#: The bootstrap admin's local password.
ADMIN_PASSWORD = "correct horse battery"


@functools.cache
def admin_password_hash() -> str:
    """One real argon2id hash of ``ADMIN_PASSWORD`` per test process: hashing costs about a
    tenth of a second here, and almost every test bootstraps an organization."""
    return hash_password(ADMIN_PASSWORD)


def bootstrap(db: Session, org_name: str | None = None, email: str | None = None) -> World:
    """``rolecall init``'s organization and admin (``ADMIN_PASSWORD``, hashed once: the tests of
    ``initialize`` itself hash the password they give it)."""
    n = _n()
    result = initialize(
        db, org_name=org_name or f"acme{n}", admin_email=email or f"admin{n}@example.com"
    )
    result.admin.password_hash = admin_password_hash()
    db.flush()
    return World(org=result.org, admin=result.admin, admin_key=result.api_key)


def user(
    db: Session,
    org: Organization,
    *,
    username: str | None = None,
    email: str | None = None,
    role: str = "member",
    models_seat: str = "full",
    weave_seat: str = "full",
    active: bool = True,
) -> User:
    n = _n()
    username = username or f"user{n}"
    email = email or f"{username}@example.com"
    row = User(
        email=email, email_key=email.lower(), username=username, username_key=username.lower()
    )
    db.add(row)
    db.flush()
    db.add(
        Team(
            org_id=org.id,
            name=username,
            name_key=username.lower(),
            kind="personal",
            personal_owner_id=row.id,
        )
    )
    db.add(
        OrgMembership(
            org_id=org.id,
            user_id=row.id,
            role=role,
            models_seat=models_seat,
            weave_seat=weave_seat,
            active=active,
        )
    )
    db.flush()
    return row


def team(
    db: Session, org: Organization, *, name: str | None = None, private_only: bool = False
) -> Team:
    name = name or f"team{_n()}"
    row = Team(
        org_id=org.id, name=name, name_key=name.lower(), kind="team", private_only=private_only
    )
    db.add(row)
    db.flush()
    return row


def member(
    db: Session,
    team_row: Team,
    principal: User | ServiceAccount,
    role: str = "member",
    custom_role: CustomRole | None = None,
) -> TeamMembership:
    row = TeamMembership(
        team_id=team_row.id,
        user_id=principal.id if isinstance(principal, User) else None,
        service_account_id=principal.id if isinstance(principal, ServiceAccount) else None,
        role="custom" if custom_role else role,
        custom_role_id=custom_role.id if custom_role else None,
    )
    db.add(row)
    db.flush()
    return row


def project(
    db: Session,
    team_row: Team,
    *,
    name: str | None = None,
    visibility: str = "team",
    owner: User | None = None,
) -> Project:
    name = name or f"project{_n()}"
    row = Project(
        team_id=team_row.id,
        name=name,
        name_key=name.lower(),
        visibility=visibility,
        owner_user_id=owner.id if owner else None,
    )
    db.add(row)
    db.flush()
    return row


def project_member(
    db: Session,
    project_row: Project,
    principal: User | ServiceAccount,
    *,
    invited: bool = True,
    role: str | None = None,
    custom_role: CustomRole | None = None,
) -> ProjectMembership:
    row = ProjectMembership(
        project_id=project_row.id,
        user_id=principal.id if isinstance(principal, User) else None,
        service_account_id=principal.id if isinstance(principal, ServiceAccount) else None,
        invited=invited,
        role="custom" if custom_role else role,
        custom_role_id=custom_role.id if custom_role else None,
    )
    db.add(row)
    db.flush()
    return row


def custom_role(
    db: Session,
    org: Organization,
    *,
    name: str | None = None,
    inherited_from: str = "member",
    permissions: tuple[Permission, ...] = (),
) -> CustomRole:
    row = CustomRole(
        org_id=org.id,
        name=name or f"Role {_n()}",
        description="",
        inherited_from=inherited_from,
        permissions=sorted(p.value for p in permissions),
    )
    db.add(row)
    db.flush()
    return row


def service_account(
    db: Session,
    org: Organization,
    team_row: Team,
    *,
    scope: str = "team",
    name: str | None = None,
) -> ServiceAccount:
    name = name or f"sa{_n()}"
    row = ServiceAccount(
        org_id=org.id, name=name, name_key=name.lower(), scope=scope, team_id=team_row.id
    )
    db.add(row)
    db.flush()
    if scope == "team":
        member(db, team_row, row, role="service")
    return row


def api_key(
    db: Session,
    owner: User | ServiceAccount,
    *,
    scopes: tuple[Permission, ...] | None = None,
    expires_at: datetime | None = None,
) -> str:
    _, secret = issue_key(
        db,
        user_id=owner.id if isinstance(owner, User) else None,
        service_account_id=owner.id if isinstance(owner, ServiceAccount) else None,
        scopes=scopes,
        expires_at=expires_at,
    )
    return secret
