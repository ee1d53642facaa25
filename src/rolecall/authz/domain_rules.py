"""ACCESS.md rules that are not permissions: pure checks the services apply.

The last-admin guard, the shared-identity rule, the private-only visibility rule, the run-move
rule, the project-role rules, the key-minting rule and service-account attribution. Each
returns a ``RuleViolation`` (or an ``Attribution``) naming its rule, so errors and traces say
which rule spoke. Re-exported by ``policy``.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from rolecall.authz.facts import CredentialKind, PrincipalFacts, RoleFacts
from rolecall.authz.permissions import Permission
from rolecall.authz.roles import Visibility
from rolecall.authz.trace import TraceStep

RULE_LAST_ADMIN = "org.last_admin"
RULE_SHARED_IDENTITY = "user.shared_identity"
RULE_PRIVATE_ONLY = "team.private_only"
RULE_RUN_MOVE = "run.move_out_of_restricted"
RULE_VIEWER_PROJECT_ROLE = "project_role.viewer_fixed"
RULE_CREDENTIAL_MINT = "credential.mint"
RULE_ATTRIBUTION = "attribution"


class RuleViolation(NamedTuple):
    rule: str
    message: str


def check_last_admin(
    *, is_active_admin: bool, stays_active_admin: bool, active_admin_count: int
) -> RuleViolation | None:
    """The last active org admin cannot be demoted, deactivated, removed or deleted (ours)."""
    if is_active_admin and not stays_active_admin and active_admin_count <= 1:
        return RuleViolation(
            RULE_LAST_ADMIN,
            "this is the organization's last active admin: make another user an admin first",
        )
    return None


def check_identity_change(*, other_organizations: int) -> RuleViolation | None:
    """A user's identity (email, login name, username, names: one ``User`` for every
    organization it belongs to) is changed by an organization only while the user belongs to
    no other: one organization's admin or identity provider must not re-address or rename a
    user another organization also holds (ours; the seeds keep deactivation, which would
    reach every organization, out of multi-organization SCIM for the same reason). Its role,
    seats, activity and external id stay each organization's own."""
    if other_organizations > 0:
        return RuleViolation(
            RULE_SHARED_IDENTITY,
            "this user belongs to other organizations too: its email, userName, username and "
            "names are shared with them, and are not changed from one of them",
        )
    return None


def check_visibility_change(
    *, private_only: bool, current: Visibility | None, new: Visibility
) -> RuleViolation | None:
    """A private-only team cannot create projects as, or change projects to, open or public.

    Projects already open or public keep their scope, and may keep it (ours).
    """
    if private_only and new in (Visibility.OPEN, Visibility.PUBLIC) and current is not new:
        return RuleViolation(
            RULE_PRIVATE_ONLY,
            f"team makes all projects private: {new.value} visibility is not allowed",
        )
    return None


def check_run_move(*, source: Visibility, destination: Visibility) -> RuleViolation | None:
    """Runs may move into a restricted project, never out of one."""
    if source is Visibility.RESTRICTED:
        return RuleViolation(RULE_RUN_MOVE, "runs cannot be moved out of a restricted project")
    return None


def check_project_role_assignable(team_role: RoleFacts | None) -> RuleViolation | None:
    """A member whose team role is viewer cannot be given a project role."""
    if team_role is not None and team_role.is_viewer:
        return RuleViolation(
            RULE_VIEWER_PROJECT_ROLE,
            "members with the view-only team role cannot be given a project role",
        )
    return None


def check_key_mint(
    *,
    credential: CredentialKind,
    credential_scopes: frozenset[Permission] | None,
    credential_expires_at: datetime | None,
    scopes: frozenset[Permission] | None,
    expires_at: datetime | None,
    for_itself: bool = True,
) -> RuleViolation | None:
    """A credential makes no API key that outranks or outlives it (ours): not for its own
    principal, not for a service account it manages (``for_itself`` false), nor shows it one.

    - An access token from identity federation makes none for itself: federation's credentials
      are short lived by design (the seeds: JWTs "address the shortcomings of long-lived
      credentials like API keys"), and a token may not use ``org:manage_auth``, which a key of
      its owner could. A service account's key acts with the account's rights, so a token may
      make one, within its own life as below.
    - A scoped key makes keys limited to its own scopes (``scopes`` ``None``: unscoped), so it
      cannot widen itself, or reach through an account what it may not do itself.
    - An expiring credential makes keys that expire by the time it does (``expires_at``
      ``None``: never).
    """
    if for_itself and credential is CredentialKind.ACCESS_TOKEN:
        return RuleViolation(
            RULE_CREDENTIAL_MINT,
            "an access token from identity federation cannot create API keys: its credentials "
            "are short-lived by design; sign in with a password, SSO or an API key to make one",
        )
    if credential_scopes is not None and (scopes is None or not scopes <= credential_scopes):
        return RuleViolation(
            RULE_CREDENTIAL_MINT,
            "a scoped API key may only create keys limited to its own scopes: "
            + ", ".join(sorted(credential_scopes)),
        )
    ends = credential_expires_at
    if ends is not None and (expires_at is None or expires_at > ends):
        what = "access token" if credential is CredentialKind.ACCESS_TOKEN else "API key"
        return RuleViolation(
            RULE_CREDENTIAL_MINT,
            f"this {what} expires at {ends.isoformat()}: the keys it creates must expire by "
            "then (give expires_in)",
        )
    return None


def override_after_change(team_role_key: str | None, project_role_key: str | None) -> str | None:
    """An override equal to the team role returns to tracking (``None``)."""
    if project_role_key is None or project_role_key == team_role_key:
        return None
    return project_role_key


class Attribution(NamedTuple):
    user_id: str | None
    honoured: bool
    step: TraceStep


def decide_attribution(
    *,
    account: PrincipalFacts,
    requested: str | None,
    user_id: str | None,
    user_active_in_scope: bool,
) -> Attribution:
    """Attribute a service account's work to a named human, when allowed (ours).

    Honoured only when the named user is an active member of the account's parent team
    (team-scoped) or org (org-scoped); otherwise the work stays the account's and the step says
    why.
    """
    scope = "team" if account.sa_scope == "team" else "organization"
    if not requested:
        return Attribution(None, False, TraceStep(RULE_ATTRIBUTION, "skip", "no user named"))
    if user_id is None:
        return Attribution(
            None,
            False,
            TraceStep(
                RULE_ATTRIBUTION, "deny", f"no user {requested!r}; attributed to the account"
            ),
        )
    if not user_active_in_scope:
        return Attribution(
            None,
            False,
            TraceStep(
                RULE_ATTRIBUTION,
                "deny",
                f"{requested} is not an active member of the account's {scope}; "
                "attributed to the account",
            ),
        )
    return Attribution(
        user_id, True, TraceStep(RULE_ATTRIBUTION, "allow", f"attributed to {requested}")
    )
