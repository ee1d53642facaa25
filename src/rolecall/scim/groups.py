"""SCIM ``/Groups`` = teams, over ``teams.service`` (RFC 7644 §3; the seeds map groups to teams).

A group's ``displayName`` becomes the team's name when it is a valid entity name; otherwise the
team is named after it (``Data Science`` -> ``Data-Science``) and the display name is kept
beside. Members are users; they join with the ``member`` role, adding a member twice is a
no-op, and removing one that is not there is too. Deleting a team is refused, as the seeds say.

A group of a large company holds tens of thousands of members, and rendering them costs about
a second per 20,000 (under the write lock, for a write). So a write renders only what it is
asked to answer with: a PATCH without ``attributes``/``excludedAttributes`` answers
204 No Content (RFC 7644 §3.5.2 allows it; Entra ID and Okta expect either), and a group shown
without its members never loads them.
"""

from __future__ import annotations

from typing import Any

from scim2_models.path import AttrPath, CompareOperator, Comparison, LogicalExpr, ValuePath
from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rolecall.errors import Conflict, some_of
from rolecall.identity.principal import Principal
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.scim import mapping, versions
from rolecall.scim.errors import (
    INVALID_PATH,
    INVALID_VALUE,
    MUTABILITY,
    NO_TARGET,
    ScimError,
    bad_request,
)
from rolecall.scim.filters import to_sql
from rolecall.scim.mapping import GROUP_URN
from rolecall.scim.messages import (
    READ_ONLY,
    Operation,
    Page,
    get,
    list_response,
    operations,
    parse_path,
    require_object,
    split_urn,
    text,
)
from rolecall.scim.sorting import UNSORTED, Sort
from rolecall.teams import service as teams
from rolecall.teams import writes
from rolecall.teams.models import Team
from rolecall.users.naming import ENTITY_NAME_RE
from rolecall.users.queries import available_name

#: The longest team name suggested by a display name, leaving room for a ``-N`` suffix within
#: the 128 characters of a name.
MAX_SUGGESTED_NAME = 120

MAX_ID_LENGTH = 64
DELETE_REFUSED = (
    "deleting teams is not supported through SCIM, since there is additional data linked to "
    "teams: delete the team from the app to confirm you want everything deleted"
)


def list_groups(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    filter_text: str | None,
    window: Page,
    with_members: bool = True,
    sort: Sort = UNSORTED,
) -> dict[str, Any]:
    where: ColumnElement[bool] | None = None
    if filter_text:
        where = to_sql(filter_text, mapping.GROUP_ATTRS, GROUP_URN)
    found, total = teams.search_teams(
        session,
        actor=actor,
        org=org,
        where=where,
        order=sort.terms(mapping.GROUP_ATTRS, GROUP_URN),
        offset=window.offset,
        limit=window.limit,
    )
    return list_response(_resources(session, found, base, with_members), total, window.start_index)


def _resources(
    session: Session, found: list[Team], base: str, with_members: bool
) -> list[dict[str, Any]]:
    if not with_members:
        return [mapping.group_resource(t, None, base) for t in found]
    members = teams.user_members(session, team_ids=[t.id for t in found])
    return [mapping.group_resource(t, members.get(t.id, []), base) for t in found]


def _require(session: Session, actor: Principal, org: Organization, group_id: str) -> Team:
    if len(group_id) > MAX_ID_LENGTH or "\x00" in group_id:
        raise ScimError(404, "no such group in this organization")
    found, _ = teams.search_teams(session, actor=actor, org=org, where=Team.id == group_id, limit=1)
    if not found:
        raise ScimError(404, f"no group {group_id[:64]!r} in this organization")
    return found[0]


def _require_for_write(
    session: Session, actor: Principal, org: Organization, group_id: str, if_match: str | None
) -> Team:
    """The group about to change, held for this transaction (``versions.lock``), and at a
    version ``If-Match`` names when one was sent (412 otherwise)."""
    if len(group_id) <= MAX_ID_LENGTH and "\x00" not in group_id:
        versions.lock(session, Team.id, Team.org_id == org.id, Team.id == group_id)
    team = _require(session, actor, org, group_id)
    versions.require_current(if_match, lambda: _resources(session, [team], "", True)[0])
    return team


