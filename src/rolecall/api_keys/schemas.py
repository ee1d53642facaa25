"""REST shapes for API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rolecall.api_keys.service import MAX_DESCRIPTION_LENGTH, MAX_EXPIRES_IN
from rolecall.authz.permissions import Permission


class ApiKeyCreate(BaseModel):
    """A new key: optional description, lifetime in seconds and permission scopes."""

    model_config = ConfigDict(extra="forbid")

    description: (
        Annotated[
            str,
            StringConstraints(max_length=MAX_DESCRIPTION_LENGTH, pattern=r"^[^\x00-\x1f\x7f]*$"),
        ]
        | None
    ) = None
    expires_in: Annotated[int, Field(ge=1, le=MAX_EXPIRES_IN, strict=True)] | None = Field(
        default=None, description="seconds until the key expires (1 to 10 years); null: never"
    )
    scopes: Annotated[list[Permission], Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the only permissions the key may use; null: all the owner's"
    )


class ApiKeyRead(BaseModel):
    """A key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    hint: str
    description: str | None
    scopes: list[str] | None
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    """A new key with its secret, shown this once."""

    key: str


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]
