"""The access policy of ACCESS.md as pure functions.

``decide`` answers ``can(principal, permission, target)`` and returns a ``Decision`` whose trace
names, step by step, the rule that granted, capped or denied. Each rule is one function below, in
ACCESS.md's order; no SQL, no I/O, no clock. The HTTP check endpoint, ``rolecall explain`` and
every service guard share ``decide``.

Rule names in traces are stable identifiers (tests and API clients match on them).

Speed: a decision must take a few microseconds (issue 2: < 5 µs median), so the rules work on
permission masks (ints, see ``permissions.PERMISSION_BITS``) rather than frozensets, trace details
are rendered only when read, and hot-path enum members are bound to module names below.
"""

from __future__ import annotations

from collections.abc import Callable

from rolecall.authz import roles
from rolecall.authz.facts import (
    CredentialKind,
    DecisionFacts,
    MembershipFacts,
    PrincipalFacts,
    PrincipalKind,
    ProjectFacts,
)
from rolecall.authz.permissions import (
    ALL_PERMISSIONS_MASK,
    MODELS_PERMISSIONS,
    ORG_PERMISSIONS,
    PERMISSION_BITS,
    PROJECT_PERMISSIONS,
    TEAM_PERMISSIONS,
    WEAVE_PERMISSIONS,
    Permission,
    mask_of,
    permissions_of,
)
from rolecall.authz.roles import (
    OPEN_AUTHENTICATED,
    ORG_ADMIN_PROJECT_EXTRAS,
    ORG_ADMIN_TEAM_EXTRAS,
    OWNER_EXTRAS,
    RESTRICTED_TEAM_ADMIN,
    WRITES,
    OrgRole,
    SeatType,
    Visibility,
)
from rolecall.authz.trace import RULE_RESULT, Decision, TraceStep, _decision, _step

P = Permission
Perms = frozenset[Permission]
EMPTY: Perms = frozenset()


def _note(
    trace: list[TraceStep], rule: str, outcome: str, affects: int, why: str, *args: object
) -> None:
    """Append a step; ``args`` are formatted into ``why`` only when its detail is read."""
    trace.append(_step((rule, outcome, why, args, affects)))


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
RULE_TARGET_SCOPE = "target.scope"
_PRINCIPAL_DENIALS = frozenset({RULE_DEACTIVATED, RULE_DELETED})

#: Which permissions each credential kind may use at all (default deny: unlisted kinds get
#: nothing). Federated access tokens may not change the auth setup that trusts them (ours).
CREDENTIAL_PERMISSIONS: dict[CredentialKind, Perms] = {
    CredentialKind.SESSION: frozenset(Permission),
    CredentialKind.API_KEY: frozenset(Permission),
    CredentialKind.LOCAL: frozenset(Permission),
    CredentialKind.ACCESS_TOKEN: frozenset(Permission) - {P.ORG_MANAGE_AUTH},
    CredentialKind.NONE: roles.READS,
}

# Role and product sets (roles.py, permissions.py) as masks, for the rules below.
_ALL = ALL_PERMISSIONS_MASK
_READS = mask_of(roles.READS)
_WRITES = mask_of(WRITES)
_VIEWER = mask_of(roles.VIEWER)
_MEMBER = mask_of(roles.MEMBER)
_ADMIN = mask_of(roles.ADMIN)
_ORG_ADMIN = mask_of(roles.ORG_ADMIN)
_ORG_MEMBER = mask_of(roles.ORG_MEMBER)
_OPEN_AUTHENTICATED = mask_of(OPEN_AUTHENTICATED)
_ORG_ADMIN_PROJECT_EXTRAS = mask_of(ORG_ADMIN_PROJECT_EXTRAS)
_ORG_ADMIN_TEAM_EXTRAS = mask_of(ORG_ADMIN_TEAM_EXTRAS)
_OWNER_EXTRAS = mask_of(OWNER_EXTRAS)
_RESTRICTED_TEAM_ADMIN = mask_of(RESTRICTED_TEAM_ADMIN)
_JOIN_RESTRICTED = PERMISSION_BITS[P.PROJECT_JOIN_RESTRICTED]
_MODELS = mask_of(MODELS_PERMISSIONS)
_WEAVE = mask_of(WEAVE_PERMISSIONS)
_ORG_SCOPE = mask_of(ORG_PERMISSIONS)
_TEAM_SCOPE = mask_of(TEAM_PERMISSIONS)
_PROJECT_SCOPE = mask_of(PROJECT_PERMISSIONS)
_CREDENTIAL_MASKS = {kind: mask_of(perms) for kind, perms in CREDENTIAL_PERMISSIONS.items()}

