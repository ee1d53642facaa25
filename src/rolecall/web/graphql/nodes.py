"""What the GraphQL resolvers return: small views of domain rows, in the wandb SDK's shapes.

Fields the schema declares are attributes here (snake_case; the schema converts names).
Fields that need a query or a policy decision (a user's API keys and teams, a team's members)
are resolved lazily by ``resolvers`` through the domain services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from rolecall.api_keys.models import ApiKey
from rolecall.authz.facts import PrincipalKind
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.orgs.service import ViewerView
from rolecall.service_accounts.models import ServiceAccount
from rolecall.settings import Settings
from rolecall.teams.models import Team
from rolecall.users.models import User

USER, SERVICE = "USER", "SERVICE"
TEAM_ENTITY, USER_ENTITY, ORG_ENTITY = "team", "user", "organization"


@dataclass(frozen=True, slots=True)
class Context:
    """What every resolver receives as ``info.context``: one request's transaction and caller."""

    session: Session
    actor: Principal
    org: Organization
    settings: Settings


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class UserNode:
    """A user of the organization, or a service account presented as a user (the viewer)."""

    id: str
    name: str
    username: str | None
    email: str | None
    admin: bool
    entity: str | None
    deleted_at: str | None
    account_type: str
    flags: str | None = None
    #: The caller's own teams, known without asking the policy (``describe_viewer``).
    team_names: tuple[str, ...] | None = None

    @property
    def is_user(self) -> bool:
        return self.account_type == USER

    @classmethod
    def of_user(cls, user: User, membership: OrgMembership | None) -> UserNode:
        return cls(
            id=user.id,
            name=user.full_name or user.username,
            username=user.username,
            email=user.email,
            admin=membership is not None and membership.role == "admin",
            entity=user.username,
            deleted_at=when(membership.deactivated_at) if membership is not None else None,
            account_type=USER,
        )

    @classmethod
    def of_account(cls, account: ServiceAccount, team_name: str | None) -> UserNode:
        return cls(
            id=account.id,
            name=account.name,
            username=account.name,
            email=None,
            admin=False,
            entity=team_name,
            deleted_at=when(account.deleted_at),
            account_type=SERVICE,
        )

    @classmethod
    def of_viewer(cls, view: ViewerView) -> UserNode:
        """The caller as ``orgs.service.describe_viewer`` saw it (any credential may ask)."""
        if view.kind == PrincipalKind.SERVICE_ACCOUNT.value:
            return cls(
                view.id or "",
                view.name,
                view.name,
                None,
                False,
                view.team,
                None,
                SERVICE,
                team_names=tuple(view.teams),
            )
        return cls(
            id=view.id or "",
            name=view.full_name or view.name,
            username=view.username,
            email=view.email,
            admin=view.role == "admin",
            entity=view.username,
            deleted_at=None,
            account_type=USER,
            team_names=tuple(view.teams),
        )


@dataclass(frozen=True, slots=True)
class ApiKeyNode:
    id: str
    name: str
    description: str | None

    @classmethod
    def listed(cls, key: ApiKey) -> ApiKeyNode:
        """In listings the name is the key's hint: the secret is never stored."""
        return cls(key.id, key.hint, key.description)


@dataclass(frozen=True, slots=True)
class Edge:
    node: object


@dataclass(frozen=True, slots=True)
class Connection:
    edges: list[Edge]

    @classmethod
    def of(cls, nodes: list[object]) -> Connection:
        return cls([Edge(node) for node in nodes])


@dataclass(frozen=True, slots=True)
class OrgNode:
    id: str
    name: str
    #: The organization, for ``orgEntity``.
    org: Organization

    @classmethod
    def of(cls, org: Organization) -> OrgNode:
        return cls(org.id, org.name, org)


@dataclass(frozen=True, slots=True)
class EntityNode:
    """A team, a personal entity, or the organization's own entity (``orgEntity``)."""

    id: str
    name: str
    is_team: bool
    entity_type: str
    private_only: bool = False
    #: The team row (teams and personal entities); ``None`` for the organization's entity.
    team: Team | None = None
    available: bool = False
    photo_url: str | None = None
    read_only: bool = False
    read_only_admin: bool = False
    storage_bytes: int = 0
    code_saving_enabled: bool = False
    is_paid: bool = False
    limits: str = "{}"

    @property
    def default_access(self) -> str:
        return "PRIVATE" if self.private_only else "ENTITY_WRITE"

    @classmethod
    def of_team(cls, team: Team) -> EntityNode:
        kind = TEAM_ENTITY if team.kind == "team" else USER_ENTITY
        return cls(team.id, team.name, team.kind == "team", kind, team.private_only, team)

    @classmethod
    def of_org(cls, org: Organization) -> EntityNode:
        return cls(org.id, org.name, False, ORG_ENTITY)


@dataclass(frozen=True, slots=True)
class MemberNode:
    id: str
    admin: bool
    email: str | None
    username: str
    name: str
    account_type: str
    role: str
    api_key: str | None = None
    pending: bool = False
    photo_url: str | None = None


@dataclass(frozen=True, slots=True)
class InviteNode:
    id: str
    name: str
    email: str | None
    created_at: str | None
    to_user: UserNode


@dataclass(frozen=True, slots=True)
class Payload:
    """A mutation's answer: ``user``, ``api_key``, ``entity``, ``invite`` or ``success``."""

    user: UserNode | None = None
    api_key: ApiKeyNode | None = None
    entity: EntityNode | None = None
    invite: InviteNode | None = None
    success: bool = True
