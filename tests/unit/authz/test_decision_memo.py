"""authz.load remembers a decision until the session writes: the same question asked twice in
one request loads the facts once, and a change (flushed or pending) is always seen."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rolecall.authz import load
from rolecall.authz.permissions import Permission
from rolecall.orgs.models import OrgMembership
from tests import factories
from tests.factories import World
from tests.unit.authz.test_load import as_user


def test_same_question_twice_is_one_decision(db: Session, org: World):
    first = load.check(db, as_user(org.admin), Permission.ORG_MANAGE_USERS, org.org)
    second = load.check(db, as_user(org.admin), Permission.ORG_MANAGE_USERS, org.org)

    assert first.allowed and second is first


def test_a_pending_change_is_seen(db: Session, org: World):
    user = factories.user(db, org.org, role="admin")
    assert load.check(db, as_user(user), Permission.ORG_MANAGE_USERS, org.org).allowed
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == user.id))

    membership.role = "member"  # not flushed: the memo must not answer

    assert not load.check(db, as_user(user), Permission.ORG_MANAGE_USERS, org.org).allowed


def test_a_flush_forgets_the_decisions(db: Session, org: World):
    user = factories.user(db, org.org, role="admin")
    before = load.check(db, as_user(user), Permission.ORG_MANAGE_USERS, org.org)
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == user.id))
    membership.active = False
    db.flush()

    after = load.check(db, as_user(user), Permission.ORG_MANAGE_USERS, org.org)

    assert before.allowed and not after.allowed
