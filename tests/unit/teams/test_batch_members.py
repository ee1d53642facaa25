"""``teams.service.add_users`` and ``remove_users``: many members at once, with what
``add_member`` and ``remove_member`` check, change and record for each, in a number of
statements that does not grow with the number of members (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.errors import InvalidInput, NotFound, PermissionDenied
from rolecall.identity.principal import Principal
from rolecall.projects.models import Project, ProjectMembership
from rolecall.teams import service as teams
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from tests import factories
from tests.factories import World
from tests.statements import statements_sent


def as_user(user: User) -> Principal:
    return Principal(
        PrincipalKind.USER, user.username, CredentialKind.API_KEY, user_id=user.id, surface="scim"
    )


def events(db: Session, action: str, team: Team) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == action, AuditEvent.object_id == team.id)
    return list(db.scalars(query.order_by(AuditEvent.seq)))


def member_ids(db: Session, team: Team) -> list[str]:
    return teams.user_member_ids(db, team=team)


def users(db: Session, org: World, count: int) -> list[User]:
    return [factories.user(db, org.org) for _ in range(count)]


# --- add_users ---------------------------------------------------------------------------------


def test_added_users_join_in_the_order_given_each_with_its_own_audit_event(db, org):
    team = factories.team(db, org.org)
    joining = users(db, org, 5)
    order = [joining[i] for i in (3, 0, 4, 1, 2)]

    added = teams.add_users(
        db, actor=as_user(org.admin), org=org.org, team=team, user_ids=[u.id for u in order]
    )

    assert added == [u.id for u in order]
    assert member_ids(db, team) == added  # members list in the order they joined
    recorded = events(db, "team.member.add", team)
    assert [e.after for e in recorded] == [{"user": u.username, "role": "member"} for u in order]
    assert {(e.surface, e.actor_id, e.org_id, e.object_name) for e in recorded} == {
        ("scim", org.admin.id, org.org.id, team.name)
    }
    rows = db.scalars(select(TeamMembership).where(TeamMembership.team_id == team.id)).all()
    assert {(r.role, r.custom_role_id, r.service_account_id) for r in rows} == {
        ("member", None, None)
    }
    assert len({r.id for r in rows}) == 5


def test_members_already_there_and_repeated_ids_are_added_once(db, org):
    team = factories.team(db, org.org)
    there, new = users(db, org, 2)
    factories.member(db, team, there, role="admin")

    added = teams.add_users(
        db, actor=as_user(org.admin), org=org.org, team=team, user_ids=[there.id, new.id, new.id]
    )

    assert added == [new.id]
    assert sorted(member_ids(db, team)) == sorted([there.id, new.id])
    assert len(events(db, "team.member.add", team)) == 1
    kept = db.scalar(select(TeamMembership.role).where(TeamMembership.user_id == there.id))
    assert kept == "admin"


def test_a_custom_role_is_given_by_its_exact_name(db, org):
    team = factories.team(db, org.org)
    role = factories.custom_role(db, org.org, name="Labeler")
    [user] = users(db, org, 1)

    teams.add_users(
        db, actor=as_user(org.admin), org=org.org, team=team, user_ids=[user.id], role="Labeler"
    )

    row = db.scalars(select(TeamMembership).where(TeamMembership.team_id == team.id)).one()
    assert (row.role, row.custom_role_id) == ("custom", role.id)
    assert events(db, "team.member.add", team)[0].after == {
        "user": user.username,
        "role": "Labeler",
    }


@pytest.mark.parametrize(
    "bad, error",
    # Another organization's user is no user here: refused as an unknown one, telling nothing.
    [("unknown", NotFound), ("outsider", NotFound), ("deactivated", InvalidInput)],
)
def test_an_unknown_id_or_a_user_not_active_in_the_org_adds_nobody(db, org, bad, error):
    team = factories.team(db, org.org)
    [good] = users(db, org, 1)
    other_org = factories.bootstrap(db)
    refused = {
        "unknown": "00000000-0000-4000-8000-000000000000",
        "outsider": factories.user(db, other_org.org).id,
        "deactivated": factories.user(db, org.org, active=False).id,
    }[bad]

    with pytest.raises(error):
        teams.add_users(
            db, actor=as_user(org.admin), org=org.org, team=team, user_ids=[good.id, refused]
        )

    assert member_ids(db, team) == []
    assert events(db, "team.member.add", team) == []


def test_a_deactivated_member_may_join_when_the_caller_allows_it(db, org):
    # SCIM keeps a suspended user's groups; the user holds no permission while deactivated.
    team = factories.team(db, org.org)
    suspended = factories.user(db, org.org, active=False)

    added = teams.add_users(
        db,
        actor=as_user(org.admin),
        org=org.org,
        team=team,
        user_ids=[suspended.id],
        deactivated_ok=True,
    )

    assert added == [suspended.id] == member_ids(db, team)


def test_adding_needs_team_manage_members(db, org):
    team = factories.team(db, org.org)
    plain, newcomer = users(db, org, 2)
    factories.member(db, team, plain, role="member")

    with pytest.raises(PermissionDenied) as refused:
        teams.add_users(db, actor=as_user(plain), org=org.org, team=team, user_ids=[newcomer.id])

    assert refused.value.decision.deciding_rule == policy.RULE_TEAM_ROLE
    assert member_ids(db, team) == [plain.id]


def test_an_org_admin_adding_itself_is_refused_when_admin_team_access_is_disabled(
    db, org, settings
):
    team = factories.team(db, org.org)
    [other] = users(db, org, 1)
    db.info["settings"] = settings.model_copy(update={"disable_admin_team_access": True})

    with pytest.raises(PermissionDenied) as refused:
        teams.add_users(
            db, actor=as_user(org.admin), org=org.org, team=team, user_ids=[other.id, org.admin.id]
        )

    assert refused.value.decision.deciding_rule == policy.RULE_ADMIN_SELF_JOIN
    assert member_ids(db, team) == []


def test_adding_sends_as_many_statements_for_twenty_users_as_for_two(db, org):
    def add(count: int) -> int:
        team = factories.team(db, org.org)
        ids = [u.id for u in users(db, org, count)]
        with statements_sent(db) as sent:
            teams.add_users(db, actor=as_user(org.admin), org=org.org, team=team, user_ids=ids)
        assert len(member_ids(db, team)) == count
        return len(sent)

    assert add(20) == add(2)


# --- remove_users ------------------------------------------------------------------------------


def test_removed_users_leave_the_teams_projects_and_owned_restricted_projects_need_an_owner(
    db, org
):
    team = factories.team(db, org.org)
    role = factories.custom_role(db, org.org, name="Labeler")
    owner, viewer, stays = users(db, org, 3)
    factories.member(db, team, owner, role="admin")
    factories.member(db, team, viewer, custom_role=role)
    factories.member(db, team, stays)
    restricted = factories.project(db, team, visibility="restricted", owner=owner)
    open_project = factories.project(db, team, visibility="team", owner=owner)
    for project in (restricted, open_project):
        factories.project_member(db, project, owner)
        factories.project_member(db, project, stays)
    factories.project_member(db, restricted, viewer)

    removed = teams.remove_users(
        db,
        actor=as_user(org.admin),
        org=org.org,
        team=team,
        user_ids=[viewer.id, owner.id, "not-a-member"],
    )

    assert removed == [viewer.id, owner.id]
    assert member_ids(db, team) == [stays.id]
    left = db.scalars(select(ProjectMembership.user_id)).all()
    assert sorted(left) == sorted([stays.id, stays.id])
    db.expire_all()
    assert db.get(Project, restricted.id).owner_needed is True
    assert db.get(Project, open_project.id).owner_needed is False
    recorded = events(db, "team.member.remove", team)
    assert [(e.before, e.detail) for e in recorded] == [
        (
            {"user": viewer.username, "role": "Labeler"},
            "left 1 project memberships; 0 restricted projects need a new owner",
        ),
        (
            {"user": owner.username, "role": "admin"},
            "left 2 project memberships; 1 restricted projects need a new owner",
        ),
    ]


def test_removing_only_non_members_changes_and_records_nothing(db, org):
    team = factories.team(db, org.org)
    [outside] = users(db, org, 1)

    removed = teams.remove_users(
        db, actor=as_user(org.admin), org=org.org, team=team, user_ids=[outside.id]
    )

    assert removed == []
    assert events(db, "team.member.remove", team) == []


def test_removing_needs_team_manage_members(db, org):
    team = factories.team(db, org.org)
    plain, other = users(db, org, 2)
    factories.member(db, team, plain, role="member")
    factories.member(db, team, other, role="member")

    with pytest.raises(PermissionDenied) as refused:
        teams.remove_users(db, actor=as_user(plain), org=org.org, team=team, user_ids=[other.id])

    assert refused.value.decision.deciding_rule == policy.RULE_TEAM_ROLE
    assert sorted(member_ids(db, team)) == sorted([plain.id, other.id])


def test_removing_sends_as_many_statements_for_twenty_users_as_for_two(db, org):
    def remove(count: int) -> int:
        team = factories.team(db, org.org)
        leaving = users(db, org, count)
        for user in leaving:
            factories.member(db, team, user)
            factories.project_member(db, factories.project(db, team, owner=user), user)
        ids = [u.id for u in leaving]
        with statements_sent(db) as sent:
            teams.remove_users(db, actor=as_user(org.admin), org=org.org, team=team, user_ids=ids)
        assert member_ids(db, team) == []
        return len(sent)

    assert remove(20) == remove(2)


# --- more ids than one statement may name ------------------------------------------------------


@contextmanager
def stock_parameter_limit(db: Session) -> Iterator[None]:
    """SQLite's default limit of parameters a statement (Debian builds it higher); PostgreSQL's
    65,535 is its protocol's."""
    raw = db.connection().connection.dbapi_connection
    if not isinstance(raw, sqlite3.Connection):
        yield
        return
    kept = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)
    try:
        yield
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, kept)


