"""Browser sessions: password sign-in, sign-out and revocation.

A session is a server-side row holding the SHA-256 digest of the cookie value (the cookie itself is
shown to the browser once) and the CSRF token that unsafe requests must echo in ``X-CSRF-Token``.
Sessions last ``SESSION_LENGTH`` hours (``Settings.session_length_hours``).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rolecall.audit.service import record
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.db.session import commit_before_calling_out
from rolecall.errors import AuthenticationFailed
from rolecall.identity.models import BrowserSession
from rolecall.identity.passwords import (
    RESTORE_METHOD,
    restore_password_current,
    restore_password_ends,
    verify_password,
)
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import SESSION_PREFIX, digest, new_secret
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.orgs.settings import effective_settings
from rolecall.settings import Settings
from rolecall.users.models import User

#: One message for an unknown email and a wrong password, so sign-in does not reveal who exists.
SIGN_IN_FAILED = "wrong email or password"
MAX_EMAIL_LENGTH = 320


class SignIn(NamedTuple):
    """A new browser session with the two secrets the browser gets once."""

    browser_session: BrowserSession
    cookie_secret: str
    csrf_token: str
    #: The session's lifetime: ``SESSION_LENGTH``, or the organization's stored setting.
    lifetime: timedelta


def sign_in_with_password(
    session: Session,
    *,
    email: str,
    password: str,
    settings: Settings,
    surface: str = "api",
    now: datetime | None = None,
) -> SignIn:
    """Check a local password (argon2id) and open a browser session for its user.

    The user's own password always counts. While the server runs with ``LOCAL_RESTORE``, the
    temporary password start-up set (``orgs.bootstrap.restore_admin_password``) counts too, for
    ``RESTORE_PASSWORD_LIFETIME`` after it was set; such a sign-in is recorded as
    ``auth.login`` with the method ``local_restore``. Failed attempts are recorded in the audit
    log (``auth.login_failed``, never the password); the caller must keep that record even
    though it answers with an error.

    Raises ``AuthenticationFailed``: the same ``SIGN_IN_FAILED`` message for an unknown email and
    a wrong password; code ``user_deactivated`` when the password is right but the user has no
    active organization membership.
    """
    now = now or datetime.now(UTC)
    user = user_by_email(session, email)
    password_hash = user.password_hash if user else None
    restore_hash = _restore_password_hash(user, settings, now=now)
    # argon2id takes a tenth of a second or more: no write lock (SQLite's is the whole
    # database's) is held while it runs. A change made meanwhile is as if it came just after.
    commit_before_calling_out(session)
    # verify_password spends a hash's time even without a user, so timing does not tell either;
    # with LOCAL_RESTORE every sign-in that fails the first check makes the second.
    if verify_password(password_hash, password):
        method = "password"
    elif settings.local_restore and verify_password(restore_hash, password):
        method = RESTORE_METHOD
    else:
        reason = "unknown email" if user is None else "wrong password"
        record_sign_in_failure(session, user=user, email=email, reason=reason, surface=surface)
        raise AuthenticationFailed(SIGN_IN_FAILED, code="sign_in_failed")
    assert user is not None  # a password verified, so there was a user
    org_id = home_org_id(session, user.id)
    if org_id is None:
        record_sign_in_failure(
            session, user=user, email=email, reason="deactivated", surface=surface
        )
        raise AuthenticationFailed("this user is deactivated", code="user_deactivated")
    return open_session(
        session,
        user=user,
        org_id=org_id,
        method=method,
        settings=settings,
        surface=surface,
        now=now,
        detail=(
            "signed in with the LOCAL_RESTORE temporary password"
            if method == RESTORE_METHOD
            else None
        ),
        # A recovery session lasts no longer than the password that opened it.
        ends_by=_restore_password_end(user) if method == RESTORE_METHOD else None,
    )


def _restore_password_end(user: User) -> datetime:
    """When ``user``'s ``LOCAL_RESTORE`` password stops signing in (it is set: it just did)."""
    assert user.restore_password_set_at is not None
    return restore_password_ends(user.restore_password_set_at)


def _restore_password_hash(user: User | None, settings: Settings, *, now: datetime) -> str | None:
    """The user's ``LOCAL_RESTORE`` password hash, if it may sign in now: the server runs with
    ``LOCAL_RESTORE`` and the password is within its lifetime. A server without the variable
    never accepts it, whatever is stored."""
    if user is None or not settings.local_restore:
        return None
    if not restore_password_current(user.restore_password_set_at, now=now):
        return None
    return user.restore_password_hash


#: Sign-ins through an organization's own identity provider or directory: their sessions work in
#: that organization only (``BrowserSession.org_id``).
SINGLE_SIGN_ON_METHODS = frozenset({"oidc", "ldap"})


