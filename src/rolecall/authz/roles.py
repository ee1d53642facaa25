"""Roles as data: the predefined sets (each built on the one below) and custom-role resolution."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from rolecall.authz.permissions import Permission as P


class OrgRole(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class TeamRole(StrEnum):
    """Predefined team roles; a custom role is referenced by id instead."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
    SERVICE = "service"


class SeatType(StrEnum):
    FULL = "full"
    VIEWER = "viewer"
    NONE = "none"


class Visibility(StrEnum):
    OPEN = "open"
    PUBLIC = "public"
    TEAM = "team"
    RESTRICTED = "restricted"


#: Predefined roles a custom role may inherit from.
INHERITABLE = (TeamRole.MEMBER, TeamRole.VIEWER)

VIEWER: frozenset[P] = frozenset(
    {
        P.PROJECT_READ,
        P.RUN_READ,
        P.ARTIFACT_READ,
        P.REPORT_READ,
        P.LAUNCHAGENT_READ,
        P.TRACE_READ,
        P.TEAM_READ,
    }
)
MEMBER: frozenset[P] = VIEWER | {
    P.PROJECT_CREATE,
    P.RUN_CREATE,
    P.RUN_UPDATE,
    P.RUN_STOP,
    P.ARTIFACT_CREATE,
    P.ARTIFACT_UPDATE,
    P.REPORT_CREATE,
    P.REPORT_UPDATE,
    P.TRACE_CREATE,
}
ADMIN: frozenset[P] = MEMBER | {
    P.PROJECT_UPDATE,
    P.PROJECT_DELETE,
    P.PROJECT_MANAGE_ACCESS,
    P.RUN_DELETE,
    P.RUN_MOVE,
    P.ARTIFACT_DELETE,
    P.REPORT_DELETE,
    P.LAUNCHAGENT_CREATE,
    P.TEAM_UPDATE,
    P.TEAM_MANAGE_MEMBERS,
    P.TEAM_MANAGE_SERVICE_ACCOUNTS,
    P.PROJECT_JOIN_RESTRICTED,
}
#: A service account's team membership reads and writes like a member (ours).
SERVICE: frozenset[P] = MEMBER

ORG_ADMIN: frozenset[P] = frozenset(
    {
        P.ORG_READ,
        P.ORG_UPDATE,
        P.ORG_MANAGE_USERS,
        P.ORG_MANAGE_TEAMS,
        P.ORG_MANAGE_ROLES,
        P.ORG_MANAGE_AUTH,
        P.ORG_READ_AUDIT,
    }
)
#: Every active member of an org (and its service accounts) may read the org itself (ours).
ORG_MEMBER: frozenset[P] = frozenset({P.ORG_READ})

PREDEFINED: dict[TeamRole, frozenset[P]] = {
    TeamRole.ADMIN: ADMIN,
    TeamRole.MEMBER: MEMBER,
    TeamRole.VIEWER: VIEWER,
    TeamRole.SERVICE: SERVICE,
}

#: Reads only: what an org viewer, a viewer seat or anonymous access is capped to.
READS: frozenset[P] = frozenset(p for p in P if p.is_read)
WRITES: frozenset[P] = frozenset(P) - READS

# Grants that are not team roles (ACCESS.md, "Deciding can(...)").

#: An open project: any authenticated principal views and submits runs and reports.
OPEN_AUTHENTICATED: frozenset[P] = VIEWER | {P.RUN_CREATE, P.REPORT_CREATE}
#: An org admin on every project of its org: metadata and management, no run data.
ORG_ADMIN_PROJECT_EXTRAS: frozenset[P] = frozenset(
    {P.PROJECT_READ, P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS}
)
#: An org admin on every team of its org. ACCESS.md names manage_members and update; managing a
#: team's service accounts follows from "team-scoped service accounts are created by a team admin
#: (or org admin)", and managing a team needs reading it (ours).
ORG_ADMIN_TEAM_EXTRAS: frozenset[P] = frozenset(
    {P.TEAM_READ, P.TEAM_MANAGE_MEMBERS, P.TEAM_UPDATE, P.TEAM_MANAGE_SERVICE_ACCOUNTS}
)
#: A project's owner.
OWNER_EXTRAS: frozenset[P] = frozenset({P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS})
#: A team admin on a restricted project it has not joined: it exists, and it may join (ours).
RESTRICTED_TEAM_ADMIN: frozenset[P] = frozenset({P.PROJECT_READ, P.PROJECT_JOIN_RESTRICTED})


def effective_permissions(inherited_from: TeamRole, extra: Iterable[P]) -> frozenset[P]:
    """A custom role's permissions: its inherited predefined set plus its extras."""
    return PREDEFINED[inherited_from] | frozenset(extra)


def parse_predefined_team_role(value: str) -> TeamRole | None:
    """Predefined role names are case-insensitive (``Admin`` == ``admin``)."""
    try:
        return TeamRole(value.strip().lower())
    except ValueError:
        return None


def parse_org_role(value: str) -> OrgRole | None:
    try:
        return OrgRole(value.strip().lower())
    except ValueError:
        return None
