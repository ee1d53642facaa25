"""The access policy of ACCESS.md as pure functions.

``decide`` answers ``can(principal, permission, target)`` and returns a ``Decision`` whose trace
names, step by step, the rule that granted, capped or denied. Each rule is one function below, in
ACCESS.md's order; no SQL, no I/O, no clock. The HTTP check endpoint, ``rolecall explain`` and
every service guard share ``decide``.

Rule names in traces are stable identifiers (tests and API clients match on them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from rolecall.authz import roles
from rolecall.authz.facts import (
    CredentialKind,
    DecisionFacts,
    PrincipalFacts,
    PrincipalKind,
    RoleFacts,
)
from rolecall.authz.permissions import (
    ORG_PERMISSIONS,
    PROJECT_PERMISSIONS,
    MODELS_OBJECTS,
    WEAVE_OBJECTS,
    Permission,
)
from rolecall.authz.roles import OrgRole, SeatType, TeamRole, Visibility

P = Permission
Perms = frozenset[Permission]
EMPTY: Perms = frozenset()


class TraceStep(NamedTuple):
    """One step of a decision: which rule, what it did, and why."""

    rule: str
    outcome: str  # grant | cap | deny | allow | skip
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "outcome": self.outcome, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    permission: Permission
    trace: tuple[TraceStep, ...]

    @property
    def deciding_rule(self) -> str:
        """The rule that decided: the last deny or cap that removed the permission, or the
        last grant that gave it."""
        wanted = "grant" if self.allowed else "deny"
        for step in reversed(self.trace):
            if step.outcome == wanted:
                return step.rule
        return self.trace[-1].rule if self.trace else "none"

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "permission": self.permission.value,
            "rule": self.deciding_rule,
            "trace": [step.as_dict() for step in self.trace],
        }


# --- rule names -------------------------------------------------------------------------------

RULE_OPERATOR = "principal.operator"
RULE_DEACTIVATED = "principal.deactivated"
RULE_DELETED = "principal.deleted"
RULE_OTHER_ORG = "principal.other_org"
RULE_ORG_MEMBER = "org.member"
RULE_ORG_ADMIN = "org.admin"
RULE_TEAM_ROLE = "base.team_role"
RULE_PROJECT_OVERRIDE = "base.project_role_override"
RULE_RESTRICTED_MEMBERSHIP = "base.restricted_membership"
RULE_PERSONAL_OWNER = "base.personal_owner"
RULE_ORG_SERVICE_ACCOUNT = "base.org_service_account"
RULE_NO_BASE_ROLE = "base.none"
RULE_OPEN = "visibility.open"
RULE_PUBLIC = "visibility.public"
RULE_RESTRICTED_TEAM_ADMIN = "visibility.restricted_team_admin"
RULE_CAP_ORG_VIEWER = "cap.org_viewer"
RULE_CAP_MODELS_SEAT = "cap.models_seat"
RULE_CAP_WEAVE_SEAT = "cap.weave_seat"
RULE_ORG_ADMIN_EXTRAS = "extra.org_admin"
RULE_OWNER_EXTRAS = "extra.project_owner"
RULE_PERSONAL_DISABLED = "personal_entity.disabled"
RULE_ADMIN_SELF_JOIN = "org_admin.self_join_disabled"
RULE_CREDENTIAL_KIND = "credential.kind"
RULE_KEY_SCOPES = "credential.key_scopes"
RULE_RESULT = "result"

#: Which permissions each credential kind may use at all (default deny: unlisted kinds get
#: nothing). Federated access tokens may not change the auth setup that trusts them (ours).
CREDENTIAL_PERMISSIONS: dict[CredentialKind, Perms] = {
    CredentialKind.SESSION: frozenset(Permission),
    CredentialKind.API_KEY: frozenset(Permission),
    CredentialKind.LOCAL: frozenset(Permission),
    CredentialKind.ACCESS_TOKEN: frozenset(Permission) - {P.ORG_MANAGE_AUTH},
    CredentialKind.NONE: roles.READS,
}

OPEN_AUTHENTICATED: Perms = roles.VIEWER | {P.RUN_CREATE, P.REPORT_CREATE}
ORG_ADMIN_PROJECT_EXTRAS: Perms = frozenset(
    {P.PROJECT_READ, P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS}
)
#: ACCESS.md names manage_members and update; managing a team's service accounts follows from
#: "team-scoped service accounts are created by a team admin (or org admin)".
ORG_ADMIN_TEAM_EXTRAS: Perms = frozenset(
    {P.TEAM_READ, P.TEAM_MANAGE_MEMBERS, P.TEAM_UPDATE, P.TEAM_MANAGE_SERVICE_ACCOUNTS}
)
OWNER_EXTRAS: Perms = frozenset({P.PROJECT_UPDATE, P.PROJECT_MANAGE_ACCESS})
RESTRICTED_TEAM_ADMIN: Perms = frozenset({P.PROJECT_READ, P.PROJECT_JOIN_RESTRICTED})
MODELS_PERMS: Perms = frozenset(p for p in Permission if p.object in MODELS_OBJECTS)
WEAVE_PERMS: Perms = frozenset(p for p in Permission if p.object in WEAVE_OBJECTS)
WRITES: Perms = frozenset(Permission) - roles.READS


def _names(perms: Perms) -> str:
    return ", ".join(sorted(perms)) if perms else "nothing"


# --- step 1: who may be considered at all -----------------------------------------------------


def rule_principal_active(principal: PrincipalFacts) -> TraceStep | None:
    """A deactivated user or a deleted service account holds no permission at all."""
    if principal.kind is PrincipalKind.USER and principal.org_role is not None:
        if not principal.org_active:
            return TraceStep(RULE_DEACTIVATED, "deny", f"user {principal.name} is deactivated")
    if principal.kind is PrincipalKind.SERVICE_ACCOUNT and principal.sa_deleted:
        return TraceStep(RULE_DELETED, "deny", f"service account {principal.name} is deleted")
    return None


def _is_org_admin(facts: DecisionFacts) -> bool:
    p = facts.principal
    return p.kind is PrincipalKind.USER and p.org_role is OrgRole.ADMIN and p.org_active


def _in_org(facts: DecisionFacts) -> bool:
    p = facts.principal
    if p.kind is PrincipalKind.USER:
        return p.org_role is not None
    if p.kind is PrincipalKind.SERVICE_ACCOUNT:
        return p.sa_org_id == facts.org.id
    return False


# --- step 2: the base role --------------------------------------------------------------------


def rule_base_role(facts: DecisionFacts, trace: list[TraceStep]) -> Perms:
    """Work out the principal's role in the target project's (or team's) team."""
    p, m, project, team = facts.principal, facts.membership, facts.project, facts.team
    if p.is_anonymous:
        trace.append(TraceStep(RULE_NO_BASE_ROLE, "skip", "anonymous: no role in any team"))
        return EMPTY
    assert team is not None
    if team.kind == "personal" and p.kind is PrincipalKind.USER and p.id == team.personal_owner_id:
        trace.append(
            TraceStep(RULE_PERSONAL_OWNER, "grant", f"{p.name} owns personal entity {team.name}")
        )
        return roles.ADMIN
    if project is not None and project.visibility is Visibility.RESTRICTED:
        return _restricted_base(facts, trace)
    if m.team_role is not None:
        role = m.team_role
        trace.append(
            TraceStep(RULE_TEAM_ROLE, "grant", f"team role {role.name} in team {team.name}")
        )
        if project is not None and m.project_role is not None and not role.is_viewer:
            override = m.project_role
            trace.append(
                TraceStep(
                    RULE_PROJECT_OVERRIDE,
                    "grant",
                    f"project role {override.name} overrides team role {role.name}",
                )
            )
            return override.permissions
        return role.permissions
    if (
        p.kind is PrincipalKind.SERVICE_ACCOUNT
        and p.sa_scope == "org"
        and p.sa_org_id == team.org_id
        and team.kind == "team"
    ):
        trace.append(
            TraceStep(
                RULE_ORG_SERVICE_ACCOUNT,
                "grant",
                f"org-scoped service account {p.name} acts as member of team {team.name}",
            )
        )
        return roles.MEMBER
    trace.append(TraceStep(RULE_NO_BASE_ROLE, "skip", f"{p.name} is not a member of {team.name}"))
    return EMPTY


def _restricted_base(facts: DecisionFacts, trace: list[TraceStep]) -> Perms:
    """Restricted projects: only explicit project members, with their override if any."""
    p, m = facts.principal, facts.membership
    assert facts.project is not None
    name = facts.project.name
    if not m.project_member:
        why = "not an invited member"
        if p.kind is PrincipalKind.SERVICE_ACCOUNT:
            why = "service accounts reach a restricted project only when added to it"
        trace.append(TraceStep(RULE_RESTRICTED_MEMBERSHIP, "skip", f"{name} is restricted: {why}"))
        return EMPTY
    if m.project_role is not None and not (m.team_role is not None and m.team_role.is_viewer):
        role: RoleFacts = m.project_role
        detail = f"invited to restricted {name} with project role {role.name}"
    elif m.team_role is not None:
        role = m.team_role
        detail = f"invited to restricted {name}; project role tracks team role {role.name}"
    elif p.kind is PrincipalKind.SERVICE_ACCOUNT:
        # An org-scoped account added explicitly acts as a member there.
        role = RoleFacts(TeamRole.MEMBER.value, roles.MEMBER, TeamRole.MEMBER)
        detail = f"service account added to restricted {name}; acts as member"
    else:
        trace.append(
            TraceStep(RULE_RESTRICTED_MEMBERSHIP, "skip", f"invited to {name} but not in its team")
        )
        return EMPTY
    trace.append(TraceStep(RULE_RESTRICTED_MEMBERSHIP, "grant", detail))
    return role.permissions


def rule_visibility(facts: DecisionFacts, perms: Perms, trace: list[TraceStep]) -> Perms:
    """Visibility grants to those the base role gave nothing (ACCESS.md, visibility scopes)."""
    project = facts.project
    if project is None:
        return perms
    p = facts.principal
    # Open and public grants reach everyone, members included (a team viewer may still submit
    # to an open project, as any authenticated principal may).
    if project.visibility is Visibility.OPEN:
        grant = roles.VIEWER if p.is_anonymous else OPEN_AUTHENTICATED
        if grant - perms:
            who = "anyone reads" if p.is_anonymous else "authenticated principals view and submit"
            trace.append(TraceStep(RULE_OPEN, "grant", f"{project.name} is open: {who}"))
        return perms | grant
    if project.visibility is Visibility.PUBLIC:
        if roles.VIEWER - perms:
            trace.append(
                TraceStep(RULE_PUBLIC, "grant", f"{project.name} is public: anyone reads")
            )
        return perms | roles.VIEWER
    if project.visibility is Visibility.RESTRICTED and not perms:
        team_role = facts.membership.team_role
        if team_role is not None and TeamRole.ADMIN is team_role.predefined:
            trace.append(
                TraceStep(
                    RULE_RESTRICTED_TEAM_ADMIN,
                    "grant",
                    "team admin may see the restricted project exists and join it (ours)",
                )
            )
            return RESTRICTED_TEAM_ADMIN
    return perms


# --- step 3: caps -----------------------------------------------------------------------------


def rule_caps(facts: DecisionFacts, perms: Perms, trace: list[TraceStep]) -> Perms:
    """Org viewer role caps to reads; each product seat caps that product's permissions."""
    p = facts.principal
    if p.kind is not PrincipalKind.USER or p.org_role is None or not perms:
        return perms
    if p.org_role is OrgRole.VIEWER and perms - roles.READS:
        perms = perms & roles.READS
        trace.append(TraceStep(RULE_CAP_ORG_VIEWER, "cap", "org viewer: reads only"))
    perms = _seat_cap(perms, p.models_seat, MODELS_PERMS, RULE_CAP_MODELS_SEAT, "Models", trace)
    return _seat_cap(perms, p.weave_seat, WEAVE_PERMS, RULE_CAP_WEAVE_SEAT, "Weave", trace)


def _seat_cap(
    perms: Perms, seat: SeatType, product: Perms, rule: str, label: str, trace: list[TraceStep]
) -> Perms:
    if seat is SeatType.FULL:
        return perms
    removed = perms & product if seat is SeatType.NONE else perms & product & WRITES
    if removed:
        trace.append(TraceStep(rule, "cap", f"{label} seat {seat.value}: removes {_names(removed)}"))
        return perms - removed
    return perms


# --- steps 4-6: extras and the personal-entity switch -----------------------------------------


def rule_org_admin_extras(facts: DecisionFacts, perms: Perms, trace: list[TraceStep]) -> Perms:
    """Org admins manage every project and team of their org; data only through membership."""
    if not _is_org_admin(facts):
        return perms
    team = facts.team
    if team is None or team.org_id != facts.org.id or team.kind != "team":
        return perms
    extras = ORG_ADMIN_PROJECT_EXTRAS if facts.project is not None else ORG_ADMIN_TEAM_EXTRAS
    added = extras - perms
    if added:
        trace.append(TraceStep(RULE_ORG_ADMIN_EXTRAS, "grant", f"org admin: {_names(added)}"))
    return perms | extras


def rule_owner_extras(facts: DecisionFacts, perms: Perms, trace: list[TraceStep]) -> Perms:
    """A project's owner may update it and manage its access (not as an org viewer)."""
    p, project = facts.principal, facts.project
    if project is None or p.kind is not PrincipalKind.USER or p.id != project.owner_user_id:
        return perms
    if p.org_role is OrgRole.VIEWER:
        return perms
    added = OWNER_EXTRAS - perms
    if added:
        trace.append(TraceStep(RULE_OWNER_EXTRAS, "grant", f"project owner: {_names(added)}"))
    return perms | OWNER_EXTRAS


def rule_personal_entity(facts: DecisionFacts, perms: Perms, trace: list[TraceStep]) -> Perms:
    """With GORILLA_DISABLE_PERSONAL_ENTITY: no new personal projects, no writes; reads stay."""
    team = facts.team
    if not facts.instance.disable_personal_entity or team is None or team.kind != "personal":
        return perms
    removed = perms & WRITES
    if removed:
        trace.append(
            TraceStep(RULE_PERSONAL_DISABLED, "cap", "personal entities are read-only here")
        )
    return perms - removed


def rule_credential(
    principal: PrincipalFacts, perms: Perms, trace: list[TraceStep]
) -> Perms:
    """The credential's own limits: its kind's table, then an API key's scopes."""
    allowed = CREDENTIAL_PERMISSIONS.get(principal.credential, EMPTY)
    removed = perms - allowed
    if removed:
        trace.append(
            TraceStep(
                RULE_CREDENTIAL_KIND,
                "cap",
                f"{principal.credential.value} credentials may not use {_names(removed)}",
            )
        )
        perms = perms & allowed
    if principal.key_scopes is not None:
        removed = perms - principal.key_scopes
        if removed:
            trace.append(
                TraceStep(
                    RULE_KEY_SCOPES,
                    "cap",
                    f"API key scoped to {_names(principal.key_scopes)}",
                )
            )
            perms = perms & principal.key_scopes
    return perms


# --- the decision -----------------------------------------------------------------------------


def effective_permissions(facts: DecisionFacts, trace: list[TraceStep]) -> Perms:
    """Every permission the principal holds on the target, recording each rule applied."""
    if facts.principal.kind is PrincipalKind.OPERATOR:
        trace.append(TraceStep(RULE_OPERATOR, "grant", "the server host's operator"))
        return frozenset(Permission)
    denied = rule_principal_active(facts.principal)
    if denied is not None:
        trace.append(denied)
        return EMPTY
    if facts.project is None and facts.team is None:
        perms = _org_permissions(facts, trace)
    else:
        perms = rule_base_role(facts, trace)
        perms = rule_visibility(facts, perms, trace)
        perms = rule_caps(facts, perms, trace)
        perms = rule_org_admin_extras(facts, perms, trace)
        perms = rule_owner_extras(facts, perms, trace)
        perms = rule_personal_entity(facts, perms, trace)
        perms = perms & (PROJECT_PERMISSIONS if facts.project is not None else _TEAM_SCOPE)
    return rule_credential(facts.principal, perms, trace)


#: On a team target: team permissions and project creation (no project data).
_TEAM_SCOPE: Perms = frozenset(p for p in Permission if p not in ORG_PERMISSIONS) - (
    PROJECT_PERMISSIONS - {P.PROJECT_CREATE}
)


def _org_permissions(facts: DecisionFacts, trace: list[TraceStep]) -> Perms:
    if _is_org_admin(facts):
        trace.append(TraceStep(RULE_ORG_ADMIN, "grant", f"{facts.principal.name} is an org admin"))
        return roles.ORG_ADMIN
    if _in_org(facts):
        trace.append(
            TraceStep(RULE_ORG_MEMBER, "grant", f"{facts.principal.name} belongs to the org")
        )
        return roles.ORG_MEMBER
    trace.append(TraceStep(RULE_OTHER_ORG, "skip", f"{facts.principal.name} is not in this org"))
    return EMPTY


def decide(facts: DecisionFacts, permission: Permission, *, acting_on_self: bool = False) -> Decision:
    """Decide ``permission`` on the facts' target; the trace names every rule applied.

    ``acting_on_self``: the operation adds the principal itself to a team (checked against
    GORILLA_DISABLE_ADMIN_TEAM_ACCESS).
    """
    trace: list[TraceStep] = []
    perms = effective_permissions(facts, trace)
    allowed = permission in perms
    if (
        allowed
        and acting_on_self
        and permission is P.TEAM_MANAGE_MEMBERS
        and facts.instance.disable_admin_team_access
        and facts.membership.team_role is None
        and _is_org_admin(facts)
    ):
        trace.append(
            TraceStep(
                RULE_ADMIN_SELF_JOIN,
                "deny",
                "GORILLA_DISABLE_ADMIN_TEAM_ACCESS: org admins may not add themselves to teams",
            )
        )
        return Decision(False, permission, tuple(trace))
    if allowed:
        trace.append(TraceStep(RULE_RESULT, "allow", f"{permission.value} granted"))
    else:
        trace.append(TraceStep(RULE_RESULT, "deny", f"{permission.value} not granted"))
    return Decision(allowed, permission, tuple(trace))


# --- domain rules that are not permissions (still ACCESS.md rules, still pure) ----------------

RULE_LAST_ADMIN = "org.last_admin"
RULE_PRIVATE_ONLY = "team.private_only"
RULE_RUN_MOVE = "run.move_out_of_restricted"
RULE_VIEWER_PROJECT_ROLE = "project_role.viewer_fixed"
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
            TraceStep(RULE_ATTRIBUTION, "deny", f"no user {requested!r}; attributed to the account"),
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


PolicyFn = Callable[[DecisionFacts, Permission], Decision]