def open_session(
    session: Session,
    *,
    user: User,
    org_id: str,
    method: str,
    settings: Settings,
    surface: str = "api",
    now: datetime | None = None,
    id_token: str | None = None,
    detail: str | None = None,
    ends_by: datetime | None = None,
) -> SignIn:
    """Open a browser session for a user who proved who it is (password, LDAP or OIDC), and
    record ``auth.login``. The caller has checked that the user is an active member of
    ``org_id``; ``id_token`` (OIDC) is kept to sign out at the identity provider later. The
    session lasts ``SESSION_LENGTH``, and ends by ``ends_by`` when that comes first."""
    now = now or datetime.now(UTC)
    hours = effective_settings(session.get(Organization, org_id), settings).session_length_hours
    lifetime = timedelta(hours=hours)
    if ends_by is not None:
        lifetime = min(lifetime, max(ends_by - now, timedelta(0)))
    cookie_secret = new_secret(SESSION_PREFIX)
    csrf_token = secrets.token_urlsafe(32)
    browser_session = BrowserSession(
        digest=digest(cookie_secret),
        csrf_token=csrf_token,
        user_id=user.id,
        expires_at=now + lifetime,
        method=method,
        id_token=id_token,
        # A single sign-on vouches for the user in its own organization only: another
        # organization's provider or directory must not sign anyone in to this one.
        org_id=org_id if method in SINGLE_SIGN_ON_METHODS else None,
    )
    session.add(browser_session)
    session.flush()
    actor = Principal(
        PrincipalKind.USER,
        user.username,
        CredentialKind.SESSION,
        user_id=user.id,
        credential_id=browser_session.id,
        surface=surface,
        org_id=org_id,
    )
    record(
        session,
        actor=actor,
        action="auth.login",
        object_type="user",
        object_id=user.id,
        object_name=user.email,
        org_id=org_id,
        after={"method": method, "expires_at": browser_session.expires_at.isoformat()},
        detail=detail,
    )
    session.flush()
    return SignIn(browser_session, cookie_secret, csrf_token, lifetime)


def sign_out(session: Session, *, actor: Principal, now: datetime | None = None) -> bool:
    """End the browser session the actor signed in with; ``False`` if it used another credential.

    Nothing to authorize: a caller may always end its own session.
    """
    if actor.credential is not CredentialKind.SESSION or actor.credential_id is None:
        return False
    browser_session = session.get(BrowserSession, actor.credential_id)
    if browser_session is None or browser_session.revoked_at is not None:
        return False
    revoke_session(session, browser_session, now=now)
    org_id = actor.org_id or home_org_id(session, browser_session.user_id)
    record(
        session,
        actor=actor,
        action="auth.logout",
        object_type="user",
        object_id=browser_session.user_id,
        object_name=actor.name,
        org_id=org_id,
    )
    session.flush()
    return True


def revoke_session(
    session: Session, browser_session: BrowserSession, *, now: datetime | None = None
) -> None:
    """Mark one session revoked (its cookie stops working at once)."""
    if browser_session.revoked_at is None:
        browser_session.revoked_at = now or datetime.now(UTC)


def revoke_user_sessions(
    session: Session, *, user_id: str, now: datetime | None = None, org_id: str | None = None
) -> int:
    """Revoke a user's open sessions (deactivation, removal); returns how many.

    ``org_id``: the user leaves (or is deactivated in) that organization only. The sessions that
    work there only go; those that work in every organization of the user go too, unless it is
    still active in another one, which keeps it signed in.
    """
    query = update(BrowserSession).where(
        BrowserSession.user_id == user_id, BrowserSession.revoked_at.is_(None)
    )
    if org_id is not None and _active_elsewhere(session, user_id, org_id):
        query = query.where(BrowserSession.org_id == org_id)
    result = session.execute(
        query.values(revoked_at=now or datetime.now(UTC)).execution_options(
            synchronize_session="fetch"
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _active_elsewhere(session: Session, user_id: str, org_id: str) -> bool:
    return (
        session.scalar(
            select(OrgMembership.id).where(
                OrgMembership.user_id == user_id,
                OrgMembership.org_id != org_id,
                OrgMembership.active.is_(True),
            )
        )
        is not None
    )


def user_by_email(session: Session, email: str) -> User | None:
    key = email.strip().lower()
    # PostgreSQL refuses NUL in text; such an address cannot belong to anyone anyway.
    if not key or len(key) > MAX_EMAIL_LENGTH or "\x00" in key:
        return None
    return session.scalar(select(User).where(User.email_key == key))


def home_org_id(session: Session, user_id: str) -> str | None:
    """The first organization (by joining order) where the user is an active member."""
    return session.scalar(
        select(OrgMembership.org_id)
        .where(OrgMembership.user_id == user_id, OrgMembership.active.is_(True))
        .order_by(OrgMembership.created_at, OrgMembership.id)
        .limit(1)
    )


def _audit_org_id(session: Session, user: User | None) -> str | None:
    """Which organization's log a failed sign-in belongs to.

    The user's first organization (active or not); for an unknown email, the instance's only
    organization when there is exactly one (self-managed mode), else none.
    """
    if user is not None:
        org_id = session.scalar(
            select(OrgMembership.org_id)
            .where(OrgMembership.user_id == user.id)
            .order_by(OrgMembership.created_at, OrgMembership.id)
            .limit(1)
        )
        if org_id is not None:
            return org_id
    org_ids = session.scalars(select(Organization.id).limit(2)).all()
    return org_ids[0] if len(org_ids) == 1 else None


def record_sign_in_failure(
    session: Session,
    *,
    user: User | None,
    email: str,
    reason: str,
    surface: str,
    method: str = "password",
    org_id: str | None = None,
) -> None:
    """Record ``auth.login_failed`` (never the password). The caller must commit it even
    though it answers with an error."""
    attempted = email.strip()[:MAX_EMAIL_LENGTH].replace("\x00", "")
    record(
        session,
        actor=Principal(PrincipalKind.ANONYMOUS, "anonymous", CredentialKind.NONE, surface=surface),
        action="auth.login_failed",
        object_type="user",
        object_id=user.id if user else None,
        object_name=user.email if user else attempted,
        org_id=org_id or _audit_org_id(session, user),
        detail=f"{method} sign-in failed for {attempted!r}: {reason}",
    )
    session.flush()
