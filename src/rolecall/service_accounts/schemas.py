"""REST shapes of service accounts and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rolecall.api_keys.models import ApiKey
from rolecall.authz.permissions import Permission
from rolecall.service_accounts.service import AccountView

#: Control characters (NUL above all, which PostgreSQL refuses) are a 422.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

AccountName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
TeamRef = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_PRINTABLE)]
Description = Annotated[str, StringConstraints(max_length=1024, pattern=_PRINTABLE)]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_PRINTABLE)]
KeyDescription = Annotated[str, StringConstraints(max_length=256, pattern=_PRINTABLE)]
PermissionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ServiceAccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: AccountName
    description: Description = ""
    #: ``org``: every team of the org, ``team`` is its default team (org admins only).
    #: ``team``: ``team`` is its parent team (team admins and org admins).
    scope: Literal["org", "team"]
    team: TeamRef
    #: ``builtin``: an API key is issued and returned once. ``external``: federated JWTs whose
    #: ``sub`` equals ``subject`` (team-scoped only).
    kind: Literal["builtin", "external"] = "builtin"
    subject: Subject | None = None


class ServiceAccountRead(BaseModel):
    id: str
    name: str
    description: str
    scope: str
    #: The parent team (team-scoped) or the default team (org-scoped).
    team: str
    kind: str
    subject: str | None
    created_at: datetime
    #: The API key, only in the response that created the account.
    api_key: str | None = None

    @classmethod
    def of(cls, view: AccountView) -> ServiceAccountRead:
        account = view.account
        return cls(
            id=account.id,
            name=account.name,
            description=account.description,
            scope=account.scope,
            team=view.team.name,
            kind=account.kind,
            subject=account.subject,
            created_at=account.created_at,
            api_key=view.api_key,
        )


class ServiceAccountList(BaseModel):
    items: list[ServiceAccountRead]
    total: int
    offset: int
    limit: int


class ServiceAccountKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: KeyDescription | None = None
    #: Lifetime in seconds (at most ten years); none: the key does not expire.
    expires_in: int | None = Field(default=None, gt=0, le=10 * 365 * 24 * 3600, strict=True)
    #: Only these permissions; none: every permission the account holds.
    scopes: list[PermissionName] | None = Field(default=None, max_length=len(Permission))


class ServiceAccountKeyRead(BaseModel):
    """Same shape as ``ApiKeyRead``, for a service account's keys."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    hint: str
    description: str | None
    scopes: list[str] | None
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ServiceAccountKeyCreated(ServiceAccountKeyRead):
    #: The secret, shown once.
    key: str

    @classmethod
    def of(cls, key: ApiKey, secret: str) -> ServiceAccountKeyCreated:
        read = ServiceAccountKeyRead.model_validate(key)
        return cls(**read.model_dump(), key=secret)


class ServiceAccountKeyList(BaseModel):
    items: list[ServiceAccountKeyRead]
