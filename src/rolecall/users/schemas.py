"""REST shapes for users and password sign-in."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from rolecall.authz.roles import OrgRole, SeatType

if TYPE_CHECKING:
    from rolecall.users.service import OrgUser


def _lower(value: Any) -> Any:
    """Predefined role and seat names are case-insensitive."""
    return value.strip().lower() if isinstance(value, str) else value


#: Printable text without control characters (PostgreSQL refuses NUL; names never need them).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Email = Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=PRINTABLE)]
Username = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]
FullName = Annotated[str, StringConstraints(max_length=256, pattern=PRINTABLE)]
Role = Annotated[OrgRole, BeforeValidator(_lower), Field(description="admin, member or viewer")]
Seat = Annotated[SeatType, BeforeValidator(_lower), Field(description="full, viewer or none")]


class UserCreate(BaseModel):
    """Add a user to the organization; a username is derived from the email when omitted."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    username: Username | None = None
    full_name: FullName | None = None
    role: Role = OrgRole.MEMBER
    models_seat: Seat = SeatType.FULL
    weave_seat: Seat = SeatType.FULL


class UserUpdate(BaseModel):
    """Change what is given; omitted (or null) role and seats stay, a null full_name clears it."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    models_seat: Seat | None = None
    weave_seat: Seat | None = None
    full_name: FullName | None = None


class UserRead(BaseModel):
    """A user as a member of the organization."""

    id: str
    username: str
    email: str
    full_name: str | None
    role: OrgRole
    models_seat: SeatType
    weave_seat: SeatType
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, member: OrgUser) -> UserRead:
        user, membership = member
        return cls(
            id=user.id,
            username=user.username,
            email=user.email,
            full_name=user.full_name,
            role=OrgRole(membership.role),
            models_seat=SeatType(membership.models_seat),
            weave_seat=SeatType(membership.weave_seat),
            active=membership.active,
            created_at=user.created_at,
        )


class UserList(BaseModel):
    items: list[UserRead]
    total: int
    offset: int
    limit: int


class SignInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SignInRead(BaseModel):
    """The signed-in user and the token to echo in ``X-CSRF-Token`` on unsafe requests."""

    user: UserRead
    csrf_token: str
