"""Service-account attribution: may the work of this request count for the human it names?

A service account's request may name a human with ``X-Wandb-Username`` / ``X-Wandb-User-Email``
(the SDK's ``WANDB_USERNAME`` / ``WANDB_USER_EMAIL``). ``policy.decide_attribution`` honours it
only when that user is an active member of the account's parent team (team-scoped account) or
organization (org-scoped account); otherwise the work stays the account's and the step says why.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rolecall.authz import policy
from rolecall.authz.load import principal_facts
from rolecall.identity.principal import Principal
from rolecall.service_accounts.models import ServiceAccount
from rolecall.teams.queries import user_team_membership
from rolecall.users.queries import find_user, org_membership

#: ``session.info`` key prefix of a decided attribution.
ATTRIBUTION_DECIDED = "rolecall.attribution"
#: Longer names cannot be a username or an email address.
MAX_REQUESTED_LENGTH = 320


def clean_requested(value: str | None) -> str | None:
    """A header's value as a requested name: empty means unset; control characters and
    over-long values cannot name anyone (kept, shortened, so the refusal can quote them)."""
    value = (value or "").strip()
    if not value:
        return None
    value = "".join(c for c in value if c.isprintable())[:MAX_REQUESTED_LENGTH]
    return value or None


def resolve_attribution(session: Session, *, actor: Principal) -> policy.Attribution | None:
    """The attribution decision for a service account naming a human; ``None`` when the actor
    is not a service account or names nobody. Nothing to authorize: it only reads who the
    account's work may count for."""
    requested = actor.attribution
    if not actor.is_service_account or not requested:
        return None
    # A request asks twice (its response header, then the run it creates): decide once.
    key = (ATTRIBUTION_DECIDED, actor.service_account_id, actor.attribution)
    if key not in session.info:
        session.info[key] = _decide(session, actor, requested)
    return session.info[key]  # type: ignore[no-any-return]


def _decide(session: Session, actor: Principal, requested: str) -> policy.Attribution | None:
    account = session.get(ServiceAccount, actor.service_account_id)
    if account is None:  # deleted since it authenticated: its work names nobody
        return None
    user = find_user(session, requested)
    membership = org_membership(session, account.org_id, user.id) if user is not None else None
    if membership is None:
        user = None  # no one, or another organization's user only: nobody here, as answered
    active = False
    if user is not None and membership is not None:
        active = membership.active
        if account.scope == "team" and account.team_id is not None:
            active = active and user_team_membership(session, account.team_id, user.id) is not None
    return policy.decide_attribution(
        account=principal_facts(session, actor, account.org_id),
        requested=requested,
        user_id=user.id if user else None,
        user_active_in_scope=active,
    )
