"""The permission catalogue.

Naming rule: ``<object>:<operation>``, lower case, the object a W&B noun (project, run, artifact,
report, trace, launchagent, team, org). Members are alphabetised within their object group. No
permission string literal appears anywhere else in the code; CI greps for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    # artifact
    ARTIFACT_CREATE = "artifact:create"
    ARTIFACT_DELETE = "artifact:delete"
    ARTIFACT_READ = "artifact:read"
    ARTIFACT_UPDATE = "artifact:update"
    # launchagent
    LAUNCHAGENT_CREATE = "launchagent:create"
    LAUNCHAGENT_READ = "launchagent:read"
    # org
    ORG_MANAGE_AUTH = "org:manage_auth"
    ORG_MANAGE_ROLES = "org:manage_roles"
    ORG_MANAGE_TEAMS = "org:manage_teams"
    ORG_MANAGE_USERS = "org:manage_users"
    ORG_READ = "org:read"
    ORG_READ_AUDIT = "org:read_audit"
    ORG_UPDATE = "org:update"
    # project
    PROJECT_CREATE = "project:create"
    PROJECT_DELETE = "project:delete"
    PROJECT_JOIN_RESTRICTED = "project:join_restricted"
    PROJECT_MANAGE_ACCESS = "project:manage_access"
    PROJECT_READ = "project:read"
    PROJECT_UPDATE = "project:update"
    # report
    REPORT_CREATE = "report:create"
    REPORT_DELETE = "report:delete"
    REPORT_READ = "report:read"
    REPORT_UPDATE = "report:update"
    # run
    RUN_CREATE = "run:create"
    RUN_DELETE = "run:delete"
    RUN_MOVE = "run:move"
    RUN_READ = "run:read"
    RUN_STOP = "run:stop"
    RUN_UPDATE = "run:update"
    # team
    TEAM_MANAGE_MEMBERS = "team:manage_members"
    TEAM_MANAGE_SERVICE_ACCOUNTS = "team:manage_service_accounts"
    TEAM_READ = "team:read"
    TEAM_UPDATE = "team:update"
    # trace
    TRACE_CREATE = "trace:create"
    TRACE_READ = "trace:read"

    @property
    def object(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def operation(self) -> str:
        return self.value.split(":", 1)[1]

    @property
    def is_read(self) -> bool:
        return self.operation == "read"


class Product(StrEnum):
    MODELS = "models"
    WEAVE = "weave"


#: Objects whose permissions a Models seat governs; ``trace`` belongs to Weave.
MODELS_OBJECTS = frozenset({"run", "artifact", "report", "project", "launchagent"})
WEAVE_OBJECTS = frozenset({"trace"})
MODELS_PERMISSIONS = frozenset(p for p in Permission if p.object in MODELS_OBJECTS)
WEAVE_PERMISSIONS = frozenset(p for p in Permission if p.object in WEAVE_OBJECTS)

#: Permissions decided against an org, a team, or a project.
ORG_PERMISSIONS = frozenset(p for p in Permission if p.object == "org")
TEAM_PERMISSIONS = frozenset(p for p in Permission if p.object == "team") | {
    Permission.PROJECT_CREATE,
    Permission.LAUNCHAGENT_CREATE,
}
PROJECT_PERMISSIONS = frozenset(Permission) - ORG_PERMISSIONS - TEAM_PERMISSIONS


#: Each permission's bit in a permission mask, the policy's fast set representation (set algebra on
#: small ints costs a fraction of the same on frozensets of enum members).
PERMISSION_BITS: dict[Permission, int] = {p: 1 << i for i, p in enumerate(Permission)}
ALL_PERMISSIONS_MASK = (1 << len(PERMISSION_BITS)) - 1


def mask_of(permissions: Iterable[Permission]) -> int:
    """The mask with the bit of every permission in ``permissions``.

    Raises ``KeyError`` for a value outside the catalogue.
    """
    mask = 0
    for permission in permissions:
        mask |= PERMISSION_BITS[permission]
    return mask


def permissions_of(mask: int) -> frozenset[Permission]:
    """The permissions whose bits are set in ``mask``."""
    return frozenset(p for p, bit in PERMISSION_BITS.items() if mask & bit)


def parse_permission(value: str) -> Permission | None:
    try:
        return Permission(value.strip().lower())
    except ValueError:
        return None
