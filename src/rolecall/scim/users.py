"""SCIM ``/Users`` over ``users.service`` and ``teams.service`` (RFC 7644 §3).

A request body (POST, PUT) or a PATCH is applied to a *draft* of the user's SCIM attributes;
the draft's differences from the stored user then go through the services, which authorize,
apply the domain rules (the last active admin, unique names) and audit. Attributes of RFC 7643's
User that rolecall does not store (``locale``, ``phoneNumbers``, the enterprise extension...)
are accepted and ignored; ``password`` is never stored nor returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from scim2_models.path import (
    AttrPath,
    Comparison,
    FilterNode,
    LogicalExpr,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

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
from rolecall.scim.filters import compare_constant, to_sql
from rolecall.scim.mapping import EMAIL_TYPE, USER_URN
from rolecall.scim.messages import (
    READ_ONLY,
    Operation,
    Page,
    boolean,
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
from rolecall.users import service as users
from rolecall.users.service import OrgUser, scim_user_name

#: RFC 7643 §4.1 User attributes rolecall does not keep: accepted, ignored.
IGNORED = frozenset(
    {
        "nickname",
        "profileurl",
        "title",
        "usertype",
        "preferredlanguage",
        "locale",
        "timezone",
        "password",
        "phonenumbers",
        "ims",
        "photos",
        "addresses",
        "entitlements",
        "roles",
        "x509certificates",
    }
)
#: Stands for "every team" in a draft's team-role changes (``remove teamRoles``).
ALL_TEAMS = "\x00all"
#: Stands for "every team the changes do not name": a PUT's ``teamRoles`` lists all of them.
OTHER_TEAMS = "\x00other"
#: Keys of a POST or PUT body that are not the client's to set; ignored there.
NOT_WRITTEN = frozenset({"id", "meta", "schemas", "groups", "password"})
#: Attributes a POST gives a default and a PUT keeps when its body leaves them out; so too when
#: it sends them null or empty (RFC 7643 §2.5: the same state as unassigned).
KEPT_WHEN_ABSENT = frozenset({"emails", "active", "organizationrole", "teamroles"})


@dataclass
class Draft:
    """The writable SCIM attributes of one user, as requests change them."""

    user_name: str | None = None
    external_id: str | None = None
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    active: bool = True
    organization_role: str | None = None
    #: Team-role changes in order: (team name, role name, or ``None`` to leave the team).
    team_roles: list[tuple[str, str | None]] = field(default_factory=list)
    #: PUT (RFC 7644 §3.5.1): a ``teamRoles`` it carries is all the user's teams. PATCH sets
    #: the role in each team named and leaves the others, as the seeds' example does.
    replacing: bool = False
    id: str | None = None


def _draft(member: OrgUser) -> Draft:
    user, membership = member
    return Draft(
        user_name=scim_user_name(user),
        external_id=membership.external_id,
        display_name=user.full_name,
        given_name=user.given_name,
        family_name=user.family_name,
        email=user.email,
        active=membership.active,
        organization_role=membership.role,
        id=user.id,
    )


# --- reading ----------------------------------------------------------------------------------


def search(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    filter_text: str | None,
    window: Page,
    sort: Sort = UNSORTED,
) -> tuple[list[dict[str, Any]], int]:
    where: ColumnElement[bool] | None = None
    attrs = mapping.user_attrs(org.id)
    if filter_text:
        where = to_sql(filter_text, attrs, USER_URN)
    found = users.search_users(
        session,
        actor=actor,
        org=org,
        where=where,
        order=sort.terms(attrs, USER_URN),
        offset=window.offset,
        limit=window.limit,
    )
    return _resources(session, org, found.items, base), found.total


def list_users(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    filter_text: str | None,
    window: Page,
    sort: Sort = UNSORTED,
) -> dict[str, Any]:
    resources, total = search(
        session, actor=actor, org=org, base=base, filter_text=filter_text, window=window, sort=sort
    )
    return list_response(resources, total, window.start_index)


def _resources(
    session: Session, org: Organization, members: list[OrgUser], base: str
) -> list[dict[str, Any]]:
    teams_of = users.teams_of_users(session, org=org, user_ids=[m.user.id for m in members])
    return [mapping.user_resource(m, teams_of[m.user.id], base) for m in members]


def _plausible_id(user_id: str) -> bool:
    """Whether ``user_id`` could name a user at all; the database is not asked otherwise
    (PostgreSQL refuses a NUL in text), and ``_require`` answers 404."""
    return len(user_id) <= users.MAX_REF_LENGTH and "\x00" not in user_id


def _require_for_write(
    session: Session,
    actor: Principal,
    org: Organization,
    user_id: str,
    if_match: str | None,
    *,
    deleting: bool = False,
) -> OrgUser:
    """The user about to change (or leave the organization: ``deleting``), held for this
    transaction (``versions.lock``), and at a version ``If-Match`` names when one was sent
    (412 otherwise)."""
    if _plausible_id(user_id):
        versions.lock(
            session,
            OrgMembership.id,
            OrgMembership.org_id == org.id,
            OrgMembership.user_id == user_id,
            deleting=deleting,
        )
    member = _require(session, actor, org, user_id)
    versions.require_current(if_match, lambda: _resources(session, org, [member], "")[0])
    return member


def _hold_teams(
    session: Session, org: Organization, user_id: str, body: Any, *, leaving: bool = False
) -> None:
    """``teams.writes``' lock order: before the user's own row, hold the teams this write may
    change: all of the user's teams when it leaves the organization (``leaving``) or the body
    mentions ``teamRoles`` (a removal or a PUT can take it out of any of them), and the teams
    the body names. A write that changes no team holds none. Holding one too many only makes
    a writer of that team wait; missing one (a team joined meanwhile) risks a deadlock, which
    the request survives by running again."""
    if not _plausible_id(user_id):
        return  # no such user: ``_require_for_write`` answers 404
    named: set[str] = set()
    if not (_mentions_team_roles(body, named) or leaving):
        return
    also = teams.team_ids_named(session, org=org, refs=named)
    writes.hold_teams_of(session, org_id=org.id, user_id=user_id, also=also)


def _mentions_team_roles(body: Any, named: set[str]) -> bool:
    """Whether ``body`` mentions ``teamRoles`` at any depth, as a key or in an operation's
    ``path``; adds each ``teamName`` it holds to ``named``. Walked without recursion: a body
    may nest as deeply as the JSON parser allows."""
    mentions, pending = False, [body]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(value)
            continue
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            key = key.lower() if isinstance(key, str) else ""
            if key == "teamname" and isinstance(item, str):
                named.add(item)
            mentions |= key == "teamroles" or (
                key == "path" and isinstance(item, str) and "teamroles" in item.lower()
            )
            pending.append(item)
    return mentions


def _require(session: Session, actor: Principal, org: Organization, user_id: str) -> OrgUser:
    """The org's user with that id (SCIM ids only, not usernames); 404 otherwise."""
    found = users.get_user_by_id(session, actor=actor, org=org, user_id=user_id)
    if found is None:
        raise ScimError(404, f"no user {user_id[:64]!r} in this organization")
    return found


