"""What every write to teams' members does to the rows around them, on every path: a SCIM
group's PATCH or PUT, a SCIM user's ``teamRoles``, the REST API's member writes, a user's
removal from the organization.

Lock order (PostgreSQL). A writer holds each row it changes until it commits, and two writers
that take the same rows in opposite orders deadlock: PostgreSQL notices only after its
``deadlock_timeout`` (1 s by default) and fails one of them, which rolecall then runs again
(``web.deps._in_transaction``). So that this stays rare, writers of team memberships take
rows in one order: the teams' rows first (``hold``, in id order), then the members' org
memberships, then the team memberships. A SCIM group's write holds its team from before its
``If-Match`` check; a user's write holds the teams it is about to change before its own row.
SQLite needs none of it: a writer holds the database's one write lock from its first
statement.

Joining and leaving. A write that adds users to a team holds their org memberships so that
they stay in the organization until it commits (``keep_in_org``, a lock the other writers of
those rows do not wait for), and a user's removal from the organization takes its org
membership outright (``seal_leaving``) and waits for such additions. Without that, a user
added to a team while it was being removed stayed in the team, outside the organization; and
a team it joined just before the removal took its row was changed without being held.

``lastModified``. A team's members are part of its SCIM group, and a user's teams part of its
SCIM user, so a change to them moves both ``meta.lastModified`` (RFC 7643 §3.1). The rows are
stamped as the transaction commits (``mark_changed``, ``mark_members_changed``): each once,
however often it changed, and the members' org memberships all together, in user id order.
Stamped as they changed, one write could take them in two batches (a group PATCH that adds
some members, then removes others) and cross another writer's order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from rolecall.db.session import ChangedMeanwhile, runs_again
from rolecall.orgs.models import OrgMembership
from rolecall.teams.models import Team
from rolecall.teams.queries import team_ids_of_user

#: ``session.info`` key: the teams whose members changed in the transaction, with the time.
_CHANGED_TEAMS = "rolecall.changed_teams"
#: ``session.info`` key: the users whose teams or team roles changed, by org, with the time.
_CHANGED_MEMBERS = "rolecall.changed_members"
#: ``session.info`` keys: the teams the transaction holds (``hold``), and the
#: ``(org_id, user_id)`` whose teams it holds (``hold_teams_of``).
_HELD_TEAMS = "rolecall.held_teams"
_HELD_MEMBERS = "rolecall.held_members"
#: Users stamped by one statement (SQLite allows 32,766 parameters, PostgreSQL 65,535).
MEMBERS_PER_STATEMENT = 10_000


def hold(session: Session, team_ids: Iterable[str]) -> None:
    """Hold the teams' rows until the transaction ends (PostgreSQL ``FOR NO KEY UPDATE``, in
    id order), before the writer takes any member's row. Holding a team twice is a no-op."""
    ids = sorted(set(team_ids))
    if ids and _postgres(session):
        query = select(Team.id).where(Team.id.in_(ids)).order_by(Team.id)
        session.execute(query.with_for_update(key_share=True))
        session.info.setdefault(_HELD_TEAMS, set()).update(ids)


def hold_teams_of(session: Session, *, org_id: str, user_id: str, also: Iterable[str] = ()) -> None:
    """``hold`` the user's teams of ``org_id``, and the teams ``also`` names. The user's are
    looked up once per transaction: a SCIM DELETE holds them before its ``If-Match`` check,
    and the removal it calls then finds them held."""
    held = session.info.setdefault(_HELD_MEMBERS, set())
    ids = list(also)
    if (org_id, user_id) not in held:
        ids += team_ids_of_user(session, org_id=org_id, user_id=user_id)
        held.add((org_id, user_id))
    hold(session, ids)


def keep_in_org(session: Session, org_id: str, user_ids: Iterable[str]) -> dict[str, bool]:
    """For a write about to add the users to a team (or a project): whether each is an
    active member of ``org_id`` (missing: not a member), with its org membership held until
    the transaction ends (PostgreSQL ``FOR KEY SHARE``, in user id order), so that it stays
    in the organization until the addition commits. A removal from the organization waits for the
    addition (``seal_leaving``); the addition waits for a removal under way and then finds
    the user gone. Other writers of the membership (a role, ``lastModified``) do not wait."""
    query = (
        select(OrgMembership.user_id, OrgMembership.active)
        .where(OrgMembership.org_id == org_id, OrgMembership.user_id.in_(sorted(set(user_ids))))
        .order_by(OrgMembership.user_id)
    )
    if _postgres(session):
        query = query.with_for_update(read=True, key_share=True)
    return {user_id: active for user_id, active in session.execute(query)}


