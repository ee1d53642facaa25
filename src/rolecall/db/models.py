"""Imports every ORM module so the metadata is complete (Alembic and tests use this)."""

from rolecall.api_keys.models import ApiKey
from rolecall.audit.models import AuditEvent
from rolecall.db.base import Base
from rolecall.federation.models import JwtIssuer
from rolecall.identity.models import AccessToken, BrowserSession
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.projects.models import Project, ProjectMembership
from rolecall.roles.models import CustomRole
from rolecall.runs.models import Run
from rolecall.service_accounts.models import ServiceAccount
from rolecall.sso.models import SsoLoginState
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User

__all__ = [
    "AccessToken",
    "ApiKey",
    "AuditEvent",
    "Base",
    "BrowserSession",
    "CustomRole",
    "JwtIssuer",
    "OrgMembership",
    "Organization",
    "Project",
    "ProjectMembership",
    "Run",
    "ServiceAccount",
    "SsoLoginState",
    "Team",
    "TeamMembership",
    "User",
]
