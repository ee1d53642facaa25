"""SCIM errors (RFC 7644 §3.12): an HTTP status and, for 400s, a ``scimType``."""

from __future__ import annotations

from typing import Any

from scim2_models import Error
from sqlalchemy.exc import IntegrityError

from rolecall.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RolecallError,
)

INVALID_FILTER = "invalidFilter"
INVALID_SYNTAX = "invalidSyntax"
INVALID_PATH = "invalidPath"
INVALID_VALUE = "invalidValue"
NO_TARGET = "noTarget"
MUTABILITY = "mutability"
UNIQUENESS = "uniqueness"
TOO_MANY = "tooMany"
#: Fields whose ``Conflict`` means "taken by another".
UNIQUE_FIELDS = frozenset({"email", "username", "user_name", "name", "display_name", "user"})


class ScimError(Exception):
    """A refusal in SCIM's terms. Raised by the SCIM adapter; ``web.scim`` renders it."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        """The ``urn:ietf:params:scim:api:messages:2.0:Error`` message."""
        error = Error(status=self.status, scim_type=self.scim_type, detail=self.detail)
        return error.model_dump(exclude_none=True)


def bad_request(scim_type: str, detail: str) -> ScimError:
    return ScimError(400, detail, scim_type)


def from_domain(error: RolecallError) -> ScimError:
    """The SCIM form of a service's refusal (RFC 7644 §3.12, Table 9)."""
    detail = error.message
    if isinstance(error, NotFound):
        # A reference to something else (a team, a role) in a request body is a bad value;
        # the resource of the URL itself is looked up by the adapter before this.
        return ScimError(404, detail)
    if isinstance(error, AuthenticationFailed):
        return ScimError(401, detail)
    if isinstance(error, PermissionDenied):
        rule = error.rule
        named = rule is None or rule in detail
        return ScimError(403, detail if named else f"{detail} (rule: {rule})")
    if isinstance(error, Conflict):
        # A taken name or email is a uniqueness violation; other conflicts (the last active
        # admin, a service account's team) are states, which Table 9 has no scimType for.
        taken = error.code == UNIQUENESS or error.field in UNIQUE_FIELDS
        return ScimError(409, detail, UNIQUENESS if taken else None)
    if isinstance(error, InvalidInput):
        return ScimError(400, detail, INVALID_VALUE)
    return ScimError(400, detail, INVALID_VALUE)


#: What a request that refuses, in any of the ways ``refusal`` knows, raises.
REFUSALS = (ScimError, RolecallError, IntegrityError)


def refusal(error: ScimError | RolecallError | IntegrityError) -> ScimError:
    """The SCIM error for a refused request (one of ``REFUSALS``): its own, a service's
    refusal in SCIM's terms, or a name two requests took at once (the database's unique
    constraint caught the loser)."""
    if isinstance(error, ScimError):
        return error
    if isinstance(error, RolecallError):
        return from_domain(error)
    detail = "a name or email was taken by another request at the same moment; retry"
    return ScimError(409, detail, UNIQUENESS)
