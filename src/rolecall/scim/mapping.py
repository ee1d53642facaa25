"""SCIM resources <-> the domain: what each attribute is stored as, and the JSON shapes.

Users are org users (``User`` + ``OrgMembership``), Groups are teams, Roles are custom roles
(the seeds' ``/Roles``). The attribute tables here feed the filter translator (``filters``),
and the resource builders produce the seeds' shapes (``organizationRole``, ``teamRoles``,
``permissions[].isInherited``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select

from rolecall.authz.permissions import Permission
from rolecall.authz.roles import PREDEFINED, TeamRole
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.roles.models import CustomRole
from rolecall.scim import versions
from rolecall.scim.errors import INVALID_FILTER, bad_request
from rolecall.scim.filters import BOOLEAN, DATETIME, Attr
from rolecall.teams.models import Team, TeamMembership
from rolecall.teams.service import TEAM, UserMember, display_name_matches, display_name_of
from rolecall.users.models import User
from rolecall.users.service import OrgUser, scim_user_name, user_name_matches

USER_URN = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_URN = "urn:ietf:params:scim:schemas:core:2.0:Group"
ROLE_URN = "urn:ietf:params:scim:schemas:core:2.0:Role"
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST_URN = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_URN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#: The only email type rolecall stores (one address per user).
EMAIL_TYPE = "work"

_CREATED = Attr(OrgMembership.created_at, kind=DATETIME)
_MODIFIED = Attr(func.coalesce(OrgMembership.updated_at, OrgMembership.created_at), kind=DATETIME)

USER_ATTRS: Mapping[str, Attr] = {
    "id": Attr(User.id, case_exact=True),
    "username": Attr(
        func.coalesce(User.user_name_key, User.username_key),
        lowered=True,
        equals=user_name_matches,
    ),
    "externalid": Attr(OrgMembership.external_id, case_exact=True),
    "displayname": Attr(User.full_name),
    "name": Attr(
        sub={
            "givenname": Attr(User.given_name),
            "familyname": Attr(User.family_name),
        }
    ),
    "emails": Attr(
        sub={
            "value": Attr(User.email_key, lowered=True),
            "type": Attr(constant=EMAIL_TYPE),
            "primary": Attr(constant=True, kind=BOOLEAN),
        },
        default_sub="value",
    ),
    "active": Attr(OrgMembership.active, kind=BOOLEAN),
    "organizationrole": Attr(OrgMembership.role, lowered=True),
    "meta": Attr(sub={"created": _CREATED, "lastmodified": _MODIFIED}),
}
"""Filterable User attributes (keys lower-cased: attribute names are case-insensitive), but
for ``groups`` and ``teamRoles``, which ``user_attrs`` adds for one organization."""


def user_attrs(org_id: str) -> Mapping[str, Attr]:
    """The filterable User attributes of a list of ``org_id``'s users: ``USER_ATTRS``, and the
    user's ``groups`` and ``teamRoles`` in that organization's teams (not personal entities)."""
    in_a_team = _in_a_team_of(org_id)
    groups = Attr(
        sub={
            "value": Attr(Team.id, case_exact=True),
            "display": Attr(
                func.coalesce(Team.display_name_key, Team.name_key),
                lowered=True,
                equals=display_name_matches,
            ),
            "type": Attr(constant="direct"),
        },
        wrap=in_a_team,
        default_sub="value",
    )
    team_roles = Attr(
        sub={
            "teamname": Attr(Team.name_key, lowered=True),
            # As the User schema declares it, not case-exact: a predefined role in any case,
            # like the PATCH that sets it.
            "rolename": Attr(func.coalesce(CustomRole.name, TeamMembership.role)),
        },
        wrap=in_a_team,
        default_sub="teamname",
    )
    return {**USER_ATTRS, "groups": groups, "teamroles": team_roles}


def _in_a_team_of(org_id: str) -> Callable[[Any], Any]:
    """Lifts a condition on a team membership of ``org_id`` (its team, its role) to the users
    who hold one: the matching members, which the list then looks up by the memberships'
    unique (organization, user) index, so that a team's size, never the directory's, is read."""

    def in_a_team(condition: Any) -> Any:
        members = (
            select(TeamMembership.user_id)
            .join(Team, Team.id == TeamMembership.team_id)
            .outerjoin(CustomRole, CustomRole.id == TeamMembership.custom_role_id)
            .where(Team.org_id == org_id, Team.kind == TEAM, condition)
            # Service accounts' memberships name no user (and a NULL in IN's list would make
            # a non-match NULL instead of false).
            .where(TeamMembership.user_id.is_not(None))
        )
        return OrgMembership.user_id.in_(members)

    return in_a_team


def _in_team(condition: Any) -> Any:
    return exists(
        select(TeamMembership.id).where(TeamMembership.team_id == Team.id, condition)
    ).correlate(Team)


GROUP_ATTRS: Mapping[str, Attr] = {
    "id": Attr(Team.id, case_exact=True),
    "displayname": Attr(
        func.coalesce(Team.display_name_key, Team.name_key),
        lowered=True,
        equals=display_name_matches,
    ),
    "externalid": Attr(Team.external_id, case_exact=True),
    "members": Attr(
        sub={"value": Attr(TeamMembership.user_id, case_exact=True)},
        wrap=_in_team,
        default_sub="value",
    ),
    "meta": Attr(
        sub={
            "created": Attr(Team.created_at, kind=DATETIME),
            "lastmodified": Attr(func.coalesce(Team.updated_at, Team.created_at), kind=DATETIME),
        }
    ),
}

ROLE_ATTRS: Mapping[str, Attr] = {
    "id": Attr(CustomRole.id, case_exact=True),
    # Custom role names are case-sensitive (ACCESS.md).
    "name": Attr(CustomRole.name, case_exact=True),
    "externalid": Attr(CustomRole.external_id, case_exact=True),
    "inheritedfrom": Attr(CustomRole.inherited_from, lowered=True),
    "meta": Attr(
        sub={
            "created": Attr(CustomRole.created_at, kind=DATETIME),
            "lastmodified": Attr(CustomRole.updated_at, kind=DATETIME),
        }
    ),
}


def timestamp(value: datetime | None) -> str | None:
    """RFC 7643 §2.3.5 dateTime, in UTC with a ``Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _meta(kind: str, location: str, created: datetime, modified: datetime | None) -> dict[str, Any]:
    return {
        "resourceType": kind,
        "created": timestamp(created),
        "lastModified": timestamp(max(created, modified) if modified else created),
        "location": location,
    }


