"""Explaining a decision: ``can(principal, permission, project)`` with its trace.

The one implementation behind ``POST /api/v1/authz/check`` and ``rolecall explain``. Deciding is
the policy's job (``load_facts`` + ``policy.decide``); this module only works out who is asked
about and whether the caller may ask.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.authz import policy
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.load import load_facts, require
from rolecall.authz.permissions import Permission, parse_permission
from rolecall.errors import InvalidInput, NotFound
from rolecall.identity.principal import ANONYMOUS, Principal
from rolecall.orgs.models import Organization
from rolecall.projects.queries import find_project, split_path
from rolecall.service_accounts.models import ServiceAccount
from rolecall.users.queries import find_user, org_membership

PRINCIPAL_FORMS = "user:<username or email>, service_account:<name>, anonymous, or null"


def parse_principal_spec(session: Session, org: Organization, spec: str | None) -> Principal | None:
    """The principal a spec names; ``None`` for ``None`` (the caller itself).

    Others are built as if they called with an unscoped API key. A deleted service account is
    still found (the policy explains that it holds nothing).

    Raises ``InvalidInput`` for another form, ``NotFound`` for a principal not in ``org``.
    """
    if spec is None:
        return None
    text = spec.strip()
    if text.lower() == "anonymous":
        return ANONYMOUS
    kind, sep, value = text.partition(":")
    value = value.strip()
    if not sep:
        kind, value = "user", text  # a bare username or email
    if kind == "service_account" and value:
        account = session.scalar(
            select(ServiceAccount).where(
                ServiceAccount.org_id == org.id, ServiceAccount.name_key == value.lower()
            )
        )
        if account is None:
            raise NotFound(f"no service account {value!r} in this organization", field="principal")
        return Principal(
            PrincipalKind.SERVICE_ACCOUNT,
            account.name,
            CredentialKind.API_KEY,
            service_account_id=account.id,
            org_id=org.id,
        )
    if kind != "user" or not value:
        raise InvalidInput(f"principal must be {PRINCIPAL_FORMS}", field="principal")
    user = find_user(session, value)
    if user is None or org_membership(session, org.id, user.id) is None:
        raise NotFound(f"no user {value!r} in this organization", field="principal")
    return Principal(
        PrincipalKind.USER, user.username, CredentialKind.API_KEY, user_id=user.id, org_id=org.id
    )


def _is_self(subject: Principal, actor: Principal) -> bool:
    return subject.kind is actor.kind and subject.id == actor.id


def explain(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    principal_spec: str | None,
    permission: str | Permission,
    project_path: str,
) -> policy.Decision:
    """Decide ``permission`` for the principal ``principal_spec`` names on ``project_path``.

    Anyone may ask about itself (with its own credential, so key scopes show); org admins (and
    the host's operator) about any principal of their org. A denial is an answer, not an error.

    Raises ``InvalidInput`` (unknown permission, malformed principal or path), ``NotFound``
    (unknown principal or project), ``PermissionDenied`` (asking about another principal
    without ``org:manage_users``).
    """
    wanted = parse_permission(permission)
    if wanted is None:
        raise InvalidInput(f"unknown permission {permission!r}", field="permission")
    entity, name = split_path(project_path)
    try:
        subject = parse_principal_spec(session, org, principal_spec)
    except NotFound:
        # Only those who may ask about others learn whether a principal exists.
        require(session, actor, Permission.ORG_MANAGE_USERS, org)
        raise
    if subject is None or _is_self(subject, actor):
        subject = actor
    else:
        require(session, actor, Permission.ORG_MANAGE_USERS, org)
    project = find_project(session, entity, name, org.id)
    if project is None:
        raise NotFound(f"no project {entity}/{name}", field="project")
    return policy.decide(load_facts(session, subject, project), wanted)