# Enum members looked up on the hot path: a module global is several times cheaper to reach
# than an attribute of an enum class.
_USER = PrincipalKind.USER
_SERVICE_ACCOUNT = PrincipalKind.SERVICE_ACCOUNT
_ANONYMOUS = PrincipalKind.ANONYMOUS
_OPERATOR = PrincipalKind.OPERATOR
_ORG_ROLE_ADMIN = OrgRole.ADMIN
_ORG_ROLE_VIEWER = OrgRole.VIEWER
_SEAT_FULL = SeatType.FULL
_SEAT_NONE = SeatType.NONE
_OPEN = Visibility.OPEN
_PUBLIC = Visibility.PUBLIC
_TEAM = Visibility.TEAM
_RESTRICTED = Visibility.RESTRICTED


# --- step 1: who may be considered at all -----------------------------------------------------


def rule_principal_active(principal: PrincipalFacts) -> TraceStep | None:
    """A deactivated user or a deleted service account holds no permission at all."""
    kind, name = principal.kind, principal.name
    if kind is _USER and principal.org_role is not None and not principal.org_active:
        return _step((RULE_DEACTIVATED, "deny", "user {0} is deactivated", (name,), _ALL))
    if kind is _SERVICE_ACCOUNT and principal.sa_deleted:
        return _step((RULE_DELETED, "deny", "service account {0} is deleted", (name,), _ALL))
    return None


def _is_org_admin(facts: DecisionFacts) -> bool:
    p = facts.principal
    return p.kind is _USER and p.org_role is _ORG_ROLE_ADMIN and p.org_active


def _in_org(facts: DecisionFacts) -> bool:
    p = facts.principal
    if p.kind is _USER:
        return p.org_role is not None
    return p.kind is _SERVICE_ACCOUNT and p.sa_org_id == facts.org.id


def _is_org_service_account_of(p: PrincipalFacts, org_id: str) -> bool:
    return p.kind is _SERVICE_ACCOUNT and p.sa_scope == "org" and p.sa_org_id == org_id


# --- step 2: the base role --------------------------------------------------------------------


def rule_base_role(facts: DecisionFacts, trace: list[TraceStep]) -> int:
    """Work out the principal's role (as a mask) in the target project's (or team's) team."""
    p = facts.principal
    if p.kind is _ANONYMOUS:
        _note(trace, RULE_NO_BASE_ROLE, "skip", 0, "anonymous: no role in any team")
        return 0
    team = facts.team
    assert team is not None
    if team.kind == "personal" and p.kind is _USER and p.id == team.personal_owner_id:
        _note(trace, RULE_PERSONAL_OWNER, "grant", _ADMIN, "{0} owns {1}", p.name, team.name)
        return _ADMIN
    project = facts.project
    if project is not None and project.visibility is _RESTRICTED:
        return _restricted_base(facts, project, trace)
    membership = facts.membership
    role = membership.team_role
    if role is not None:
        why = "team role {0} in {1}"
        trace.append(_step((RULE_TEAM_ROLE, "grant", why, (role.name, team.name), role.mask)))
        if project is None or membership.project_role is None:
            return role.mask
        if project.visibility is _TEAM:
            return _apply_project_role(membership, role.mask, trace)
        why = "project roles apply in team and restricted projects, not in {0} {1}"
        _note(trace, RULE_PROJECT_OVERRIDE, "skip", 0, why, project.visibility, project.name)
        return role.mask
    if team.kind == "team" and _is_org_service_account_of(p, team.org_id):
        why = "org-scoped service account {0} acts as member of {1}"
        _note(trace, RULE_ORG_SERVICE_ACCOUNT, "grant", _MEMBER, why, p.name, team.name)
        return _MEMBER
    _note(trace, RULE_NO_BASE_ROLE, "skip", 0, "{0} is not a member of {1}", p.name, team.name)
    return 0


def _apply_project_role(membership: MembershipFacts, base: int, trace: list[TraceStep]) -> int:
    """A project-role override replaces the team role (ACCESS.md, project-level roles)."""
    override = membership.project_role
    if override is None:
        return base
    team_role = membership.team_role
    if team_role is not None and team_role.is_viewer:
        # A view-only member cannot be given a project role; a stale one is ignored.
        why = "team role viewer: project role {0} does not apply"
        _note(trace, RULE_PROJECT_OVERRIDE, "skip", 0, why, override.name)
        return base
    why = "project role {0} overrides the team role"
    _note(trace, RULE_PROJECT_OVERRIDE, "grant", base | override.mask, why, override.name)
    return override.mask