def get_user(
    session: Session, *, actor: Principal, org: Organization, base: str, user_id: str
) -> dict[str, Any]:
    return _resources(session, org, [_require(session, actor, org, user_id)], base)[0]


# --- writing ----------------------------------------------------------------------------------


def create_user(
    session: Session, *, actor: Principal, org: Organization, base: str, body: Any, multi: bool
) -> dict[str, Any]:
    """POST /Users (RFC 7644 §3.3). A taken ``userName`` (case-insensitively) is a 409
    ``uniqueness``."""
    draft = Draft(organization_role="member")
    _apply_body(draft, require_object(body))
    if draft.user_name is None:
        raise bad_request(INVALID_VALUE, "userName is required")
    email = draft.email or (draft.user_name if "@" in draft.user_name else None)
    if email is None:
        raise bad_request(INVALID_VALUE, "an email is required: send emails or a userName email")
    if multi and not draft.active:
        raise bad_request(INVALID_VALUE, _MULTI_ACTIVE)
    member = users.create_user(
        session,
        actor=actor,
        org=org,
        email=email,
        user_name=draft.user_name,
        full_name=draft.display_name,
        given_name=draft.given_name,
        family_name=draft.family_name,
        external_id=draft.external_id,
        role=draft.organization_role or "member",
        active=draft.active,
    )
    if not draft.team_roles:  # a new user is in no team: no need to read it back
        return mapping.user_resource(member, [], base)
    _team_roles(session, actor, org, member, draft.team_roles)
    # Its team roles are part of its creation: lastModified equals created (RFC 7643 §3.1).
    member.membership.updated_at = member.membership.created_at
    writes.created_with_its_changes(session, member=(org.id, member.user.id))
    return get_user(session, actor=actor, org=org, base=base, user_id=member.user.id)


