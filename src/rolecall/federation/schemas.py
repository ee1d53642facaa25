"""REST shapes of identity federation: the org's JWT issuer and the explain report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rolecall.federation.jwt_bearer import MAX_ASSERTION_LENGTH, Report
from rolecall.federation.models import JwtIssuer

IssuerUrl = Annotated[
    str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[^\x00-\x20\x7f]+$")
]


class IssuerUpdate(BaseModel):
    """Register the organization's JWT issuer; ``null`` removes it."""

    model_config = ConfigDict(extra="forbid")

    issuer: IssuerUrl | None = Field(
        description="https URL; its discovery document must name a jwks_uri"
    )


class IssuerRead(BaseModel):
    issuer: str | None
    jwks_uri: str | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, row: JwtIssuer | None) -> IssuerRead:
        if row is None:
            return cls(issuer=None)
        return cls(issuer=row.issuer, jwks_uri=row.jwks_uri, created_at=row.created_at)


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assertion: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ASSERTION_LENGTH)]


class CheckRead(BaseModel):
    check: str
    ok: bool
    expected: str
    found: str | None
    detail: str


class SubjectRead(BaseModel):
    kind: str
    id: str
    name: str


class VerifyReport(BaseModel):
    """Every check run on the JWT; ``valid``: an exchange would issue a token for ``subject``."""

    valid: bool
    #: The first failed check (null when valid).
    failed_check: str | None
    subject: SubjectRead | None
    checks: list[CheckRead]

    @classmethod
    def of(cls, report: Report) -> VerifyReport:
        failure = report.failure
        subject = report.subject
        return cls(
            valid=report.ok,
            failed_check=failure.check if failure else None,
            subject=SubjectRead(kind=subject.kind, id=subject.id, name=subject.name)
            if subject
            else None,
            checks=[CheckRead(**result.as_dict()) for result in report.results],
        )