def _restricted_base(facts: DecisionFacts, project: ProjectFacts, trace: list[TraceStep]) -> int:
    """Restricted projects: only invited project members, with their override if any."""
    p, membership = facts.principal, facts.membership
    if not membership.project_member:
        why = "not an invited member"
        if p.kind is _SERVICE_ACCOUNT:
            why = "service accounts reach a restricted project only when added to it"
        _note(
            trace, RULE_RESTRICTED_MEMBERSHIP, "skip", 0, "{0} is restricted: " + why, project.name
        )
        return 0
    team_role = membership.team_role
    if team_role is not None:
        base, why = team_role.mask, f"with team role {team_role.name}"
    elif _is_org_service_account_of(p, project.team.org_id):
        base, why = _MEMBER, "as an org-scoped service account: acts as member"
    else:
        # An invited user must also be in the team; a team-scoped service account of another
        # team never reaches this team's restricted projects.
        why = "invited to {0} but not a member of its team"
        _note(trace, RULE_RESTRICTED_MEMBERSHIP, "skip", 0, why, project.name)
        return 0
    _note(trace, RULE_RESTRICTED_MEMBERSHIP, "grant", base, "invited to {0} {1}", project.name, why)
    return _apply_project_role(membership, base, trace)


def rule_visibility(facts: DecisionFacts, mask: int, trace: list[TraceStep]) -> int:
    """Visibility grants (ACCESS.md, visibility scopes) on top of the base role."""
    project = facts.project
    if project is None or project.visibility is _TEAM:
        return mask
    visibility = project.visibility
    # Open and public grants reach everyone, members included (a team viewer may still submit
    # to an open project, as any authenticated principal may).
    if visibility is _OPEN:
        grant, why = _OPEN_AUTHENTICATED, "{0} is open: authenticated principals view and submit"
        if facts.principal.kind is _ANONYMOUS:
            grant, why = _VIEWER, "{0} is open: anyone reads"
        if grant & ~mask:
            _note(trace, RULE_OPEN, "grant", grant & ~mask, why, project.name)
        return mask | grant
    if visibility is _PUBLIC:
        if _VIEWER & ~mask:
            why = "{0} is public: anyone reads"
            _note(trace, RULE_PUBLIC, "grant", _VIEWER & ~mask, why, project.name)
        return mask | _VIEWER
    team_role = facts.membership.team_role
    if not mask and team_role is not None and team_role.mask & _JOIN_RESTRICTED:
        why = "team admin sees that {0} exists and may join it; nothing inside until then (ours)"
        _note(trace, RULE_RESTRICTED_TEAM_ADMIN, "grant", _RESTRICTED_TEAM_ADMIN, why, project.name)
        return _RESTRICTED_TEAM_ADMIN
    return mask


# --- step 3: caps -----------------------------------------------------------------------------


def rule_caps(facts: DecisionFacts, mask: int, trace: list[TraceStep]) -> int:
    """Org viewer role caps to reads; each product seat caps that product's permissions."""
    p = facts.principal
    if not mask or p.org_role is None or p.kind is not _USER:
        return mask
    if p.org_role is _ORG_ROLE_VIEWER and mask & _WRITES:
        _note(trace, RULE_CAP_ORG_VIEWER, "cap", mask & _WRITES, "org viewer: reads only")
        mask &= _READS
    if p.models_seat is not _SEAT_FULL:
        mask = _seat_cap(mask, p.models_seat, _MODELS, RULE_CAP_MODELS_SEAT, "Models", trace)
    if p.weave_seat is not _SEAT_FULL:
        mask = _seat_cap(mask, p.weave_seat, _WEAVE, RULE_CAP_WEAVE_SEAT, "Weave", trace)
    return mask


def _seat_cap(
    mask: int, seat: SeatType, product: int, rule: str, label: str, trace: list[TraceStep]
) -> int:
    """A ``viewer`` seat removes the product's writes; ``none`` removes all of it."""
    removed = mask & product if seat is _SEAT_NONE else mask & product & _WRITES
    if removed:
        _note(trace, rule, "cap", removed, "{0} seat {1}: removes {2}", label, seat, removed)
    return mask & ~removed


# --- steps 4-6: extras and the personal-entity switch -----------------------------------------


def rule_org_admin_extras(facts: DecisionFacts, mask: int, trace: list[TraceStep]) -> int:
    """Org admins manage every project and team of their org; data only through membership."""
    team = facts.team
    if facts.principal.org_role is not _ORG_ROLE_ADMIN or not _is_org_admin(facts):
        return mask
    if team is None or team.org_id != facts.org.id:
        return mask
    if facts.project is not None:
        extras = _ORG_ADMIN_PROJECT_EXTRAS  # every project of the org, personal ones included
    elif team.kind == "team":
        extras = _ORG_ADMIN_TEAM_EXTRAS
    else:
        return mask  # a personal entity is not a team to manage
    if extras & ~mask:
        _note(
            trace, RULE_ORG_ADMIN_EXTRAS, "grant", extras & ~mask, "org admin: {0}", extras & ~mask
        )
    return mask | extras