def replace_user(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    user_id: str,
    body: Any,
    multi: bool,
    if_match: str | None = None,
) -> dict[str, Any]:
    """PUT /Users/{id} (RFC 7644 §3.5.1): the writable attributes become the body's; those it
    leaves out are cleared, except the email, activity and roles, which stay."""
    body = require_object(body)
    _hold_teams(session, org, user_id, body)
    member = _require_for_write(session, actor, org, user_id, if_match)
    current = _draft(member)
    draft = replace(
        current,
        user_name=None,
        external_id=None,
        display_name=None,
        given_name=None,
        family_name=None,
        team_roles=[],
        replacing=True,
    )
    _apply_body(draft, body)
    if draft.user_name is None:
        raise bad_request(INVALID_VALUE, "userName is required")
    _save(session, actor, org, member, current, draft, multi)
    return _as_written(session, org, base, user_id)


def patch_user(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    base: str,
    user_id: str,
    body: Any,
    multi: bool,
    if_match: str | None = None,
) -> dict[str, Any]:
    """PATCH /Users/{id} (RFC 7644 §3.5.2), with the seeds' ``organizationRole`` and
    ``teamRoles`` paths."""
    ops = operations(body)
    _hold_teams(session, org, user_id, body)
    member = _require_for_write(session, actor, org, user_id, if_match)
    current = _draft(member)
    draft = replace(current, team_roles=[])
    for op in ops:
        _apply(draft, op)
    _save(session, actor, org, member, current, draft, multi)
    return _as_written(session, org, base, user_id)


def _as_written(session: Session, org: Organization, base: str, user_id: str) -> dict[str, Any]:
    """The user as a write left it, for the write's answer: not authorized again, since the
    write was. An admin that deactivated itself (the provider cut its own access) may read
    nothing more, and was refused its own answer, which undid the write."""
    written = users.member_by_id(session, org=org, user_id=user_id)
    assert written is not None  # the write found it, and nothing deletes it meanwhile
    return _resources(session, org, [written], base)[0]


def delete_user(
    session: Session,
    *,
    actor: Principal,
    org: Organization,
    user_id: str,
    if_match: str | None = None,
) -> None:
    """DELETE /Users/{id}: the user leaves the organization entirely (the seeds' full delete);
    the runs it created stay, attributed to it."""
    _hold_teams(session, org, user_id, None, leaving=True)
    member = _require_for_write(session, actor, org, user_id, if_match, deleting=True)
    users.delete_user(session, actor=actor, org=org, ref=member.user.id)


_MULTI_ACTIVE = (
    "deactivating and reactivating users is not supported in multi-organization mode: "
    "remove the user with DELETE instead"
)


def _save(
    session: Session,
    actor: Principal,
    org: Organization,
    member: OrgUser,
    current: Draft,
    draft: Draft,
    multi: bool,
) -> None:
    """Send the draft's differences through the services (each authorizes and audits)."""
    ref = member.user.id
    if draft.active != current.active:
        if multi:
            raise bad_request(INVALID_VALUE, _MULTI_ACTIVE)
        if draft.active:
            users.set_user_active(session, actor=actor, org=org, ref=ref, active=True)
    changes: dict[str, Any] = {}
    for name in ("user_name", "email", "given_name", "family_name", "external_id"):
        if getattr(draft, name) != getattr(current, name):
            changes[name] = getattr(draft, name)
    if draft.display_name != current.display_name:
        changes["full_name"] = draft.display_name
    if draft.email is None:
        raise bad_request(INVALID_VALUE, "a user needs an email")
    role = draft.organization_role
    if role is not None and role.strip().lower() != (current.organization_role or ""):
        changes["role"] = role
    if changes:
        users.update_user(session, actor=actor, org=org, ref=ref, **changes)
    _team_roles(session, actor, org, member, draft.team_roles)
    if draft.active != current.active and not draft.active:
        users.set_user_active(session, actor=actor, org=org, ref=ref, active=False)


