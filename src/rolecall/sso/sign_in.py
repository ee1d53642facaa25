"""Email-and-password sign-in: the local password or the LDAP directory, decided in one place.

Both the REST route (``POST /api/v1/auth/login``) and the console's form call
``sign_in_with_email_password``. Which check applies:

* LDAP login is **on** when the organization's effective LDAP settings are configured (address
  and base DN) with ``LOCAL_LDAP_LOGIN=true``, and single sign-on is enabled (not
  ``LOCAL_RESTORE``). Otherwise every sign-in is a local password sign-in.
* With LDAP login on, a user that has a **local password** (the bootstrap admin, an account
  given a password by hand) signs in with it, locally; everyone else (unknown emails included)
  signs in through the directory. So the local admin gets in while the directory is down or
  misconfigured, and a directory entry cannot take over a local account by sharing its email.
  A directory sign-in first spends the time of a local password check, so how long a refusal
  takes does not tell which emails have a local password (only the directory's own round trips
  still differ).
* A directory sign-in then goes through ``sso.provisioning.sign_in_external`` like OIDC: an
  unknown user is created as org ``member`` unless ``DISABLE_SSO_PROVISIONING``, a deactivated
  one is refused, and with ``GORILLA_LDAP_GROUP_SYNC`` the directory's groups decide the user's
  team memberships.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from rolecall.db.session import commit_before_calling_out
from rolecall.errors import AuthenticationFailed, Unavailable
from rolecall.identity.passwords import spend_verification_time
from rolecall.identity.sessions import (
    SIGN_IN_FAILED,
    SignIn,
    record_sign_in_failure,
    sign_in_with_password,
    user_by_email,
)
from rolecall.orgs.models import Organization
from rolecall.orgs.settings import effective_settings
from rolecall.settings import Settings
from rolecall.sso.config import LdapConfig, ldap_config
from rolecall.sso.ldap import DirectoryUser, LdapError, authenticate
from rolecall.sso.provisioning import ExternalIdentity, sign_in_external

#: What an end user is told when the directory cannot be used (the admin sees the detail in
#: the audit log and through "test settings").
UNAVAILABLE = {
    "ldap_unreachable": "the LDAP directory cannot be reached",
    "ldap_tls_failed": "a secure connection to the LDAP directory cannot be made",
    "ldap_bind_failed": "rolecall cannot bind to the LDAP directory",
    "ldap_base_dn_not_found": "the LDAP base DN is not found in the directory",
    "ldap_attribute_missing": "the LDAP directory's entries lack a configured attribute",
    "ldap_invalid_settings": "the LDAP settings are incomplete or invalid",
    "ldap_destination_refused": "the LDAP directory's address is not one this server may reach",
    "ldap_search_failed": "the LDAP directory refused the search",
}
NOT_ALLOWED = "you are not in an allowed LDAP group; ask an administrator for access"


def ldap_login_on(config: LdapConfig, settings: Settings) -> bool:
    """Whether sign-in uses the directory: configured, ``LOCAL_LDAP_LOGIN``, SSO enabled."""
    return config.configured and config.login and settings.sso_enabled


def sign_in_with_email_password(
    session: Session,
    *,
    org: Organization | None,
    email: str,
    password: str,
    settings: Settings,
    surface: str = "api",
    now: datetime | None = None,
) -> SignIn:
    """Sign in with an email and password, locally or through LDAP (see the module's rules).

    ``org`` is the organization signed in to (``web.deps.sign_in_org``); without one (multi-org
    mode, none named) only local passwords are checked.

    Raises ``AuthenticationFailed``: ``sign_in_failed`` (one message for an unknown email and a
    wrong password, local or LDAP; also an empty password), ``ldap_group_not_allowed`` (outside
    ``LOCAL_LDAP_GROUP_ALLOW_LIST``), and the codes of ``sign_in_external``
    (``sso_provisioning_disabled``, ``user_deactivated``...). Raises ``Unavailable`` (503) when
    the directory cannot be used: code ``ldap_unreachable``, ``ldap_tls_failed``,
    ``ldap_bind_failed``, ``ldap_base_dn_not_found``... Every failure is recorded as
    ``auth.login_failed``: the caller must commit before answering with the error.
    """
    config = ldap_config(org, settings) if org is not None else None
    if org is None or config is None or not ldap_login_on(config, settings):
        return sign_in_with_password(
            session, email=email, password=password, settings=settings, surface=surface, now=now
        )
    local = user_by_email(session, email)
    if local is not None and local.password_hash:
        return sign_in_with_password(
            session, email=email, password=password, settings=settings, surface=surface, now=now
        )
    directory_user = _check_directory(session, org, config, email, password, surface)
    groups = directory_user.groups if effective_settings(org, settings).ldap_group_sync else None
    identity = ExternalIdentity(
        method="ldap",
        email=directory_user.email,
        subject=directory_user.dn,
        full_name=directory_user.full_name,
        groups=groups,
    )
    return sign_in_external(session, org=org, identity=identity, settings=settings, now=now)


def _check_directory(
    session: Session,
    org: Organization,
    config: LdapConfig,
    email: str,
    password: str,
    surface: str,
) -> DirectoryUser:
    commit_before_calling_out(session)  # reads only so far
    spend_verification_time()  # as long as a local check (see the module), holding nothing
    try:
        return authenticate(config, email=email, password=password)
    except LdapError as exc:
        record_sign_in_failure(
            session,
            user=user_by_email(session, email),
            email=email,
            reason=f"LDAP {exc.step}: {exc.detail}",
            surface=surface,
            method="ldap",
            org_id=org.id,
        )
        if exc.is_credentials:
            raise AuthenticationFailed(SIGN_IN_FAILED, code="sign_in_failed") from None
        if exc.code == "ldap_group_not_allowed":
            raise AuthenticationFailed(NOT_ALLOWED, code=exc.code) from None
        message = UNAVAILABLE.get(exc.code, "the LDAP directory cannot be used")
        raise Unavailable(
            f"{message}; try again later, or sign in with a local password", code=exc.code
        ) from None
