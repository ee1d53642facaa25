""" "Test settings" for LDAP: try a configuration step by step and say precisely what failed.

The seeds' console offers "Update Settings to test your settings" before LDAP login is turned
on; this is that check, for the stored settings with optional changes laid over them (nothing
is stored). It also works while ``LOCAL_LDAP_LOGIN`` is false: that is what it is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from rolecall import authz
from rolecall.audit.service import record
from rolecall.authz.permissions import Permission
from rolecall.db.session import commit_before_calling_out
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization
from rolecall.settings import Settings
from rolecall.sso.config import LdapConfig, ldap_config, ldap_config_from
from rolecall.sso.ldap import Directory, LdapError

#: The steps, in the order they run.
STEPS = ("connect", "tls", "bind", "base_dn", "attributes", "search", "groups", "password")


@dataclass(frozen=True)
class CheckStep:
    """One line of a settings test: which step, whether it passed, what happened."""

    step: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class LdapCheck:
    ok: bool
    steps: tuple[CheckStep, ...]


def run_checks(
    config: LdapConfig, *, email: str | None = None, password: str | None = None
) -> list[CheckStep]:
    """Try ``config`` step by step, stopping at the first failure.

    Steps: connect, tls, bind, base_dn, attributes; with ``email``: search and groups (with the
    allow-list's verdict); with a ``password`` as well: password (a bind as the entry found).
    Nothing here raises: a failure is the last, failed step.
    """
    steps: list[CheckStep] = []

    def passed(name: str, detail: str) -> None:
        steps.append(CheckStep(name, True, detail))

    directory: Directory | None = None
    try:
        with Directory(config) as directory:
            passed("connect", directory.connect())
            passed("tls", directory.secure())
            passed("bind", directory.bind_service())
            passed("base_dn", directory.check_base_dn())
            passed("attributes", directory.check_attributes())
            if email:
                entry = directory.find_user(email)
                passed("search", f"found {entry['dn']}")
                user = directory.directory_user(entry, email)
                verdict = directory.check_allowed(user)
                passed("groups", f"groups: {', '.join(user.groups) or 'none'}; {verdict}")
                if password:
                    passed("password", directory.check_password(entry["dn"], password))
    except LdapError as exc:
        if exc.step == "tls" and not steps and directory is not None and directory.reached:
            endpoint = directory.endpoint
            passed("connect", f"connected to {endpoint.host}:{endpoint.port}")  # LDAPS: TCP only
        steps.append(CheckStep(exc.step, False, exc.detail))
    return steps


def check_ldap_settings(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    settings: Settings,
    changes: dict[str, Any],
    email: str | None = None,
    password: str | None = None,
) -> LdapCheck:
    """Connect, bind and search with the organization's LDAP settings and ``changes`` (stored
    names, as ``PATCH /sso/ldap`` takes them; nothing is stored); with ``email``, find that
    entry, and with ``password``, bind as it.

    Audited as ``sso.ldap.test`` (the outcome, never a password). Raises ``PermissionDenied``
    without ``org:manage_auth``; ``InvalidInput`` for a bad value in ``changes``.
    """
    authz.require(session, actor, Permission.ORG_MANAGE_AUTH, org)
    config = ldap_config_from(changes, ldap_config(org, settings))
    commit_before_calling_out(session)  # reads only so far
    steps = run_checks(config, email=email, password=password)
    ok = all(step.ok for step in steps)
    last = steps[-1]
    record(
        session,
        actor=actor,
        action="sso.ldap.test",
        object_type="org",
        object_id=org.id,
        object_name=org.name,
        org_id=org.id,
        detail=(
            f"LDAP settings test of {config.address or '(no address)'}: "
            + ("passed" if ok else f"failed at {last.step}: {last.detail}")
            + (f" (looked up {email.strip()[:320]})" if email else "")
        ),
    )
    session.flush()
    return LdapCheck(ok=ok, steps=tuple(steps))