def rule_owner_extras(facts: DecisionFacts, mask: int, trace: list[TraceStep]) -> int:
    """A project's owner may update it and manage its access (not as an org viewer), while it
    belongs to the project's team and organization.

    A restricted project whose owner left its team is managed by admins only until a team admin
    sets a new owner (ours); an owner who left the team of any other project has no extras
    there either (ours).
    """
    p, project = facts.principal, facts.project
    if project is None or p.id is None or p.id != project.owner_user_id or p.kind is not _USER:
        return mask
    if p.org_role is _ORG_ROLE_VIEWER:
        _note(
            trace, RULE_OWNER_EXTRAS, "skip", _OWNER_EXTRAS, "org viewer: reads only, owner or not"
        )
        return mask
    # An owner who left the project's team (or its organization) keeps the title, not the
    # extras: it is "anyone else" now, and must not go on changing who sees the project (ours).
    # A restricted project is flagged until a team admin sets a new owner.
    left = not _in_org(facts) or (
        project.team.kind == "team" and facts.membership.team_role is None
    )
    if project.owner_needed or left:
        why = "the owner left the team: admins manage {0} until a new owner is set (ours)"
        _note(trace, RULE_OWNER_EXTRAS, "skip", _OWNER_EXTRAS, why, project.name)
        return mask
    if _OWNER_EXTRAS & ~mask:
        added = _OWNER_EXTRAS & ~mask
        _note(trace, RULE_OWNER_EXTRAS, "grant", added, "project owner: {0}", added)
    return mask | _OWNER_EXTRAS


def rule_personal_entity(facts: DecisionFacts, mask: int, trace: list[TraceStep]) -> int:
    """With GORILLA_DISABLE_PERSONAL_ENTITY: no new personal projects, no writes; reads stay."""
    team = facts.team
    if not facts.instance.disable_personal_entity or team is None or team.kind != "personal":
        return mask
    if mask & _WRITES:
        why = "GORILLA_DISABLE_PERSONAL_ENTITY: personal entities are read-only"
        _note(trace, RULE_PERSONAL_DISABLED, "cap", mask & _WRITES, why)
    return mask & _READS


def rule_credential(principal: PrincipalFacts, mask: int, trace: list[TraceStep]) -> int:
    """The credential's own limits: its kind's table, then an API key's scopes."""
    allowed = _CREDENTIAL_MASKS.get(principal.credential, 0)
    if mask & ~allowed:
        removed = mask & ~allowed
        why = "{0} credentials may not use {1}"
        _note(trace, RULE_CREDENTIAL_KIND, "cap", removed, why, principal.credential, removed)
        mask &= allowed
    scopes = principal.key_scope_mask
    if scopes is not None and mask & ~scopes:
        _note(trace, RULE_KEY_SCOPES, "cap", mask & ~scopes, "API key scoped to {0}", scopes)
        mask &= scopes
    return mask


# --- the decision -----------------------------------------------------------------------------


def _effective_mask(facts: DecisionFacts, trace: list[TraceStep]) -> int:
    principal = facts.principal
    if principal.kind is _OPERATOR:
        _note(trace, RULE_OPERATOR, "grant", _ALL, "the server host's operator")
        return _ALL
    denied = rule_principal_active(principal)
    if denied is not None:
        trace.append(denied)
        return 0
    if facts.project is None and facts.team is None:
        mask = _org_permissions(facts, trace)
    else:
        mask = rule_base_role(facts, trace)
        mask = rule_visibility(facts, mask, trace)
        mask = rule_caps(facts, mask, trace)
        mask = rule_org_admin_extras(facts, mask, trace)
        mask = rule_owner_extras(facts, mask, trace)
        mask = rule_personal_entity(facts, mask, trace)
        # Team-level grants (team:update...) are decided on the team, not on its projects.
        mask &= _PROJECT_SCOPE if facts.project is not None else _TEAM_SCOPE
    return rule_credential(principal, mask, trace)


def effective_permissions(facts: DecisionFacts, trace: list[TraceStep]) -> Perms:
    """Every permission the principal holds on the target, recording each rule applied."""
    return permissions_of(_effective_mask(facts, trace))


