"""The error tree every service raises. No HTTP here: each surface maps these once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rolecall.authz.policy import Decision


def some_of(values: Iterable[str], *, most: int = 5, width: int = 64) -> str:
    """``values`` named in an error message, which stays short whatever a client sent: the
    first ``most`` in order, each cut to ``width`` characters, then how many more there are."""
    ordered = sorted(set(values))
    named = ", ".join(value[:width] for value in ordered[:most])
    rest = len(ordered) - most
    return f"{named} and {rest} more" if rest > 0 else named


class RolecallError(Exception):
    """Base of every expected failure; ``code`` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class NotFound(RolecallError):
    code = "not_found"


class Conflict(RolecallError):
    code = "conflict"


class InvalidInput(RolecallError):
    code = "invalid_input"


class AuthenticationFailed(RolecallError):
    code = "authentication_failed"


class Unavailable(RolecallError):
    """Something the request depends on outside rolecall (a directory, an identity provider)
    cannot be used right now; trying again later, or another way in, may work."""

    code = "unavailable"


class PermissionDenied(RolecallError):
    """Raised with the policy decision whose trace names the rule that denied, or, for a rule
    that is not a permission (``policy.check_key_mint``, say), with that rule's name."""

    code = "permission_denied"

    def __init__(
        self, message: str, *, decision: Decision | None = None, rule: str | None = None
    ) -> None:
        super().__init__(message)
        self.decision = decision
        self._rule = rule

    @property
    def rule(self) -> str | None:
        """The rule that denied: the decision's deciding rule, or the one named."""
        return self.decision.deciding_rule if self.decision is not None else self._rule

    def as_dict(self) -> dict[str, Any]:
        body = super().as_dict()
        if self.rule is not None:
            body["rule"] = self.rule
        if self.decision is not None:
            body["trace"] = [step.as_dict() for step in self.decision.trace]
        return body