def test_removing_more_ids_than_one_statement_may_name(db, org):
    # A group replaced or emptied through SCIM names every member it had: a company's can hold
    # more than SQLite's 32,766 or PostgreSQL's 65,535 parameters a statement.
    team = factories.team(db, org.org)
    leaving = users(db, org, 2)
    for user in leaving:
        factories.member(db, team, user)
    strangers = [f"00000000-0000-4000-8000-{i:012d}" for i in range(70_000)]

    with stock_parameter_limit(db):
        removed = teams.remove_users(
            db,
            actor=as_user(org.admin),
            org=org.org,
            team=team,
            user_ids=[*strangers[:40_000], leaving[1].id, *strangers[40_000:], leaving[0].id],
        )

    assert removed == [leaving[1].id, leaving[0].id]
    assert member_ids(db, team) == []


def test_ids_beyond_one_statement_are_taken_in_further_rounds_in_order(db, org, monkeypatch):
    monkeypatch.setattr(teams, "IDS_PER_STATEMENT", 2)
    team = factories.team(db, org.org)
    joining = users(db, org, 5)
    ids = [u.id for u in joining]
    admin = as_user(org.admin)

    assert teams.add_users(db, actor=admin, org=org.org, team=team, user_ids=ids) == ids
    assert member_ids(db, team) == ids
    assert [e.after["user"] for e in events(db, "team.member.add", team)] == [
        u.username for u in joining
    ]

    leaving = ids[1:]
    assert teams.remove_users(db, actor=admin, org=org.org, team=team, user_ids=leaving) == leaving
    assert member_ids(db, team) == ids[:1]
    assert len(events(db, "team.member.remove", team)) == 4