def _team_roles(
    session: Session,
    actor: Principal,
    org: Organization,
    member: OrgUser,
    changes: list[tuple[str, str | None]],
) -> None:
    """The seeds' ``teamRoles``: set the role in each team named (joining it if needed), or
    leave it (``None``); leave every team (``ALL_TEAMS``), or every team that no change names
    (``OTHER_TEAMS``). Predefined role names are case-insensitive, custom ones exact."""
    user_id = member.user.id
    for team_name, role in changes:
        if team_name in (ALL_TEAMS, OTHER_TEAMS):
            kept: set[str] = set()
            if team_name == OTHER_TEAMS:  # the markers' names hold a NUL: no team's
                kept.update(teams.team_ids_named(session, org=org, refs=(n for n, _ in changes)))
            for team, _ in users.teams_of_users(session, org=org, user_ids=[user_id])[user_id]:
                if team.id not in kept:
                    teams.remove_member(session, actor=actor, org=org, team=team, member=user_id)
            continue
        team = teams.get_team(session, org=org, ref=team_name)
        if team is None:
            raise bad_request(INVALID_VALUE, f"no team {team_name[:64]!r} in this organization")
        is_member = bool(teams.member_user_ids(session, team=team, user_ids=[user_id]))
        if role is None:
            if is_member:
                teams.remove_member(session, actor=actor, org=org, team=team, member=user_id)
        elif is_member:
            teams.change_member_role(
                session, actor=actor, org=org, team=team, member=user_id, role=role
            )
        else:
            teams.add_member(
                session,
                actor=actor,
                org=org,
                team=team,
                user=user_id,
                role=role,
                deactivated_ok=True,
            )


# --- applying a body or an operation to a draft ---------------------------------------------


def _apply_body(draft: Draft, body: dict[str, Any]) -> None:
    for key, value in body.items():
        if not isinstance(key, str) or key.lower() in NOT_WRITTEN:
            continue
        _apply(draft, Operation("replace", key, value), lenient=True)


def _apply(draft: Draft, op: Operation, *, lenient: bool = False) -> None:
    """Apply one operation. ``lenient`` (request bodies): unknown attributes are ignored."""
    if op.path is None:
        if op.op == "remove":
            raise bad_request(NO_TARGET, "remove needs a path")
        if not isinstance(op.value, dict):
            raise bad_request(INVALID_VALUE, "an operation without a path needs an object value")
        # Path-less: each key is an attribute path ("name.givenName", "active", ...).
        for key, value in op.value.items():
            # ``schemas`` and ``meta`` beside the attributes (a resource sent whole): ignored.
            if isinstance(key, str) and key.lower() not in READ_ONLY:
                _apply(draft, Operation(op.op, key, value), lenient=lenient)
        return
    if op.path.lower() == USER_URN.lower():
        _apply(draft, Operation(op.op, None, op.value), lenient=lenient)
        return
    node = parse_path(op.path)
    if isinstance(node, AttrPath):
        core, attr, sub = split_urn(node, USER_URN)
        if core:
            _write(draft, op, attr, sub, lenient)
        return
    if isinstance(node, ValuePath):
        core, attr, sub = split_urn(node.attr_path, USER_URN)
        if not core or attr in IGNORED:
            return
        if attr == "emails":
            _write_email_selection(draft, op, node, sub_attr=node.sub_attr)
            return
    raise bad_request(INVALID_PATH, f"unsupported path {op.path[:64]!r}")


