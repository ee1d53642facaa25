"""Identity federation use cases: the org's JWT issuer, the JWT bearer exchange, explaining it.

The exchange is split in two so that no write transaction stays open while the issuer's keys
are fetched: ``assess_exchange`` reads (which organization, which key, which subject) and
``complete_exchange`` writes (the access token and the audit record, accepted or refused).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit.service import record
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.permissions import Permission
from rolecall.db.session import commit_before_calling_out
from rolecall.errors import InvalidInput
from rolecall.federation.jwks import FetchFailed, JwksCache, check_issuer_url
from rolecall.federation.jwt_bearer import (
    INVALID_GRANT,
    WANDB_AUDIENCE,
    Expectations,
    Report,
    Subject,
    evaluate,
    unverified_claims,
)
from rolecall.federation.models import JwtIssuer
from rolecall.identity.models import AccessToken
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import ACCESS_TOKEN_PREFIX, digest, new_secret
from rolecall.orgs.models import Organization
from rolecall.service_accounts.models import ServiceAccount
from rolecall.settings import OrgMode, Settings
from rolecall.users.queries import member_with_email

EXTERNAL = "external"
MAX_ISSUER_LENGTH = 2048
ACTION_EXCHANGE = "federation.token_exchange"


# --- the registered issuer ----------------------------------------------------------------------


def get_issuer(session: Session, org: Organization) -> JwtIssuer | None:
    return session.scalar(select(JwtIssuer).where(JwtIssuer.org_id == org.id))


def read_issuer(session: Session, *, actor: Principal, org: Organization) -> JwtIssuer | None:
    """The organization's JWT issuer, or None. Raises ``PermissionDenied`` (org admins only)."""
    authz.require(session, actor, Permission.ORG_MANAGE_AUTH, org)
    return get_issuer(session, org)