def get_group(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    group_id: str,
    with_members: bool = True,
) -> dict[str, Any]:
    team = _require(session, actor, org, group_id)
    return _resources(session, [team], base, with_members)[0]


def create_group(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    body: Any,
    with_members: bool = True,
) -> dict[str, Any]:
    """POST /Groups: a new team with its members. A display name some group of the organization
    already has is a 409 ``uniqueness``; the team's name is the display name (or one suggested
    by it), or the next free one when a user or team anywhere has it."""
    body = require_object(body)
    display_name = text(get(body, "displayName"), "displayName", required=True)
    assert display_name is not None
    _check_display_name_free(session, org, display_name, None)
    team = teams.create_team(
        session,
        actor=actor,
        org=org,
        name=_team_name(session, display_name),
        display_name=display_name,
        external_id=text(get(body, "externalId"), "externalId"),
    )
    _add_members(session, actor, org, team, _member_ids(get(body, "members")))
    # Its members are part of its creation: lastModified equals created (RFC 7643 §3.1).
    team.updated_at = team.created_at
    writes.created_with_its_changes(session, team_id=team.id)
    return get_group(
        session, actor=actor, org=org, base=base, group_id=team.id, with_members=with_members
    )


def replace_group(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    group_id: str,
    body: Any,
    if_match: str | None = None,
    with_members: bool = True,
) -> dict[str, Any]:
    """PUT /Groups/{id}: display name, external id and the exact set of user members."""
    team = _require_for_write(session, actor, org, group_id, if_match)
    body = require_object(body)
    display_name = text(get(body, "displayName"), "displayName", required=True)
    assert display_name is not None
    _rename(session, actor, org, team, display_name)
    external_id = text(get(body, "externalId"), "externalId")
    if external_id != team.external_id:
        teams.update_team(session, actor=actor, org=org, team=team, external_id=external_id)
    _set_members(session, actor, org, team, _member_ids(get(body, "members")))
    return get_group(
        session, actor=actor, org=org, base=base, group_id=team.id, with_members=with_members
    )


def patch_group(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    group_id: str,
    body: Any,
    if_match: str | None = None,
    with_members: bool = True,
    answers: bool = True,
) -> dict[str, Any] | None:
    """PATCH /Groups/{id} (RFC 7644 §3.5.2): members added and removed (by value list or by
    ``members[value eq "id"]``), renamed, external id set. ``answers=False``: nothing is
    rendered and None returned (the route's 204 No Content)."""
    ops = operations(body)
    team = _require_for_write(session, actor, org, group_id, if_match)
    changes = _MemberChanges(session, actor, org, team)
    for op in ops:
        _apply(session, actor, org, team, op, changes)
    changes.apply()
    if not answers:
        return None
    return get_group(
        session, actor=actor, org=org, base=base, group_id=team.id, with_members=with_members
    )


def delete_group(session: Session, *, actor: Principal, org: Organization, group_id: str) -> None:
    """DELETE /Groups/{id}: refused (the seeds: teams are deleted in the app)."""
    _require(session, actor, org, group_id)
    raise bad_request(MUTABILITY, DELETE_REFUSED)


# --- helpers ------------------------------------------------------------------------------------


def _team_name(session: Session, display_name: str, team: Team | None = None) -> str:
    """The team name for a group's display name: the display name when it is a valid one, else
    one it suggests (``Data Science`` -> ``Data-Science``), with ``-2``, ``-3``... while a user
    or another team has it (team names and usernames are one namespace, across organizations:
    a display name is unique in its organization only)."""
    wanted = display_name
    if not ENTITY_NAME_RE.fullmatch(wanted) or len(wanted) > MAX_SUGGESTED_NAME:
        wanted = teams.name_for_display_name(display_name)[:MAX_SUGGESTED_NAME].rstrip("-.")
    if team is not None and wanted.lower() == team.name_key:
        return wanted  # its own name (in another case)
    return available_name(session, wanted)