def _write(draft: Draft, op: Operation, attr: str, sub: str | None, lenient: bool) -> None:
    remove, value = op.op == "remove", op.value
    if lenient and sub is None and attr in KEPT_WHEN_ABSENT and value in (None, []):
        return
    if attr == "username" and sub is None:
        if remove:
            raise bad_request(MUTABILITY, "userName is required and cannot be removed")
        draft.user_name = text(value, "userName", required=True)
    elif attr == "externalid" and sub is None:
        draft.external_id = None if remove else text(value, "externalId")
    elif attr == "displayname" and sub is None:
        draft.display_name = None if remove else text(value, "displayName")
    elif attr == "name":
        _write_name(draft, remove, sub, value)
    elif attr == "emails":
        if sub in _FIXED_EMAIL_PARTS:
            if not lenient:  # a PUT's read-only values are ignored (RFC 7644 §3.5.1)
                _keep_fixed_email_part(sub, remove, value)
        elif remove or value in (None, []):
            raise bad_request(INVALID_VALUE, "a user needs an email; replace it instead")
        elif sub is None:
            _write_emails(draft, value, adding=op.op == "add")
        elif sub == "value":
            draft.email = text(value, "emails.value", required=True)
    elif attr == "active" and sub is None:
        if remove:
            raise bad_request(INVALID_VALUE, "active cannot be removed; set true or false")
        draft.active = boolean(value, "active")
    elif attr == "organizationrole" and sub is None:
        if remove:
            raise bad_request(INVALID_VALUE, "organizationRole cannot be removed; replace it")
        draft.organization_role = text(value, "organizationRole", required=True)
    elif attr == "teamroles" and sub is None:
        _write_team_roles(draft, op.op, value)
    elif attr == "groups":
        if not lenient:
            raise bad_request(MUTABILITY, "groups is read-only here: change membership in /Groups")
    elif attr == "id":
        if not lenient and value != draft.id:
            raise bad_request(MUTABILITY, "id is read-only")
    elif attr in READ_ONLY and not lenient:
        raise bad_request(MUTABILITY, f"{attr} is read-only")
    elif attr in IGNORED or lenient:
        return
    else:
        raise bad_request(INVALID_PATH, f"unknown attribute {attr!r}")


def _write_name(draft: Draft, remove: bool, sub: str | None, value: Any) -> None:
    if sub is None:
        if remove or value is None:  # null: unassigned (RFC 7643 §2.5)
            draft.given_name = draft.family_name = None
            return
        if not isinstance(value, dict):
            raise bad_request(INVALID_VALUE, "name must be an object")
        for key, part in value.items():
            if isinstance(key, str):
                _write_name(draft, False, key.lower(), part)
        return
    if sub == "givenname":
        draft.given_name = None if remove else text(value, "name.givenName")
    elif sub == "familyname":
        draft.family_name = None if remove else text(value, "name.familyName")
    # ``formatted`` and the other parts (honorificPrefix...) are not kept: ignored.


def _write_emails(draft: Draft, value: Any, *, adding: bool = False) -> None:
    """The user's one email: the primary entry, else the work one, else the first.

    ``adding`` (PATCH ``add``, RFC 7644 §3.5.2.1: the entries join the user's emails): an entry
    of another type that is not primary (a home address) is one rolecall does not keep, and
    leaves the stored work address as it is."""
    entries = value if isinstance(value, list) else [value]
    if not all(isinstance(entry, dict) for entry in entries):
        raise bad_request(INVALID_VALUE, "emails must be a list of objects")
    if adding:
        entries = [entry for entry in entries if _may_be_the_work_email(entry)]
        if not entries:
            return
    if not entries:
        raise bad_request(INVALID_VALUE, "a user needs an email")

    def rank(entry: dict[str, Any]) -> int:
        primary = get(entry, "primary")
        if primary is not None and boolean(primary, "emails.primary"):
            return 0
        return 1 if str(get(entry, "type") or "").lower() == EMAIL_TYPE else 2

    chosen = sorted(entries, key=rank)[0]
    draft.email = text(get(chosen, "value"), "emails.value", required=True)


def _may_be_the_work_email(entry: dict[str, Any]) -> bool:
    """Primary, of type work, or of no type: an entry the one stored email may be."""
    primary = get(entry, "primary")
    if primary is not None and boolean(primary, "emails.primary"):
        return True
    kind = get(entry, "type")
    return kind is None or str(kind).lower() == EMAIL_TYPE


