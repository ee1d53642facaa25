"""REST shapes of teams and team members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StrictBool, StringConstraints

from rolecall.orgs.models import Organization
from rolecall.teams.models import Team

#: Entity names: letters, digits, '_', '-', '.', not starting with '.' (users/naming.py).
TeamName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
]
#: A user reference (id, username or email) or a role name: printable text (control characters,
#: NUL above all, which PostgreSQL refuses, are a 422).
Ref = Annotated[
    str, StringConstraints(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")
]
StorageType = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$")
]


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TeamName
    #: A user (id, username or email) who becomes the team's first admin.
    admin: Ref | None = None
    private_only: StrictBool = False
    domain_matching: StrictBool = False
    storage_type: StorageType = "default"


class TeamUpdate(BaseModel):
    """Only the fields sent change; ``null`` leaves a field as it is."""

    model_config = ConfigDict(extra="forbid")

    name: TeamName | None = None
    private_only: StrictBool | None = None
    domain_matching: StrictBool | None = None
    storage_type: StorageType | None = None


class TeamRead(BaseModel):
    id: str
    name: str
    kind: str
    private_only: bool
    domain_matching: bool
    storage_type: str
    #: The organization's default team.
    is_default: bool
    created_at: datetime

    @classmethod
    def of(cls, team: Team, org: Organization) -> TeamRead:
        return cls(
            id=team.id,
            name=team.name,
            kind=team.kind,
            private_only=team.private_only,
            domain_matching=team.domain_matching,
            storage_type=team.storage_type,
            is_default=org.default_team_id == team.id,
            created_at=team.created_at,
        )


class TeamList(BaseModel):
    items: list[TeamRead]


class TeamPage(TeamList):
    """A page of the organization's teams (``GET /teams``)."""

    total: int
    offset: int
    limit: int


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The user to add: id, username or email.
    user: Ref
    #: admin, member or viewer (any case), or a custom role's exact name or id.
    role: Ref = "member"


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Ref


class MemberRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    id: str
    name: str
    email: str | None
    role: str
    custom_role_id: str | None
    joined_at: datetime


class MemberList(BaseModel):
    items: list[MemberRead]
    total: int
    offset: int
    limit: int
