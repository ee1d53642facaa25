"""Just-in-time provisioning: an identity an SSO provider vouched for becomes a session.

The seeds ("Auto provision users", the IAM variables): the first SSO sign-in of an unknown email
creates the user as an org ``member`` unless ``DISABLE_SSO_PROVISIONING``; a deactivated user
never gets in; ``GORILLA_USE_IDENTIFIER_CLAIMS`` makes the provider decide the username and full
name; group claims (OIDC) or directory groups (LDAP) decide team memberships. SSO and SCIM
resolve to the same user: the email, matched case-insensitively.

The changes are made by the SSO surface itself (principal ``sso:oidc`` / ``sso:ldap``, the
server acting on its configuration) through the same services and audit log as the REST API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.roles import OrgRole
from rolecall.errors import AuthenticationFailed, Conflict, InvalidInput, RolecallError
from rolecall.identity.principal import Principal
from rolecall.identity.sessions import SignIn, open_session, record_sign_in_failure, user_by_email
from rolecall.orgs.models import Organization
from rolecall.orgs.settings import effective_settings
from rolecall.settings import Settings
from rolecall.teams import service as teams_service
from rolecall.teams.models import Team, TeamMembership
from rolecall.users import service as users_service
from rolecall.users.models import User
from rolecall.users.naming import USERNAME_RE, normalise_email
from rolecall.users.queries import org_membership

#: Group names (teams) one sign-in may carry; more is refused rather than half-applied.
MAX_GROUPS = 1000


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who an identity provider says signed in."""

    method: str  # "oidc" | "ldap"
    email: str
    #: The provider's id for the user: the OIDC ``sub`` or the LDAP entry's DN.
    subject: str | None = None
    #: ``preferred_username`` (used only under ``GORILLA_USE_IDENTIFIER_CLAIMS``).
    username: str | None = None
    full_name: str | None = None
    #: Team names the user belongs to; ``None``: team memberships are left alone.
    groups: tuple[str, ...] | None = None


def sso_actor(method: str, org: Organization) -> Principal:
    """The SSO surface acting on the server's configuration (audited as ``sso:<method>``)."""
    return Principal(
        PrincipalKind.OPERATOR,
        f"sso:{method}",
        CredentialKind.LOCAL,
        surface=method,
        org_id=org.id,
    )


def sign_in_external(
    session: Session,
    *,
    org: Organization,
    identity: ExternalIdentity,
    settings: Settings,
    now: datetime | None = None,
    id_token: str | None = None,
) -> SignIn:
    """Provision (when allowed) and sign in the user ``identity`` names; returns its session.

    Raises ``AuthenticationFailed`` with code ``sso_disabled`` (LOCAL_RESTORE),
    ``invalid_identity`` (no usable email, a bad or taken ``preferred_username``),
    ``sso_provisioning_disabled`` (unknown user and DISABLE_SSO_PROVISIONING) or
    ``user_deactivated``. Each failure is recorded as ``auth.login_failed``: the caller must
    commit before answering with the error.
    """
    try:
        return _sign_in(session, org, identity, settings, now, id_token)
    except AuthenticationFailed as exc:
        known = user_by_email(session, identity.email) if identity.email else None
        record_sign_in_failure(
            session,
            user=known,
            email=identity.email or "",
            reason=exc.message,
            surface=identity.method,
            method=identity.method,
            org_id=org.id,
        )
        raise


def _sign_in(
    session: Session,
    org: Organization,
    identity: ExternalIdentity,
    settings: Settings,
    now: datetime | None,
    id_token: str | None,
) -> SignIn:
    if not settings.sso_enabled:
        raise AuthenticationFailed(
            "single sign-on is off while LOCAL_RESTORE is set: sign in with the local admin "
            "password",
            code="sso_disabled",
        )
    email = _email(identity)
    effective = effective_settings(org, settings)
    username = _username(identity) if effective.use_identifier_claims else None
    actor = sso_actor(identity.method, org)
    user = user_by_email(session, email)
    membership = org_membership(session, org.id, user.id) if user is not None else None
    notes: list[str] = []
    if user is None or membership is None:
        if effective.disable_sso_provisioning:
            raise AuthenticationFailed(
                f"{email} has no account in this organization and automatic provisioning is "
                "off (DISABLE_SSO_PROVISIONING): ask an admin to add you",
                code="sso_provisioning_disabled",
            )
        user = _provision(session, actor, org, email, username, identity.full_name)
        notes.append("provisioned as member")
    elif not membership.active:
        raise AuthenticationFailed("this user is deactivated", code="user_deactivated")
    elif effective.use_identifier_claims:
        _apply_identifier_claims(session, actor, org, user, username, identity.full_name)
    if identity.groups is not None:
        notes.append(sync_teams(session, actor=actor, org=org, user=user, groups=identity.groups))
    return open_session(
        session,
        user=user,
        org_id=org.id,
        method=identity.method,
        settings=settings,
        surface=identity.method,
        now=now,
        id_token=id_token,
        detail="; ".join(notes) or None,
    )


