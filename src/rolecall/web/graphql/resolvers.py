"""GraphQL resolvers: adapters over the domain services, as the REST routes are.

Every resolver calls a service with the request's caller, so the services' ``authz.require``
guards apply and their audit records are written (with the surface ``graphql``). Lookups that
find nothing answer ``null``, as the wandb SDK expects; refusals and bad input raise the domain
errors, which the endpoint turns into GraphQL errors.
"""

from __future__ import annotations

import re
from typing import Any

from ariadne import MutationType, ObjectType, QueryType
from graphql import GraphQLResolveInfo

from rolecall.api_keys import service as api_keys
from rolecall.authz.roles import OrgRole
from rolecall.errors import InvalidInput
from rolecall.orgs import service as orgs
from rolecall.service_accounts import service as service_accounts
from rolecall.teams import service as teams
from rolecall.teams.queries import find_entity
from rolecall.users import service as users
from rolecall.web.graphql.nodes import (
    SERVICE,
    USER,
    ApiKeyNode,
    Connection,
    Context,
    EntityNode,
    InviteNode,
    MemberNode,
    OrgNode,
    Payload,
    UserNode,
    when,
)

query = QueryType()
mutation = MutationType()
user_type = ObjectType("User")
entity_type = ObjectType("Entity")
organization_type = ObjectType("Organization")

#: Most users one ``users`` query returns (the SDK sends no paging arguments).
MAX_USERS = users.MAX_PAGE_SIZE
#: Longest string argument accepted (names, emails, descriptions, queries, ids).
MAX_ARGUMENT = 1024
#: How many ``-2``, ``-3`` ... suffixes are tried for a service account's generated name.
NAME_ATTEMPTS = 50


def _ctx(info: GraphQLResolveInfo) -> Context:
    return info.context  # type: ignore[no-any-return]


