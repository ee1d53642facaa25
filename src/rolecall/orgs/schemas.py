"""REST shapes for the organization and the viewer (the caller)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rolecall.settings import MAX_SESSION_LENGTH_HOURS

OrgName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"),
]
TeamName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]*$")]


class OrgSettingsUpdate(BaseModel):
    """Settings stored on the organization; one fixed by the environment cannot be changed."""

    model_config = ConfigDict(extra="forbid")

    disable_personal_entity: bool | None = Field(
        default=None, description="GORILLA_DISABLE_PERSONAL_ENTITY wins when set"
    )
    disable_admin_team_access: bool | None = Field(
        default=None, description="GORILLA_DISABLE_ADMIN_TEAM_ACCESS wins when set"
    )
    # Strict: ``true`` is no number of hours (lax parsing took it as 1).
    session_length_hours: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SESSION_LENGTH_HOURS,
        strict=True,
        description="SESSION_LENGTH wins when set",
    )
    disable_sso_provisioning: bool | None = Field(
        default=None, description="DISABLE_SSO_PROVISIONING wins when set"
    )
    use_identifier_claims: bool | None = Field(
        default=None, description="GORILLA_USE_IDENTIFIER_CLAIMS wins when set"
    )
    enable_sso_group_claims: bool | None = Field(
        default=None, description="GORILLA_ENABLE_SSO_GROUP_CLAIMS wins when set"
    )
    ldap_group_sync: bool | None = Field(
        default=None, description="GORILLA_LDAP_GROUP_SYNC wins when set"
    )


class OrgUpdate(BaseModel):
    """Rename the organization, set its default team (``null`` clears it) or store settings."""

    model_config = ConfigDict(extra="forbid")

    name: OrgName | None = Field(default=None, description="omitted or null: unchanged")
    default_team: TeamName | None = None
    settings: OrgSettingsUpdate | None = None


class OrgRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    default_team: str | None
    created_at: datetime
    settings: dict[str, Any] = Field(
        description="the settings in force: the environment, when set, wins over stored values"
    )
    fixed_by_environment: list[str] = Field(
        description="settings fixed by the environment, which the API cannot change"
    )


class OrgRef(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str


class ViewerRead(BaseModel):
    """The caller: a user or a service account, and the credential it used."""

    model_config = ConfigDict(from_attributes=True)

    kind: Literal["user", "service_account"]
    id: str | None
    name: str
    org: OrgRef
    credential: str = Field(description="api_key, session or access_token")
    teams: list[str]
    username: str | None = None
    email: str | None = None
    full_name: str | None = None
    role: str | None = Field(default=None, description="org role (users)")
    scope: str | None = Field(default=None, description="org or team (service accounts)")
    team: str | None = Field(
        default=None, description="default team (org-scoped) or parent team (team-scoped)"
    )