def user_resource(member: OrgUser, teams: Sequence[tuple[Team, str]], base: str) -> dict[str, Any]:
    """A User as the seeds show it (with ``organizationRole`` and ``teamRoles``), RFC-shaped:
    ``emails`` is a list. ``password`` is never part of it."""
    user, membership = member
    resource: dict[str, Any] = {"schemas": [USER_URN], "id": user.id}
    if membership.external_id:
        resource["externalId"] = membership.external_id
    resource["userName"] = scim_user_name(user)
    # ``formatted`` is not stored, so it is not returned (accepted and ignored on input).
    name = {
        key: value
        for key, value in (("givenName", user.given_name), ("familyName", user.family_name))
        if value
    }
    if name:
        resource["name"] = name
    if user.full_name:
        resource["displayName"] = user.full_name
    resource["emails"] = [{"value": user.email, "type": EMAIL_TYPE, "primary": True}]
    resource["active"] = membership.active
    resource["groups"] = [
        {
            "value": team.id,
            "display": display_name_of(team),
            "$ref": f"{base}/Groups/{team.id}",
            "type": "direct",
        }
        for team, _ in teams
    ]
    resource["organizationRole"] = membership.role
    resource["teamRoles"] = [{"teamName": team.name, "roleName": role} for team, role in teams]
    modified = membership.updated_at
    resource["meta"] = _meta("User", f"{base}/Users/{user.id}", membership.created_at, modified)
    return versions.stamp(resource)


