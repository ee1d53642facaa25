"""``teams.writes``: the rows a team-membership write stamps as its transaction commits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from rolecall.db.base import utcnow
from rolecall.db.session import RUNS_AGAIN, ChangedMeanwhile
from rolecall.teams import writes
from rolecall.teams.models import Team
from rolecall.users.queries import org_membership
from tests import factories
from tests.statements import statements_sent


def test_a_savepoint_undone_keeps_what_the_transaction_changed_before_it(
    db: Session, org: factories.World
) -> None:
    """SQLAlchemy announces a savepoint's rollback as a rollback: the changes marked before it
    are still stamped at the commit."""
    team = factories.team(db, org.org, name="stamped")
    db.commit()
    before = team.updated_at
    when = utcnow() + timedelta(seconds=5)
    writes.mark_changed(db, team.id, when)
    try:
        with db.begin_nested():
            raise LookupError("an attempt the request recovers from")
    except LookupError:
        pass
    db.commit()
    db.expire_all()
    stamped = db.get(Team, team.id)
    assert stamped is not None and stamped.updated_at != before
    assert stamped.updated_at.replace(tzinfo=None) == when.replace(tzinfo=None)


def test_a_savepoint_released_stamps_nothing_yet(db: Session, org: factories.World) -> None:
    team = factories.team(db, org.org, name="later")
    db.commit()
    before = team.updated_at
    writes.mark_changed(db, team.id, utcnow() + timedelta(seconds=5))
    with db.begin_nested():
        pass
    db.expire_all()
    assert db.get(Team, team.id).updated_at == before  # type: ignore[union-attr]
    db.rollback()
    db.expire_all()
    assert db.get(Team, team.id).updated_at == before  # type: ignore[union-attr]


def _lookups_of_teams(sent: list[str]) -> int:
    return sum("FROM team_memberships" in statement for statement in sent)


def test_a_user_s_teams_are_looked_up_once_per_transaction(
    db: Session, org: factories.World
) -> None:
    """A SCIM DELETE holds the user's teams before its ``If-Match`` check, and the removal it
    calls holds them again: the second hold finds them held. A transaction that ends (here a
    rollback, which may have let go of them) looks them up afresh."""
    user = factories.user(db, org.org)
    factories.member(db, factories.team(db, org.org), user)
    with statements_sent(db) as sent:
        writes.hold_teams_of(db, org_id=org.org.id, user_id=user.id)
        writes.hold_teams_of(db, org_id=org.org.id, user_id=user.id)
    assert _lookups_of_teams(sent) == 1
    db.rollback()
    with statements_sent(db) as sent:
        writes.hold_teams_of(db, org_id=org.org.id, user_id=user.id)
    assert _lookups_of_teams(sent) == 1


@pytest.mark.postgres_only
@pytest.mark.parametrize("runs_again", [True, False])
def test_a_leaving_user_s_team_not_held_runs_the_work_again_or_is_held_now(
    db: Session, org: factories.World, runs_again: bool
) -> None:
    """``seal_leaving`` finds a team the leaving user is in that ``hold_teams_of`` did not
    hold (here: never called; live, a team joined meanwhile). Work that runs again is run
    again, holding it first; the last attempt (or the CLI) holds it now instead."""
    user = factories.user(db, org.org)
    team = factories.team(db, org.org)
    factories.member(db, team, user)
    membership = org_membership(db, org.org.id, user.id)
    assert membership is not None
    db.info[RUNS_AGAIN] = runs_again
    try:
        if runs_again:
            with pytest.raises(ChangedMeanwhile):
                writes.seal_leaving(db, membership)
        else:
            with statements_sent(db) as sent:
                writes.seal_leaving(db, membership)
            assert any("FROM teams" in s and "FOR NO KEY UPDATE" in s for s in sent), sent
    finally:
        db.info.pop(RUNS_AGAIN, None)


@pytest.mark.postgres_only
def test_a_leaving_user_s_teams_held_first_are_not_run_again(
    db: Session, org: factories.World
) -> None:
    user = factories.user(db, org.org)
    factories.member(db, factories.team(db, org.org), user)
    membership = org_membership(db, org.org.id, user.id)
    assert membership is not None
    db.info[RUNS_AGAIN] = True
    try:
        writes.hold_teams_of(db, org_id=org.org.id, user_id=user.id)
        writes.seal_leaving(db, membership)  # raises ChangedMeanwhile if a team was missed
    finally:
        db.info.pop(RUNS_AGAIN, None)
