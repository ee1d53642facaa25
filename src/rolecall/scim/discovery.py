"""SCIM discovery (RFC 7644 §4, RFC 7643 §5-7): what this server really supports.

Only the attributes rolecall stores are described; ``organizationRole`` and ``teamRoles`` are
top-level User attributes, as the seeds show them. Patch, bulk, filter, sort and ETags are
supported; password changes are not.
"""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Filter,
    Patch,
    ServiceProviderConfig,
    Sort,
)

from rolecall.authz.permissions import ORG_PERMISSIONS, Permission
from rolecall.scim.bulk import MAX_BULK_OPERATIONS
from rolecall.scim.mapping import GROUP_URN, ROLE_URN, USER_URN
from rolecall.scim.messages import MAX_BODY, MAX_RESULTS

SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_URN = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"


def service_provider_config(base: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=True, max_operations=MAX_BULK_OPERATIONS, max_payload_size=MAX_BODY),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="httpbasic",
                name="HTTP Basic",
                description="Any username, an org admin's API key as the password",
                primary=True,
            ),
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer API key",
                description="An org admin's API key as a bearer token",
            ),
        ],
    ).model_dump(exclude_none=True)
    config["meta"] = {
        "resourceType": "ServiceProviderConfig",
        "location": f"{base}/ServiceProviderConfig",
    }
    return config


def _attr(
    name: str,
    kind: str = "string",
    *,
    multi: bool = False,
    required: bool = False,
    case_exact: bool = False,
    mutability: str = "readWrite",
    returned: str = "default",
    uniqueness: str = "none",
    sub: list[dict[str, Any]] | None = None,
    description: str = "",
    canonical: list[str] | None = None,
    refers_to: tuple[str, ...] = ("external",),
) -> dict[str, Any]:
    attr: dict[str, Any] = {
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": description or name,
        "required": required,
        "mutability": mutability,
        "returned": returned,
    }
    if kind in ("string", "reference"):
        attr["caseExact"] = case_exact
        attr["uniqueness"] = uniqueness
    if canonical:
        attr["canonicalValues"] = canonical
    if sub is not None:
        attr["subAttributes"] = sub
    if kind == "reference":
        attr["referenceTypes"] = list(refers_to)
    return attr


_EXTERNAL_ID = _attr("externalId", case_exact=True, description="The identity provider's id")


def user_attributes(
    team_names: list[str] | None = None, role_names: list[str] | None = None
) -> list[dict[str, Any]]:
    """The User attributes; an authenticated admin's request also gets its org's team and role
    names as ``canonicalValues`` of ``teamRoles`` (RFC 7643 §7: suggested values)."""
    return [
        _attr("userName", required=True, uniqueness="server", description="Unique login name"),
        _EXTERNAL_ID,
        _attr(
            "name",
            "complex",
            sub=[
                _attr("givenName"),
                _attr("familyName"),
            ],
        ),
        _attr("displayName", description="The user's full name"),
        _attr(
            "emails",
            "complex",
            multi=True,
            required=True,
            description="One address is stored: the work address (optional when userName is one)",
            sub=[
                _attr("value", required=True),
                _attr("type", mutability="readOnly", canonical=["work"]),
                _attr("primary", "boolean", mutability="readOnly"),
            ],
        ),
        _attr(
            "active",
            "boolean",
            required=True,
            description="false: deactivated (listed, holds no permission); true when not sent",
        ),
        _attr(
            "groups",
            "complex",
            multi=True,
            mutability="readOnly",
            description="The teams the user belongs to",
            sub=[
                _attr("value", mutability="readOnly"),
                _attr("display", mutability="readOnly"),
                # A user's groups are teams, never users (RFC 7643 §4.1.2 allows both).
                _attr("$ref", "reference", mutability="readOnly", refers_to=("Group",)),
                _attr("type", mutability="readOnly", canonical=["direct"]),
            ],
        ),
        _attr(
            "organizationRole",
            required=True,
            canonical=["admin", "member", "viewer"],
            description="The organization role (case-insensitive); member when not sent",
        ),
        _attr(
            "teamRoles",
            "complex",
            multi=True,
            description="The user's role in each of its teams",
            sub=[
                _attr("teamName", required=True, canonical=team_names),
                _attr(
                    "roleName",
                    required=True,
                    description="admin, member, viewer or a custom role",
                    canonical=["admin", "member", "viewer", *(role_names or [])],
                ),
            ],
        ),
    ]


GROUP_ATTRIBUTES = [
    _attr("displayName", required=True, uniqueness="server", description="The team's name"),
    _EXTERNAL_ID,
    _attr(
        "members",
        "complex",
        multi=True,
        description="The team's users (added with the member role)",
        sub=[
            _attr("value", mutability="immutable", case_exact=True),
            _attr("display", mutability="readOnly"),
            _attr("$ref", "reference", mutability="immutable", refers_to=("User",)),
            _attr("type", mutability="immutable", canonical=["User"]),
        ],
    ),
]

ROLE_ATTRIBUTES = [
    _attr("name", required=True, case_exact=True, uniqueness="server"),
    _attr("description"),
    _attr("inheritedFrom", required=True, canonical=["member", "viewer"]),
    _attr("organizationID", mutability="readOnly", case_exact=True),
    _EXTERNAL_ID,
    _attr(
        "permissions",
        "complex",
        multi=True,
        sub=[
            _attr(
                "name",
                required=True,
                case_exact=True,
                description="object:operation",
                canonical=sorted(p.value for p in Permission if p not in ORG_PERMISSIONS),
            ),
            _attr("isInherited", "boolean", mutability="readOnly"),
        ],
    ),
]

SCHEMAS: dict[str, tuple[str, str, list[dict[str, Any]]]] = {
    USER_URN: ("User", "An organization's user", []),
    GROUP_URN: ("Group", "A team", GROUP_ATTRIBUTES),
    ROLE_URN: ("Role", "A custom role (not part of RFC 7643)", ROLE_ATTRIBUTES),
}

RESOURCE_TYPES = [
    ("User", "/Users", USER_URN, "An organization's user"),
    ("Group", "/Groups", GROUP_URN, "A team"),
    ("Role", "/Roles", ROLE_URN, "A custom role"),
]


def schema(
    urn: str, base: str, team_names: list[str] | None = None, role_names: list[str] | None = None
) -> dict[str, Any] | None:
    if urn not in SCHEMAS:
        return None
    name, description, attributes = SCHEMAS[urn]
    if urn == USER_URN:
        attributes = user_attributes(team_names, role_names)
    return {
        "schemas": [SCHEMA_URN],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{urn}"},
    }


def schemas(
    base: str, team_names: list[str] | None = None, role_names: list[str] | None = None
) -> list[dict[str, Any]]:
    return [found for urn in SCHEMAS if (found := schema(urn, base, team_names, role_names))]


def resource_type(name: str, base: str) -> dict[str, Any] | None:
    for type_name, endpoint, urn, description in RESOURCE_TYPES:
        if type_name == name:
            return {
                "schemas": [RESOURCE_TYPE_URN],
                "id": type_name,
                "name": type_name,
                "endpoint": endpoint,
                "description": description,
                "schema": urn,
                "schemaExtensions": [],
                "meta": {
                    "resourceType": "ResourceType",
                    "location": f"{base}/ResourceTypes/{name}",
                },
            }
    return None


def resource_types(base: str) -> list[dict[str, Any]]:
    return [found for name, *_ in RESOURCE_TYPES if (found := resource_type(name, base))]
