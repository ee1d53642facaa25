"""REST shapes of custom roles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rolecall.authz.permissions import Permission
from rolecall.authz.roles import PREDEFINED, TeamRole
from rolecall.roles.models import CustomRole

#: Printable text: control characters (NUL above all, which PostgreSQL refuses) are a 422.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

RoleName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE)]
Description = Annotated[str, StringConstraints(max_length=1024, pattern=_PRINTABLE)]
InheritedRole = Annotated[str, StringConstraints(min_length=1, max_length=16)]
PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
PermissionList = Annotated[list[PermissionName], Field(max_length=len(Permission))]


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: Description = ""
    #: ``member`` or ``viewer`` (case-insensitive).
    inherited_from: InheritedRole
    #: Catalogue permissions added on top of the inherited role.
    permissions: PermissionList = []


class RoleReplace(BaseModel):
    """PUT: name, description and inherited role; custom permissions are kept."""

    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: Description = ""
    inherited_from: InheritedRole


class RolePermissionsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: PermissionList = []
    remove: PermissionList = []


class RolePermissionRead(BaseModel):
    name: str
    #: Granted by the inherited predefined role (else added to this custom role).
    is_inherited: bool


class RoleRead(BaseModel):
    id: str
    name: str
    description: str
    inherited_from: str
    #: The effective set, sorted by name.
    permissions: list[RolePermissionRead]
    #: The stored custom (non-inherited) permissions.
    custom_permissions: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, role: CustomRole) -> RoleRead:
        inherited = PREDEFINED[TeamRole(role.inherited_from)]
        effective = {p.value for p in inherited} | set(role.permissions)
        return cls(
            id=role.id,
            name=role.name,
            description=role.description,
            inherited_from=role.inherited_from,
            permissions=[
                RolePermissionRead(name=name, is_inherited=Permission(name) in inherited)
                for name in sorted(effective)
            ],
            custom_permissions=list(role.permissions),
            created_at=role.created_at,
            updated_at=role.updated_at,
        )


class RoleList(BaseModel):
    items: list[RoleRead]
    total: int
    offset: int
    limit: int