def _write_email_selection(
    draft: Draft, op: Operation, node: ValuePath, *, sub_attr: str | None
) -> None:
    """``emails[type eq "work"].value``: the one stored email is the work, primary entry, so a
    selection that matches it writes it. One that names only another type, or entries that are
    not primary, selects an entry rolecall does not keep: accepted, nothing stored. One that
    names what the stored email is not (``value eq "someone.else@x"``) matches no entry: RFC
    7644 §3.5.2.3 makes that ``noTarget``, and writing the stored email instead would change an
    address the client never selected."""
    if not _selects_stored_email(node.val_filter, draft.email):
        if _names_only_kind(node.val_filter):
            return
        raise bad_request(NO_TARGET, f"no email of the user matches {node.val_filter}")
    if op.op == "remove":
        raise bad_request(INVALID_VALUE, "a user needs an email; replace it instead")
    if sub_attr is None:
        _write_emails(draft, op.value if isinstance(op.value, list) else [op.value])
    elif sub_attr.lower() == "value":
        draft.email = text(op.value, "emails.value", required=True)
    elif sub_attr.lower() in _FIXED_EMAIL_PARTS:
        _keep_fixed_email_part(sub_attr.lower(), False, op.value)


#: The stored email's read-only parts (the Schemas document says so) and their one value: what
#: a value filter sees of them (it has no ``display`` or other sub-attributes).
_FIXED_EMAIL_PARTS: dict[str, Any] = {"type": EMAIL_TYPE, "primary": True}


def _keep_fixed_email_part(sub: str, remove: bool, value: Any) -> None:
    """``emails.type`` or ``emails.primary`` set to what it is already: accepted, nothing to
    do. Any other value, or removing it, is ``mutability`` (RFC 7644 §3.5.2: a PATCH must suit
    the attribute's mutability), not an answer of 200 that kept nothing."""
    fixed = _FIXED_EMAIL_PARTS[sub]
    if not remove and value is not None:
        same = boolean(value, "emails.primary") if sub == "primary" else str(value).lower()
        if same == fixed:
            return
    raise bad_request(
        MUTABILITY, f"emails.{sub} is read-only: the one email stored is the work, primary one"
    )


def _selects_stored_email(node: FilterNode, email: str | None) -> bool:
    """Whether a value filter matches the stored email (its address, type work, primary)."""
    if isinstance(node, LogicalExpr):
        results = [_selects_stored_email(term, email) for term in node.terms]
        return all(results) if node.op.value == "and" else any(results)
    if isinstance(node, Not):
        return not _selects_stored_email(node.expr, email)
    if isinstance(node, Comparison | Present):
        name = node.attr_path.attr.lower()
        stored = email if name == "value" else _FIXED_EMAIL_PARTS.get(name)
        if stored is None:
            return False
        if isinstance(node, Present):
            return True
        return compare_constant(stored, node.op, node.value, f"emails.{name}")
    return False  # a nested value path: no sub-attribute of an email is multi-valued


def _names_only_kind(node: FilterNode) -> bool:
    """Whether a value filter names no more than an entry's ``type`` and ``primary``."""
    if isinstance(node, LogicalExpr):
        return all(_names_only_kind(term) for term in node.terms)
    if isinstance(node, Not):
        return _names_only_kind(node.expr)
    if isinstance(node, Comparison | Present):
        return node.attr_path.attr.lower() in _FIXED_EMAIL_PARTS
    return False


def _write_team_roles(draft: Draft, op: str, value: Any) -> None:
    if value is None or (op == "replace" and value == []):
        # RFC 7644 §3.5.2.2: a remove without a value unassigns the attribute, and so does a
        # replace with null or [] (RFC 7643 §2.5): the user leaves its teams.
        if op != "add":  # an add of nothing adds nothing
            draft.team_roles.append((ALL_TEAMS, None))
        return
    remove = op == "remove"
    if draft.replacing:
        draft.team_roles.append((OTHER_TEAMS, None))
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad_request(INVALID_VALUE, "teamRoles holds objects with teamName and roleName")
        team = text(get(entry, "teamName"), "teamRoles.teamName", required=True)
        assert team is not None
        if remove:
            draft.team_roles.append((team, None))
        else:
            role = text(get(entry, "roleName"), "teamRoles.roleName", required=True)
            draft.team_roles.append((team, role))
