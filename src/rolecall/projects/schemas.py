"""REST shapes of projects and project members (docs/rest-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rolecall.authz.roles import Visibility
from rolecall.projects.service import ProjectMemberView, ProjectView

EntityName = Annotated[str, Field(min_length=1, max_length=128)]
ProjectName = Annotated[str, Field(min_length=1, max_length=128)]
#: ``user:<username or email>``, ``service_account:<name>`` or a bare username or email.
PrincipalRef = Annotated[str, Field(min_length=1, max_length=400)]
#: ``admin``/``member``/``viewer`` (any case) or a custom role's exact name.
RoleName = Annotated[str, Field(min_length=1, max_length=128)]
#: Free text, lines and tabs included, but no NUL: PostgreSQL cannot store one (SQLite did, so
#: the backends disagreed).
Description = Annotated[str, Field(max_length=1024, pattern=r"^[^\x00]*$")]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: EntityName
    name: ProjectName
    visibility: Visibility = Visibility.TEAM
    description: Description | None = None
    #: Principals invited at creation (restricted projects only).
    members: list[PrincipalRef] = Field(default_factory=list, max_length=100)


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    visibility: Visibility | None = None
    owner: PrincipalRef | None = None
    description: Description | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_null_visibility_or_owner(cls, data: Any) -> Any:
        # Leaving them out means "unchanged"; null would be a request to clear, which a project
        # cannot be without (every project has a scope; an owner is replaced, never removed).
        if isinstance(data, dict):
            for key in ("visibility", "owner"):
                if key in data and data[key] is None:
                    raise ValueError(f"{key} may be left out but not set to null")
        return data


class ProjectRead(BaseModel):
    id: str
    entity: str
    name: str
    path: str
    visibility: Visibility
    owner: str | None
    owner_needed: bool
    description: str | None
    created_at: datetime

    @classmethod
    def from_view(cls, view: ProjectView) -> ProjectRead:
        project = view.project
        return cls(
            id=project.id,
            entity=view.entity,
            name=project.name,
            path=view.path,
            visibility=Visibility(project.visibility),
            owner=view.owner,
            owner_needed=project.owner_needed,
            description=project.description,
            created_at=project.created_at,
        )


class ProjectList(BaseModel):
    items: list[ProjectRead]
    total: int
    offset: int
    limit: int


class ProjectMemberAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: PrincipalRef
    role: RoleName | None = None


class ProjectMemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``null`` returns the member to tracking its team role.
    role: RoleName | None


class ProjectMemberRead(BaseModel):
    kind: str
    id: str
    name: str
    invited: bool
    team_role: str | None
    project_role: str | None
    is_override: bool

    @classmethod
    def from_view(cls, view: ProjectMemberView) -> ProjectMemberRead:
        return cls(
            kind=view.kind,
            id=view.id,
            name=view.name,
            invited=view.invited,
            team_role=view.team_role,
            project_role=view.project_role,
            is_override=view.is_override,
        )


class ProjectMemberList(BaseModel):
    items: list[ProjectMemberRead]