def _revoke_tokens(session: Session, org: Organization, now: datetime) -> int:
    result = session.execute(
        update(AccessToken)
        .where(AccessToken.org_id == org.id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def set_issuer(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    issuer: str | None,
    keys: JwksCache,
) -> JwtIssuer | None:
    """Register ``issuer`` for the organization (``None`` removes it), after finding its keys
    through discovery. A change revokes the access tokens issued under the old one.

    Raises ``PermissionDenied`` (``org:manage_auth``: org admins, not with an access token),
    ``InvalidInput`` (not an issuer URL, or discovery failed: nothing is stored then).
    """
    authz.require(session, actor, Permission.ORG_MANAGE_AUTH, org)
    current = get_issuer(session, org)
    now = datetime.now(UTC)
    before = {"issuer": current.issuer} if current else None
    if issuer is None:
        if current is None:
            return None
        keys.forget(current.issuer)
        session.delete(current)
        revoked = _revoke_tokens(session, org, now)
        _audit_issuer(session, actor, org, "federation.issuer.remove", before, None, revoked)
        session.flush()
        return None
    issuer = issuer.strip()
    problem = check_issuer_url(issuer) if len(issuer) <= MAX_ISSUER_LENGTH else "too long"
    if problem:
        raise InvalidInput(f"issuer: {problem}", field="issuer")
    commit_before_calling_out(session)  # reads only so far
    try:
        jwks_uri = keys.discover(issuer)
    except FetchFailed as exc:
        raise InvalidInput(
            f"issuer: discovery failed: {exc}", field="issuer", code="issuer_discovery_failed"
        ) from exc
    if len(jwks_uri) > MAX_ISSUER_LENGTH:
        raise InvalidInput("issuer: its jwks_uri is too long", field="issuer")
    revoked = 0
    if current is None:
        current = JwtIssuer(org_id=org.id, issuer=issuer, jwks_uri=jwks_uri)
        current.created_by_user_id = actor.user_id
        session.add(current)
    else:
        if current.issuer != issuer:
            keys.forget(current.issuer)
            revoked = _revoke_tokens(session, org, now)
        current.issuer, current.jwks_uri = issuer, jwks_uri
    keys.forget(issuer)
    after = {"issuer": issuer, "jwks_uri": jwks_uri}
    _audit_issuer(session, actor, org, "federation.issuer.set", before, after, revoked)
    session.flush()
    return current


def _audit_issuer(
    session: Session,
    actor: Principal,
    org: Organization,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    revoked: int,
) -> None:
    record(
        session,
        actor=actor,
        action=action,
        object_type="jwt_issuer",
        object_id=org.id,
        object_name=org.name,
        org_id=org.id,
        before=before,
        after=after,
        detail=f"{revoked} access tokens revoked" if revoked else None,
    )


# --- finding the organization and the subject ---------------------------------------------------


def _audiences(org: Organization, settings: Settings) -> frozenset[str] | None:
    if settings.skip_audience_validation and settings.mode is OrgMode.SINGLE:
        return None
    return frozenset({org.name, WANDB_AUDIENCE})


def find_subject(session: Session, org: Organization, sub: str) -> Subject | str:
    """Whom ``sub`` names in ``org``: the user whose email it is (case-insensitively), else an
    external service account by its subject; otherwise a string saying why nobody.

    The user comes first: the seeds make ``sub`` the user's email, and an account's subject is
    set by a team admin, who must not be able to take over the JWTs of any user (an org admin
    included) by naming the account after their email. A deactivated user's JWTs are refused,
    not handed to such an account."""
    member = member_with_email(session, org.id, sub)
    if member is not None:
        user, active = member
        if not active:
            return f"user {user.username} is deactivated"
        return Subject(PrincipalKind.USER.value, user.id, user.username)
    account = session.scalar(
        select(ServiceAccount).where(
            ServiceAccount.org_id == org.id,
            ServiceAccount.kind == EXTERNAL,
            ServiceAccount.subject == sub,
            ServiceAccount.deleted_at.is_(None),
        )
    )
    if account is None:
        return (
            "no user of the organization has this email, no external service account this subject"
        )
    return Subject(PrincipalKind.SERVICE_ACCOUNT.value, account.id, account.name)


def _locate(
    session: Session, settings: Settings, claims: Mapping[str, Any] | None
) -> tuple[Organization | None, JwtIssuer | None, str | None]:
    """The organization an assertion is for: the one whose registered issuer is its ``iss``
    (when several trust that issuer, the one its ``aud`` names). In single-org mode, the org.

    Returns ``(org, registration, problem)``.
    """
    if settings.mode is OrgMode.SINGLE:
        org = session.scalar(select(Organization).order_by(Organization.created_at).limit(1))
        if org is None:
            return None, None, "the server has no organization yet"
        return org, get_issuer(session, org), None
    iss = claims.get("iss") if claims else None
    if not isinstance(iss, str) or len(iss) > MAX_ISSUER_LENGTH:
        return None, None, "iss: the JWT has no usable iss"
    rows = list(
        session.execute(
            select(Organization, JwtIssuer)
            .join(JwtIssuer, JwtIssuer.org_id == Organization.id)
            .where(JwtIssuer.issuer == iss)
        )
    )
    if not rows:
        return None, None, "iss: no organization has registered this issuer"
    if len(rows) == 1:
        return rows[0][0], rows[0][1], None
    aud = claims.get("aud") if claims else None
    named = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    chosen = [(o, r) for o, r in rows if o.name in named]
    if len(chosen) != 1:
        return (
            None,
            None,
            ("aud: several organizations trust this issuer; the JWT's aud must name one of them"),
        )
    return chosen[0][0], chosen[0][1], None


# --- the exchange -------------------------------------------------------------------------------


@dataclass
class Assessment:
    """What ``assess_exchange`` found; ``complete_exchange`` acts on it."""

    org_id: str | None
    report: Report | None = None
    #: RFC 6749 error code and description when refused.
    error: str | None = None
    description: str | None = None
    check: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.error is None and self.report is not None and self.report.subject is not None


def refusal(org_id: str | None, error: str, description: str, check: str) -> Assessment:
    """An exchange refused before any claim was looked at (the form itself is wrong)."""
    return Assessment(org_id, error=error, description=description, check=check)


def single_org_id(session: Session, settings: Settings) -> str | None:
    """The organization refusals of a malformed request are recorded under (single mode)."""
    if settings.mode is not OrgMode.SINGLE:
        return None
    return session.scalar(select(Organization.id).order_by(Organization.created_at).limit(1))


def assess_exchange(
    session: Session,
    *,
    settings: Settings,
    keys: JwksCache,
    assertion: str,
    now: float | None = None,
) -> Assessment:
    """Run every check of ``jwt_bearer`` on ``assertion`` (reads only; may fetch the issuer's
    keys). The result names the first failed check, or the subject to issue a token for."""
    claims = unverified_claims(assertion)
    org, registration, problem = _locate(session, settings, claims)
    kept = {k: claims.get(k) for k in ("iss", "sub") if claims and isinstance(claims.get(k), str)}
    if org is None:
        described = problem or "no organization"
        check = described.partition(":")[0] if ":" in described else "organization"
        return Assessment(None, None, INVALID_GRANT, described, check, kept)
    expect = Expectations(
        issuer=registration.issuer if registration else None,
        audiences=_audiences(org, settings),
        now=time.time() if now is None else now,
        key=keys.key_for,
        subject=lambda sub: find_subject(session, org, sub),
    )
    commit_before_calling_out(session)  # reads only so far; the issuer's keys may be fetched
    report = evaluate(assertion, expect)
    failure = report.failure
    if failure is not None:
        return Assessment(org.id, report, failure.error, failure.detail, failure.check, kept)
    if report.subject is None:  # pragma: no cover - every check set ends with sub
        return Assessment(org.id, report, INVALID_GRANT, "sub: not checked", "sub", kept)
    return Assessment(org.id, report, claims=kept)


@dataclass(frozen=True, slots=True)
class Grant:
    """An issued access token (the secret is shown once) and its lifetime in seconds."""

    access_token: str
    expires_in: int
    token_id: str


def _actor(assessment: Assessment, token_id: str | None) -> Principal:
    subject = assessment.report.subject if assessment.report else None
    if subject is None or token_id is None:
        return Principal(
            PrincipalKind.ANONYMOUS, "jwt-bearer", CredentialKind.NONE,
            surface="oidc", org_id=assessment.org_id,
        )  # fmt: skip
    is_user = subject.kind == PrincipalKind.USER.value
    return Principal(
        PrincipalKind.USER if is_user else PrincipalKind.SERVICE_ACCOUNT,
        subject.name,
        CredentialKind.ACCESS_TOKEN,
        user_id=subject.id if is_user else None,
        service_account_id=None if is_user else subject.id,
        credential_id=token_id,
        surface="oidc",
        org_id=assessment.org_id,
    )


def complete_exchange(
    session: Session, assessment: Assessment, *, settings: Settings
) -> Grant | None:
    """Issue the access token of an accepted assessment; audit the exchange either way.

    Returns the grant, or None when the exchange was refused (the audit record says why).
    """
    grant = None
    if assessment.accepted:
        assert assessment.report is not None and assessment.report.subject is not None
        subject = assessment.report.subject
        secret = new_secret(ACCESS_TOKEN_PREFIX)
        lifetime = settings.access_token_lifetime
        is_user = subject.kind == PrincipalKind.USER.value
        token = AccessToken(
            digest=digest(secret),
            org_id=assessment.org_id,
            user_id=subject.id if is_user else None,
            service_account_id=None if is_user else subject.id,
            subject=str(assessment.claims.get("sub", ""))[:512],
            expires_at=datetime.now(UTC) + timedelta(seconds=lifetime),
        )
        session.add(token)
        session.flush()
        grant = Grant(secret, lifetime, token.id)
    after = {
        "outcome": "accepted" if grant else "refused",
        "check": assessment.check,
        "error": assessment.error,
        "issuer": _short(assessment.claims.get("iss")),
    }
    record(
        session,
        actor=_actor(assessment, grant.token_id if grant else None),
        action=ACTION_EXCHANGE,
        object_type="access_token",
        object_id=grant.token_id if grant else None,
        object_name=_short(assessment.claims.get("sub"), 320),
        org_id=assessment.org_id,
        after={k: v for k, v in after.items() if v is not None},
        detail=_short(assessment.description or "accepted: every check passed", 1024),
    )
    session.flush()
    return grant


def _short(value: Any, limit: int = 256) -> str | None:
    if not isinstance(value, str):
        return None
    return value if len(value) <= limit else value[: limit - 3] + "..."


# --- explaining ---------------------------------------------------------------------------------


def verify_assertion(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    settings: Settings,
    keys: JwksCache,
    assertion: str,
) -> Report:
    """Run every check on ``assertion`` against the caller's organization without issuing
    anything; the report has each check's expected and found values.

    Raises ``PermissionDenied`` (``org:manage_auth``: org admins).
    """
    authz.require(session, actor, Permission.ORG_MANAGE_AUTH, org)
    registration = get_issuer(session, org)
    expect = Expectations(
        issuer=registration.issuer if registration else None,
        audiences=_audiences(org, settings),
        now=time.time(),
        key=keys.key_for,
        subject=lambda sub: find_subject(session, org, sub),
    )
    commit_before_calling_out(session)  # reads only so far; the issuer's keys may be fetched
    return evaluate(assertion, expect)