def group_resource(team: Team, members: Iterable[UserMember] | None, base: str) -> dict[str, Any]:
    """A Group: a team with its users as members (service accounts are no SCIM resources).
    ``members=None``: rendered without them, and so without a version (``scim.versions``)."""
    resource: dict[str, Any] = {
        "schemas": [GROUP_URN],
        "id": team.id,
        "displayName": display_name_of(team),
    }
    if team.external_id:
        resource["externalId"] = team.external_id
    resource["members"] = [
        {
            "value": member.id,
            "display": member.user_name,
            "$ref": f"{base}/Users/{member.id}",
            "type": "User",
        }
        for member in members or ()
    ]
    resource["meta"] = _meta("Group", f"{base}/Groups/{team.id}", team.created_at, team.updated_at)
    return resource if members is None else versions.stamp(resource)


def role_resource(role: CustomRole, org: Organization, base: str) -> dict[str, Any]:
    """A custom role exactly as the seeds' examples: inherited permissions first, each
    permission marked ``isInherited``."""
    inherited = sorted(p.value for p in PREDEFINED[TeamRole(role.inherited_from)])
    custom = sorted(set(role.permissions) - set(inherited))
    permissions = [{"name": name, "isInherited": True} for name in inherited]
    permissions += [{"name": name, "isInherited": False} for name in custom]
    resource: dict[str, Any] = {"schemas": [ROLE_URN], "id": role.id}
    if role.external_id:
        resource["externalId"] = role.external_id
    resource["name"] = role.name
    if role.description:  # an empty description is unassigned (RFC 7643 §2.5)
        resource["description"] = role.description
    return versions.stamp(
        resource
        | {
            "inheritedFrom": role.inherited_from,
            "organizationID": org.id,
            "permissions": permissions,
            "meta": _meta("Role", f"{base}/Roles/{role.id}", role.created_at, role.updated_at),
        }
    )


def known_permission(name: str) -> bool:
    return name in {p.value for p in Permission}


# --- attributes / excludedAttributes (RFC 7644 §3.9) ------------------------------------------

#: Returned whatever the request asks (RFC 7643 ``returned: always``).
ALWAYS = frozenset({"id", "schemas"})


def _split(param: str | None, core_urn: str) -> list[tuple[str, str | None]]:
    if not param:
        return []
    found = []
    for raw in param.split(","):
        path = raw.strip()
        if not path:
            continue
        if path.lower().startswith(core_urn.lower() + ":"):
            path = path[len(core_urn) + 1 :]
        if len(path) > 256 or not all(c.isalnum() or c in "._$:-" for c in path):
            raise bad_request(INVALID_FILTER, f"invalid attribute path {raw.strip()[:64]!r}")
        attr, _, sub = path.partition(".")
        found.append((attr.lower(), sub.lower() or None))
    return found


def shows(attribute: str, attributes: str | None, excluded: str | None, core_urn: str) -> bool:
    """Whether ``project`` with these parameters keeps the top-level ``attribute`` (lower
    case): lets a caller skip loading what the answer leaves out. ``invalidFilter`` for a
    malformed parameter, as ``project`` would raise, but before anything is written."""
    wanted = {attr for attr, _ in _split(attributes, core_urn)}
    if wanted:
        return attribute in wanted
    return (attribute, None) not in _split(excluded, core_urn)


def project(
    resource: dict[str, Any], attributes: str | None, excluded: str | None, core_urn: str
) -> dict[str, Any]:
    """Keep only ``attributes`` (plus ``id`` and ``schemas``), or drop ``excluded``."""
    wanted = _split(attributes, core_urn)
    if wanted:
        kept: dict[str, Any] = {}
        for key, value in resource.items():
            if key.lower() in ALWAYS:
                kept[key] = value
                continue
            subs = [sub for attr, sub in wanted if attr == key.lower()]
            if not subs:
                continue
            if None in subs or not isinstance(value, (dict, list)):
                kept[key] = value
            else:
                kept[key] = _only_subs(value, set(subs))
        return kept
    dropped = _split(excluded, core_urn)
    if not dropped:
        return resource
    result = dict(resource)
    for attr, sub in dropped:
        for key in list(result):
            if key.lower() != attr or key.lower() in ALWAYS:
                continue
            if sub is None:
                del result[key]
            else:
                result[key] = _without_sub(result[key], sub)
    return result


def _only_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        return [_only_subs(item, subs) for item in value]
    return {k: v for k, v in value.items() if k.lower() in subs}


def _without_sub(value: Any, sub: str) -> Any:
    if isinstance(value, list):
        return [_without_sub(item, sub) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() != sub}
    return value