def _text(value: Any, field: str) -> str:
    """A string argument, printable and bounded (PostgreSQL refuses NUL in text)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_ARGUMENT or "\x00" in value:
        raise InvalidInput(f"{field} is too long or holds NUL characters", field=field)
    return value.strip()


def _optional_text(value: Any, field: str) -> str | None:
    return None if value is None or value == "" else _text(value, field)


# --- queries ------------------------------------------------------------------------------------


@query.field("viewer")
def resolve_viewer(_: None, info: GraphQLResolveInfo) -> UserNode:
    ctx = _ctx(info)
    return UserNode.of_viewer(orgs.describe_viewer(ctx.session, actor=ctx.actor, org=ctx.org))


@query.field("users")
def resolve_users(
    _: None, info: GraphQLResolveInfo, query: str | None = None, first: int | None = None
) -> Connection:
    ctx = _ctx(info)
    needle = _optional_text(query, "query")
    if first is not None and first < 0:  # GraphQL Cursor Connections: an error
        raise InvalidInput("first must be 0 or more", field="first")
    shown = MAX_USERS if first is None else min(first, MAX_USERS)
    limit = max(shown, 1)  # a page of none is still a read the caller must be allowed
    page = users.list_users(ctx.session, actor=ctx.actor, org=ctx.org, q=needle, limit=limit)
    found = list(page.items)
    if needle:
        # wandb's ``api.user(q)`` takes the first edge: an exact username or email goes first.
        exact = users.get_user(ctx.session, actor=ctx.actor, org=ctx.org, ref=needle)
        if exact is not None:
            found = [exact, *(m for m in found if m.user.id != exact.user.id)]
    return Connection.of([UserNode.of_user(m.user, m.membership) for m in found[:shown]])


@query.field("entity")
def resolve_entity(_: None, info: GraphQLResolveInfo, name: str) -> EntityNode | None:
    ctx = _ctx(info)
    ref = _text(name, "name")
    team = find_entity(ctx.session, ref, ctx.org.id)
    if team is None:
        return None
    if team.kind == teams.TEAM:
        return EntityNode.of_team(
            teams.read_team(ctx.session, actor=ctx.actor, org=ctx.org, ref=team.id)
        )
    owner = users.get_user(
        ctx.session, actor=ctx.actor, org=ctx.org, ref=team.personal_owner_id or ""
    )
    return EntityNode.of_team(team) if owner is not None else None


@query.field("organization")
def resolve_organization(_: None, info: GraphQLResolveInfo, name: str) -> OrgNode | None:
    ctx = _ctx(info)
    view = orgs.read_org(ctx.session, actor=ctx.actor, org=ctx.org)
    return OrgNode.of(view.org) if _text(name, "name").lower() == view.org.name_key else None


# --- object fields that need the services -------------------------------------------------------


@user_type.field("apiKeys")
def resolve_api_keys(node: UserNode, info: GraphQLResolveInfo) -> Connection | None:
    if not node.is_user:
        return None  # a service account's keys are managed on the account, not listed here
    ctx = _ctx(info)
    keys = api_keys.visible_user_keys(ctx.session, actor=ctx.actor, org=ctx.org, user_id=node.id)
    return None if keys is None else Connection.of([ApiKeyNode.listed(key) for key in keys])


@user_type.field("teams")
def resolve_user_teams(node: UserNode, info: GraphQLResolveInfo) -> Connection:
    ctx = _ctx(info)
    if node.team_names is not None:  # the caller's own teams
        found = [teams.get_team(ctx.session, org=ctx.org, ref=name) for name in node.team_names]
        return Connection.of([EntityNode.of_team(team) for team in found if team is not None])
    if not node.is_user:
        return Connection.of([])
    rows = users.user_teams(ctx.session, actor=ctx.actor, org=ctx.org, ref=node.id)
    return Connection.of([EntityNode.of_team(team) for team in rows])


@user_type.field("organizations")
def resolve_user_organizations(node: UserNode, info: GraphQLResolveInfo) -> list[OrgNode]:
    # The organization the request is about: the only one this surface shows.
    return [OrgNode.of(_ctx(info).org)]


@entity_type.field("members")
def resolve_members(node: EntityNode, info: GraphQLResolveInfo) -> list[MemberNode]:
    ctx = _ctx(info)
    team = node.team
    if team is None:
        return []
    if team.kind != teams.TEAM:
        owner = users.get_user(
            ctx.session, actor=ctx.actor, org=ctx.org, ref=team.personal_owner_id or ""
        )
        if owner is None:
            return []
        user = UserNode.of_user(owner.user, owner.membership)
        return [
            MemberNode(user.id, True, user.email, user.username or "", user.name, USER, "admin")
        ]
    members = teams.list_members(ctx.session, actor=ctx.actor, org=ctx.org, team=team)
    keys = service_accounts.revealable_keys(
        ctx.session, actor=ctx.actor, team=team, server_key=ctx.settings.secret_key_bytes
    )
    return [
        MemberNode(
            id=m.id,
            admin=m.role == "admin",
            email=m.email,
            username=m.name,
            name=m.name,
            account_type=USER if m.kind == "user" else SERVICE,
            role=m.role,
            api_key=keys.get(m.id),
        )
        for m in members
    ]


@entity_type.field("organization")
def resolve_entity_organization(node: EntityNode, info: GraphQLResolveInfo) -> OrgNode | None:
    if node.team is None or node.team.kind != teams.TEAM:
        return None
    return OrgNode.of(_ctx(info).org)


@entity_type.field("user")
def resolve_entity_user(node: EntityNode, info: GraphQLResolveInfo) -> UserNode | None:
    if node.team is None or node.team.kind == teams.TEAM:
        return None
    ctx = _ctx(info)
    ref = node.team.personal_owner_id or ""
    owner = users.get_user(ctx.session, actor=ctx.actor, org=ctx.org, ref=ref)
    return UserNode.of_user(owner.user, owner.membership) if owner is not None else None


@organization_type.field("orgEntity")
def resolve_org_entity(node: OrgNode, info: GraphQLResolveInfo) -> EntityNode:
    return EntityNode.of_org(node.org)


# --- mutations ----------------------------------------------------------------------------------


@mutation.field("createUser")
def resolve_create_user(_: None, info: GraphQLResolveInfo, input: dict[str, Any]) -> Payload:
    ctx = _ctx(info)
    role = OrgRole.ADMIN if input.get("admin") else OrgRole.MEMBER
    email = _text(input.get("email"), "email")
    created = users.create_user(ctx.session, actor=ctx.actor, org=ctx.org, email=email, role=role)
    return Payload(user=UserNode.of_user(created.user, created.membership))


@mutation.field("generateApiKey")
def resolve_generate_api_key(_: None, info: GraphQLResolveInfo, input: dict[str, Any]) -> Payload:
    ctx = _ctx(info)
    description = _optional_text(input.get("description"), "description")
    key, secret = api_keys.create_own_key(
        ctx.session, actor=ctx.actor, org=ctx.org, description=description
    )
    # The wandb SDK returns ``name`` as the new key: here, once, it is the full secret.
    return Payload(api_key=ApiKeyNode(key.id, secret, key.description))


@mutation.field("deleteApiKey")
def resolve_delete_api_key(_: None, info: GraphQLResolveInfo, input: dict[str, Any]) -> Payload:
    ctx = _ctx(info)
    key_id = _text(input.get("id"), "id")
    api_keys.revoke_user_key(ctx.session, actor=ctx.actor, org=ctx.org, key_id=key_id)
    return Payload(success=True)


@mutation.field("createTeam")
def resolve_create_team(_: None, info: GraphQLResolveInfo, input: dict[str, Any]) -> Payload:
    ctx = _ctx(info)
    name = _text(input.get("team_name"), "teamName")
    admin = _optional_text(input.get("team_admin_user_name"), "teamAdminUserName")
    if admin is None and ctx.actor.user_id is not None:
        admin = ctx.actor.user_id  # wandb: no admin named means the caller
    team = teams.create_team(ctx.session, actor=ctx.actor, org=ctx.org, name=name, admin=admin)
    return Payload(entity=EntityNode.of_team(team))


@mutation.field("createInvite")
def resolve_create_invite(_: None, info: GraphQLResolveInfo, input: dict[str, Any]) -> Payload:
    ctx = _ctx(info)
    team = _text(input.get("entity_name"), "entityName")
    ref = _optional_text(input.get("email"), "email") or _optional_text(
        input.get("username"), "username"
    )
    if ref is None:
        raise InvalidInput("name the user to add: email or username", field="username")
    role = "admin" if input.get("admin") else "member"
    member = teams.add_member(
        ctx.session, actor=ctx.actor, org=ctx.org, team=team, user=ref, role=role
    )
    added = users.require_user(ctx.session, actor=ctx.actor, org=ctx.org, ref=member.id)
    to_user = UserNode.of_user(added.user, added.membership)
    invite = InviteNode(member.id, member.name, member.email, when(member.joined_at), to_user)
    return Payload(invite=invite)


@mutation.field("deleteInvite")
def resolve_delete_invite(_: None, info: GraphQLResolveInfo, input: dict[str, Any]) -> Payload:
    """Remove a member by its ``members[].id``: a user leaves the team; a service account of
    the team is deleted (it cannot exist outside its team), its keys revoked."""
    ctx = _ctx(info)
    member_id = _text(input.get("id"), "id")
    team = teams.require_team(
        ctx.session, org=ctx.org, ref=_text(input.get("entity_name"), "entityName")
    )
    account = service_accounts.get_service_account(ctx.session, org=ctx.org, ref=member_id)
    if account is not None and account.id == member_id and account.team_id == team.id:
        service_accounts.delete_service_account(
            ctx.session, actor=ctx.actor, org=ctx.org, ref=account.id
        )
    else:
        teams.remove_member(ctx.session, actor=ctx.actor, org=ctx.org, team=team, member=member_id)
    return Payload(success=True)


@mutation.field("createServiceAccount")
def resolve_create_service_account(
    _: None, info: GraphQLResolveInfo, input: dict[str, Any]
) -> Payload:
    """A team-scoped built-in account named after its description; its key is derived from
    the server's secret key so that the team's managers read it in ``members[].apiKey``."""
    ctx = _ctx(info)
    team = teams.require_team(
        ctx.session, org=ctx.org, ref=_text(input.get("entity_name"), "entityName")
    )
    description = input.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_ARGUMENT or "\x00" in description:
        raise InvalidInput("description is too long or holds NUL characters", field="description")
    view = service_accounts.create_service_account(
        ctx.session,
        actor=ctx.actor,
        org=ctx.org,
        name=_free_account_name(ctx, description),
        scope=service_accounts.TEAM_SCOPE,
        team=team.id,
        description=description.strip(),
        derive_key_with=ctx.settings.secret_key_bytes,
    )
    return Payload(user=UserNode.of_account(view.account, team.name))


def _free_account_name(ctx: Context, description: str) -> str:
    """The description as a name (``nightly training`` -> ``nightly-training``), with a number
    added when an account of the organization already has it."""
    base = re.sub(r"[^a-z0-9_-]+", "-", description.lower()).strip("-")[:56] or "service-account"
    for attempt in range(1, NAME_ATTEMPTS + 1):
        name = base if attempt == 1 else f"{base}-{attempt}"
        if service_accounts.get_service_account(ctx.session, org=ctx.org, ref=name) is None:
            return name
    raise InvalidInput("too many service accounts share this description", field="description")


BINDABLES = (query, mutation, user_type, entity_type, organization_type)