def _email(identity: ExternalIdentity) -> str:
    if not identity.email:
        raise AuthenticationFailed(
            f"the {identity.method.upper()} provider sent no email for this user",
            code="invalid_identity",
        )
    try:
        return normalise_email(identity.email)
    except InvalidInput as exc:
        raise AuthenticationFailed(
            f"the {identity.method.upper()} provider sent an unusable email: {exc.message}",
            code="invalid_identity",
        ) from exc


def _username(identity: ExternalIdentity) -> str:
    """``preferred_username``, which GORILLA_USE_IDENTIFIER_CLAIMS makes the username."""
    name = (identity.username or "").strip()
    if not USERNAME_RE.fullmatch(name):
        shown = repr(name) if name else "no preferred_username"
        raise AuthenticationFailed(
            f"the identity provider sent {shown}; with GORILLA_USE_IDENTIFIER_CLAIMS the "
            "username comes from preferred_username, which may hold only letters, digits, "
            "'_' and '-' (1-64 characters)",
            code="invalid_identity",
        )
    return name


def _provision(
    session: Session,
    actor: Principal,
    org: Organization,
    email: str,
    username: str | None,
    full_name: str | None,
) -> User:
    try:
        member = users_service.create_user(
            session,
            actor=actor,
            org=org,
            email=email,
            username=username,
            full_name=_full_name(full_name),
            role=OrgRole.MEMBER,
        )
    except Conflict as exc:
        raise AuthenticationFailed(
            f"cannot create an account for {email}: {exc.message}", code="invalid_identity"
        ) from exc
    return member.user


def _apply_identifier_claims(
    session: Session,
    actor: Principal,
    org: Organization,
    user: User,
    username: str | None,
    full_name: str | None,
) -> None:
    try:
        if username is not None and username != user.username:
            users_service.rename_user(session, actor=actor, org=org, ref=user.id, username=username)
        name = _full_name(full_name)
        if name is not None and name != user.full_name:
            users_service.update_user(session, actor=actor, org=org, ref=user.id, full_name=name)
    except (Conflict, InvalidInput) as exc:
        raise AuthenticationFailed(
            f"the identity provider's username or name cannot be applied: {exc.message}",
            code="invalid_identity",
        ) from exc


def _full_name(value: str | None) -> str | None:
    text = (value or "").strip()
    return text[: users_service.MAX_FULL_NAME_LENGTH] or None


def sync_teams(
    session: Session, *, actor: Principal, org: Organization, user: User, groups: tuple[str, ...]
) -> str:
    """Make the user's team memberships in ``org`` exactly the teams ``groups`` names: added as
    ``member`` where missing (a role it already has stays), removed where not named. Names that
    are no team of the organization are ignored (an IdP sends groups of its own too).

    Returns a summary for the audit log; each change is audited by the teams service.
    """
    if len(groups) > MAX_GROUPS:
        raise AuthenticationFailed(
            f"the identity provider sent {len(groups)} groups; at most {MAX_GROUPS} are accepted",
            code="invalid_identity",
        )
    wanted = {g.strip().lower(): g.strip() for g in groups if g and g.strip()}
    teams = {
        team.name_key: team
        for team in session.scalars(
            select(Team).where(
                Team.org_id == org.id, Team.kind == "team", Team.name_key.in_(list(wanted))
            )
        )
    }
    current = {
        team.name_key: team
        for team in session.scalars(
            select(Team)
            .join(TeamMembership, TeamMembership.team_id == Team.id)
            .where(Team.org_id == org.id, Team.kind == "team", TeamMembership.user_id == user.id)
        )
    }
    added, removed = sorted(set(teams) - set(current)), sorted(set(current) - set(teams))
    try:
        for key in added:
            teams_service.add_member(
                session, actor=actor, org=org, team=teams[key], user=user.id, role="member"
            )
        for key in removed:
            teams_service.remove_member(
                session, actor=actor, org=org, team=current[key], member=user.id
            )
    except RolecallError as exc:
        raise AuthenticationFailed(
            f"team memberships could not follow the identity provider's groups: {exc.message}",
            code="invalid_identity",
        ) from exc
    unknown = sorted(wanted[k] for k in set(wanted) - set(teams))
    parts = [f"teams added: {', '.join(teams[k].name for k in added) or 'none'}"]
    parts.append(f"removed: {', '.join(current[k].name for k in removed) or 'none'}")
    if unknown:
        parts.append(f"groups that are no team (ignored): {', '.join(unknown[:20])}")
    return "; ".join(parts)
