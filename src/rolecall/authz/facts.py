"""Facts the policy decides on: frozen, loaded once per decision by ``authz.load``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from rolecall.authz.permissions import Permission, mask_of
from rolecall.authz.roles import OrgRole, SeatType, TeamRole, Visibility


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE_ACCOUNT = "service_account"
    ANONYMOUS = "anonymous"
    #: The server host's operator (CLI commands run on the host, such as ``init``).
    OPERATOR = "operator"


class CredentialKind(StrEnum):
    """How the request authenticated; limits which permissions it may use."""

    API_KEY = "api_key"
    SESSION = "session"
    ACCESS_TOKEN = "access_token"
    LOCAL = "local"  # the server host's own operator (CLI on the host, explain)
    NONE = "none"  # anonymous


@dataclass(frozen=True, slots=True)
class RoleFacts:
    """A resolved team or project role: a predefined role, or a custom one."""

    name: str
    permissions: frozenset[Permission]
    predefined: TeamRole | None = None
    custom_role_id: str | None = None
    #: ``permissions`` as a mask, computed once here so deciding does no set work.
    mask: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", mask_of(self.permissions))

    @property
    def is_viewer(self) -> bool:
        return self.predefined is TeamRole.VIEWER


@dataclass(frozen=True, slots=True)
class PrincipalFacts:
    kind: PrincipalKind
    id: str | None = None
    name: str = "anonymous"
    credential: CredentialKind = CredentialKind.NONE
    #: An API key's permission scopes; ``None`` means unscoped.
    key_scopes: frozenset[Permission] | None = None
    # users
    #: The user's membership of the target's org (None: not a member).
    org_role: OrgRole | None = None
    org_active: bool = True
    models_seat: SeatType = SeatType.FULL
    weave_seat: SeatType = SeatType.FULL
    # service accounts
    sa_scope: str | None = None  # "org" | "team"
    sa_team_id: str | None = None
    sa_org_id: str | None = None
    sa_deleted: bool = False
    #: ``key_scopes`` as a mask (``None``: unscoped), computed once for the policy.
    key_scope_mask: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scopes = None if self.key_scopes is None else mask_of(self.key_scopes)
        object.__setattr__(self, "key_scope_mask", scopes)


@dataclass(frozen=True, slots=True)
class TeamFacts:
    id: str
    org_id: str
    name: str
    kind: str = "team"  # "team" | "personal"
    personal_owner_id: str | None = None
    private_only: bool = False


@dataclass(frozen=True, slots=True)
class ProjectFacts:
    id: str
    name: str
    visibility: Visibility
    team: TeamFacts
    owner_user_id: str | None = None
    #: The owner left the parent team of this restricted project; until a team admin sets a new
    #: owner, only admins manage it (ours).
    owner_needed: bool = False


@dataclass(frozen=True, slots=True)
class MembershipFacts:
    """The principal's relationship to the target team and project."""

    #: Role in the target's team (None: not a team member).
    team_role: RoleFacts | None = None
    #: Explicit project membership (what a restricted project requires).
    project_member: bool = False
    #: A project-role override, if one is set.
    project_role: RoleFacts | None = None


@dataclass(frozen=True, slots=True)
class InstanceFacts:
    """Instance-wide switches from settings."""

    disable_personal_entity: bool = False
    disable_admin_team_access: bool = False


@dataclass(frozen=True, slots=True)
class OrgFacts:
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """Everything one decision needs; the target is a project, a team, or an org."""

    principal: PrincipalFacts
    org: OrgFacts
    team: TeamFacts | None = None
    project: ProjectFacts | None = None
    membership: MembershipFacts = field(default_factory=MembershipFacts)
    instance: InstanceFacts = field(default_factory=InstanceFacts)