def seal_leaving(session: Session, membership: OrgMembership) -> None:
    """For a user about to leave the organization, after ``hold_teams_of``: hold its org
    membership (PostgreSQL ``FOR UPDATE``; no team can gain it meanwhile, ``keep_in_org``),
    then check that every team it is in is held. A team it joined after ``hold_teams_of``
    looked (the addition committed before this lock) is not, and taking it now would cross
    ``hold``'s order: the work runs again from its start (``ChangedMeanwhile``), finding that
    team first. Where nothing will run it again, it holds the team here and risks the
    deadlock PostgreSQL would then break."""
    if not _postgres(session):
        return
    sealed = select(OrgMembership.id).where(OrgMembership.id == membership.id)
    session.execute(sealed.with_for_update())
    teams = team_ids_of_user(session, org_id=membership.org_id, user_id=membership.user_id)
    joined = set(teams) - session.info.get(_HELD_TEAMS, set())
    if joined and runs_again(session):
        raise ChangedMeanwhile("the user joined a team while leaving the organization")
    hold(session, joined)


def mark_changed(session: Session, team_id: str, when: datetime) -> None:
    """Stamp the team's ``updated_at`` with ``when`` as the transaction commits."""
    changed = session.info.setdefault(_CHANGED_TEAMS, {})
    changed[team_id] = max(when, changed.get(team_id, when))


def mark_members_changed(
    session: Session, org_id: str, user_ids: Iterable[str], when: datetime
) -> None:
    """Stamp the users' org memberships' ``updated_at`` with ``when`` as the transaction
    commits; the rows the session holds show it at once, so the request's answer (and its
    version) agree with what is stored."""
    ids = set(user_ids)
    changed = session.info.setdefault(_CHANGED_MEMBERS, {}).setdefault(org_id, {})
    for user_id in ids:
        changed[user_id] = max(when, changed.get(user_id, when))
    for row in session.identity_map.values():
        if isinstance(row, OrgMembership) and row.org_id == org_id and row.user_id in ids:
            set_committed_value(row, "updated_at", changed[row.user_id])


def created_with_its_changes(
    session: Session, *, team_id: str | None = None, member: tuple[str, str] | None = None
) -> None:
    """Stamp nothing at commit for the team, or the ``(org_id, user_id)`` member, created in
    this transaction with its members or teams: they are part of its creation, and its
    ``lastModified`` equals ``created`` (RFC 7643 §3.1)."""
    if team_id is not None:
        session.info.get(_CHANGED_TEAMS, {}).pop(team_id, None)
    if member is not None:
        org_id, user_id = member
        session.info.get(_CHANGED_MEMBERS, {}).get(org_id, {}).pop(user_id, None)


@event.listens_for(Session, "before_commit")
def _stamp_changed_rows(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release: the transaction's own commit stamps them
    _forget_holds(session)
    teams = session.info.pop(_CHANGED_TEAMS, None)
    members = session.info.pop(_CHANGED_MEMBERS, None)
    for team_id, when in sorted((teams or {}).items()):
        # Never back in time: a rename flushed later in the transaction stamped it already.
        later = or_(Team.updated_at.is_(None), Team.updated_at < when)
        session.execute(update(Team).where(Team.id == team_id, later).values(updated_at=when))
    for org_id, changed in sorted((members or {}).items()):
        _stamp_members(session, org_id, changed)


def _postgres(session: Session) -> bool:
    # SQLite needs no row locks: a writer holds the database's one write lock.
    return session.get_bind().dialect.name != "sqlite"


def _stamp_members(session: Session, org_id: str, changed: dict[str, datetime]) -> None:
    ids = sorted(changed)
    postgres = _postgres(session)
    in_org = OrgMembership.org_id == org_id
    for first in range(0, len(ids), MEMBERS_PER_STATEMENT):
        chunk = ids[first : first + MEMBERS_PER_STATEMENT]
        if postgres and len(chunk) > 1:
            # An UPDATE takes its rows in whatever order it finds them: held first, in order.
            hold_rows = select(OrgMembership.id).where(in_org, OrgMembership.user_id.in_(chunk))
            session.execute(
                hold_rows.order_by(OrgMembership.user_id).with_for_update(key_share=True)
            )
        by_time: dict[datetime, list[str]] = {}
        for user_id in chunk:
            by_time.setdefault(changed[user_id], []).append(user_id)
        for when, user_ids in by_time.items():
            stamp = update(OrgMembership).where(in_org, OrgMembership.user_id.in_(user_ids))
            session.execute(
                stamp.values(updated_at=when),
                execution_options={"synchronize_session": False},  # shown already
            )


@event.listens_for(Session, "after_rollback")
def _forget_changed_rows(session: Session) -> None:
    # A savepoint undone lets go of the rows it locked.
    _forget_holds(session)
    if session.in_nested_transaction():
        return  # a savepoint undone: what the transaction changed before it still stands
    session.info.pop(_CHANGED_TEAMS, None)
    session.info.pop(_CHANGED_MEMBERS, None)


def _forget_holds(session: Session) -> None:
    session.info.pop(_HELD_TEAMS, None)
    session.info.pop(_HELD_MEMBERS, None)