def _check_display_name_free(
    session: Session, org: Organization, display_name: str, team_id: str | None
) -> None:
    query = select(Team.id).where(
        Team.org_id == org.id,
        Team.kind == teams.TEAM,
        teams.display_name_matches(display_name.lower()),
    )
    if team_id is not None:
        query = query.where(Team.id != team_id)
    if session.scalar(query.limit(1)) is not None:
        raise ScimError(409, f"a group named {display_name[:64]!r} exists", "uniqueness")


def _rename(
    session: Session, actor: Principal, org: Organization, team: Team, display_name: str
) -> None:
    if display_name == teams.display_name_of(team):
        return
    _check_display_name_free(session, org, display_name, team.id)
    name = _team_name(session, display_name, team)
    teams.update_team(
        session, actor=actor, org=org, team=team, name=name, display_name=display_name
    )


def _member_ids(value: Any) -> list[str]:
    """User ids from a ``members`` value: a list of ``{"value": id}`` (or one such object)."""
    if value is None:
        return []
    entries = value if isinstance(value, list) else [value]
    ids = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad_request(INVALID_VALUE, "members holds objects with a value (a user id)")
        member = text(get(entry, "value"), "members.value", required=True)
        assert member is not None
        ids.append(member.strip())
    return ids


def _org_user_ids(session: Session, org: Organization, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    query = select(OrgMembership.user_id).where(
        OrgMembership.org_id == org.id, OrgMembership.user_id.in_(ids)
    )
    return set(session.scalars(query))


def _add_members(
    session: Session, actor: Principal, org: Organization, team: Team, ids: list[str]
) -> None:
    wanted = list(dict.fromkeys(i for i in ids if len(i) <= MAX_ID_LENGTH and "\x00" not in i))
    unknown = set(ids) - _org_user_ids(session, org, wanted)
    if unknown:
        listed = some_of(unknown)
        raise bad_request(INVALID_VALUE, f"no user with id {listed} in this organization")
    # Re-adding a member is a no-op (``add_users`` skips them). All at once, in a savepoint:
    # identity providers send a group's changes from several workers at once, and on
    # PostgreSQL an insert that meets another request's new row for the same member waits for
    # its transaction, then breaks the unique membership. Only this attempt is undone, and the
    # members are added one at a time, each a no-op if it is there by then.
    try:
        with session.begin_nested():
            teams.add_users(
                session, actor=actor, org=org, team=team, user_ids=wanted, deactivated_ok=True
            )
    except IntegrityError:
        for user_id in wanted:
            _add_member(session, actor, org, team, user_id)


def _add_member(
    session: Session, actor: Principal, org: Organization, team: Team, user_id: str
) -> None:
    """Add one member unless it is there; a no-op when another request added it at the same
    moment: its row shows up between our look and our insert (``Conflict``), or our insert
    waits for its transaction and then breaks the unique membership (``IntegrityError``)."""
    try:
        with session.begin_nested():
            if not teams.member_user_ids(session, team=team, user_ids=[user_id]):
                teams.add_member(
                    session, actor=actor, org=org, team=team, user=user_id, deactivated_ok=True
                )
    except (Conflict, IntegrityError):
        if not teams.member_user_ids(session, team=team, user_ids=[user_id]):
            raise


def _remove_members(
    session: Session, actor: Principal, org: Organization, team: Team, ids: list[str]
) -> None:
    # Removing a non-member is a no-op (``remove_users`` skips them).
    teams.remove_users(session, actor=actor, org=org, team=team, user_ids=ids)


def _set_members(
    session: Session, actor: Principal, org: Organization, team: Team, ids: list[str]
) -> None:
    current = teams.user_member_ids(session, team=team)
    kept = set(ids)
    _remove_members(session, actor, org, team, [i for i in current if i not in kept])
    _add_members(session, actor, org, team, ids)


class _MemberChanges:
    """A PATCH's member additions and removals, applied in runs: consecutive operations of one
    kind become one batch (``teams.add_users``, ``teams.remove_users``). Okta sends a removal
    operation per member, hundreds in one PATCH; each alone paid a policy check and a lookup.
    Anything else a PATCH does applies what is queued first, so every operation still sees
    the ones before it."""

    def __init__(self, session: Session, actor: Principal, org: Organization, team: Team) -> None:
        self._where = (session, actor, org, team)
        self._kind: str | None = None
        self._ids: list[str] = []

    def queue(self, kind: str, ids: list[str]) -> None:
        if kind != self._kind:
            self.apply()
        self._kind = kind
        self._ids += ids

    def apply(self) -> None:
        kind, ids = self._kind, self._ids
        self._kind, self._ids = None, []
        if kind == "add":
            _add_members(*self._where, ids)
        elif kind == "remove":
            _remove_members(*self._where, ids)


def _apply(
    session: Session,
    actor: Principal,
    org: Organization,
    team: Team,
    op: Operation,
    changes: _MemberChanges,
) -> None:
    if op.path is None:
        if op.op == "remove":
            raise bad_request(NO_TARGET, "remove needs a path")
        if not isinstance(op.value, dict):
            raise bad_request(INVALID_VALUE, "an operation without a path needs an object value")
        for key, value in op.value.items():
            if isinstance(key, str) and key.lower() not in ("id", "schemas", "meta"):
                _apply(session, actor, org, team, Operation(op.op, key, value), changes)
        return
    node = parse_path(op.path)
    if isinstance(node, ValuePath):
        core, attr, _ = split_urn(node.attr_path, GROUP_URN)
        if core and attr == "members" and op.op == "remove" and node.sub_attr is None:
            changes.queue("remove", _selected_ids(node))
            return
        raise bad_request(INVALID_PATH, f"unsupported path {op.path[:64]!r}")
    if not isinstance(node, AttrPath):
        raise bad_request(INVALID_PATH, f"unsupported path {op.path[:64]!r}")
    core, attr, sub = split_urn(node, GROUP_URN)
    if not core:
        return
    if attr == "members" and sub is None:
        if op.op == "add":
            changes.queue("add", _member_ids(op.value))
        elif op.op == "remove" and op.value is not None:
            changes.queue("remove", _member_ids(op.value))
        elif op.op == "remove":  # no value: every user member goes (RFC 7644 §3.5.2.2)
            changes.apply()
            changes.queue("remove", teams.user_member_ids(session, team=team))
        else:
            ids = _member_ids(op.value)
            changes.apply()
            _set_members(session, actor, org, team, ids)
        return
    changes.apply()
    if attr == "displayname" and sub is None:
        if op.op == "remove":
            raise bad_request(MUTABILITY, "displayName is required and cannot be removed")
        display_name = text(op.value, "displayName", required=True)
        assert display_name is not None
        _rename(session, actor, org, team, display_name)
    elif attr == "externalid" and sub is None:
        value = None if op.op == "remove" else text(op.value, "externalId")
        teams.update_team(session, actor=actor, org=org, team=team, external_id=value)
    elif attr == "id":
        if op.value != team.id:
            raise bad_request(MUTABILITY, "id is read-only")
    elif attr in READ_ONLY:
        raise bad_request(MUTABILITY, f"{op.path[:64]} is read-only")
    else:
        raise bad_request(INVALID_PATH, f"unsupported attribute {op.path[:64]!r}")


def _selected_ids(node: ValuePath) -> list[str]:
    """The ids a ``members[value eq "a" or value eq "b"]`` selection names."""
    found: list[str] = []

    def walk(expr: Any) -> None:
        if isinstance(expr, LogicalExpr) and expr.op.value == "or":
            for term in expr.terms:
                walk(term)
        elif (
            isinstance(expr, Comparison)
            and expr.attr_path.attr.lower() == "value"
            and expr.op is CompareOperator.eq
            and isinstance(expr.value, str)
        ):
            found.append(expr.value)
        else:
            raise bad_request(INVALID_PATH, 'select members with value eq "<user id>"')

    walk(node.val_filter)
    return found