def _org_permissions(facts: DecisionFacts, trace: list[TraceStep]) -> int:
    """On the org itself: org admins administer it, its members and accounts read it (ours)."""
    name = facts.principal.name
    if _is_org_admin(facts):
        _note(trace, RULE_ORG_ADMIN, "grant", _ORG_ADMIN, "{0} is an org admin", name)
        return _ORG_ADMIN
    if _in_org(facts):
        _note(trace, RULE_ORG_MEMBER, "grant", _ORG_MEMBER, "{0} belongs to the org", name)
        return _ORG_MEMBER
    _note(trace, RULE_OTHER_ORG, "skip", 0, "{0} is not in this org", name)
    return 0


def rule_admin_self_join(facts: DecisionFacts, permission: Permission) -> TraceStep | None:
    """With GORILLA_DISABLE_ADMIN_TEAM_ACCESS, an org admin may not add itself to a team."""
    if (
        permission is P.TEAM_MANAGE_MEMBERS
        and facts.instance.disable_admin_team_access
        and facts.membership.team_role is None
        and _is_org_admin(facts)
    ):
        why = "GORILLA_DISABLE_ADMIN_TEAM_ACCESS: org admins may not add themselves to teams"
        return _step((RULE_ADMIN_SELF_JOIN, "deny", why, (), PERMISSION_BITS[permission]))
    return None


# Every decision ends with one of these; immutable, so they are built once.
_ALLOW_STEPS = {p: TraceStep(RULE_RESULT, "allow", f"{p.value} granted") for p in Permission}
_DENY_STEPS = {p: TraceStep(RULE_RESULT, "deny", f"{p.value} not granted") for p in Permission}


def _target_scope(facts: DecisionFacts) -> tuple[int, str]:
    if facts.project is not None:
        return _PROJECT_SCOPE, "a project"
    if facts.team is not None:
        return _TEAM_SCOPE, "a team"
    return _ORG_SCOPE, "an organization"


def decide(
    facts: DecisionFacts, permission: Permission, *, acting_on_self: bool = False
) -> Decision:
    """Decide ``permission`` on the facts' target; the trace names every rule applied.

    ``acting_on_self``: the operation adds the principal itself to a team (checked against
    GORILLA_DISABLE_ADMIN_TEAM_ACCESS).

    Raises ``KeyError`` for a permission outside the catalogue.
    """
    trace: list[TraceStep] = []
    mask = _effective_mask(facts, trace)
    bit = PERMISSION_BITS[permission]
    if mask & bit:
        denied = rule_admin_self_join(facts, permission) if acting_on_self else None
        if denied is not None:
            trace.append(denied)
            return _decision((False, permission, tuple(trace)))
        trace.append(_ALLOW_STEPS[permission])
        return _decision((True, permission, tuple(trace)))
    scope, target = _target_scope(facts)
    # A deactivated or deleted principal's own rule stays the deciding one.
    if not scope & bit and trace[0].rule not in _PRINCIPAL_DENIALS:
        why = "{0} is not decided on {1}"
        _note(trace, RULE_TARGET_SCOPE, "deny", bit, why, permission, target)
    trace.append(_DENY_STEPS[permission])
    return _decision((False, permission, tuple(trace)))


# The domain rules that are not permissions live in ``domain_rules`` and are re-exported here,
# so every ACCESS.md rule is reachable from this one module.
from rolecall.authz.domain_rules import (  # noqa: E402
    RULE_ATTRIBUTION,
    RULE_CREDENTIAL_MINT,
    RULE_LAST_ADMIN,
    RULE_PRIVATE_ONLY,
    RULE_RUN_MOVE,
    RULE_SHARED_IDENTITY,
    RULE_VIEWER_PROJECT_ROLE,
    Attribution,
    RuleViolation,
    check_identity_change,
    check_key_mint,
    check_last_admin,
    check_project_role_assignable,
    check_run_move,
    check_visibility_change,
    decide_attribution,
    override_after_change,
)

__all__ = [
    "RULE_ATTRIBUTION",
    "RULE_CREDENTIAL_MINT",
    "RULE_LAST_ADMIN",
    "RULE_PRIVATE_ONLY",
    "RULE_RUN_MOVE",
    "RULE_SHARED_IDENTITY",
    "RULE_VIEWER_PROJECT_ROLE",
    "Attribution",
    "Decision",
    "RuleViolation",
    "TraceStep",
    "check_identity_change",
    "check_key_mint",
    "check_last_admin",
    "check_project_role_assignable",
    "check_run_move",
    "check_visibility_change",
    "decide",
    "decide_attribution",
    "override_after_change",
]

PolicyFn = Callable[[DecisionFacts, Permission], Decision]
