"""``db.rows.insert_now`` and ``insert_rows``: rows inserted with plain INSERTs end up exactly
as a flush would leave them, on both backends."""

from __future__ import annotations

from sqlalchemy import func, select

from rolecall import authz
from rolecall.audit.models import AuditEvent
from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.authz.load import _MEMO
from rolecall.authz.permissions import Permission
from rolecall.db.rows import insert_now, insert_rows
from rolecall.identity.principal import Principal
from rolecall.teams.models import Team
from rolecall.users.models import User


def new_user(name: str) -> User:
    return User(
        email=f"{name}@example.com",
        email_key=f"{name}@example.com",
        username=name,
        username_key=name,
    )


def test_the_columns_python_defaults_are_filled_as_a_flush_would(db):
    user = new_user("ada")

    insert_now(db, user)

    assert user.id and len(user.id) == 36
    assert user.created_at is not None and user.created_at.tzinfo is not None
    stored = db.execute(select(User.id, User.created_at).where(User.username_key == "ada")).one()
    assert stored == (user.id, user.created_at)


def test_an_inserted_object_is_persistent_so_later_changes_are_updates(db):
    user = new_user("grace")
    insert_now(db, user)

    assert db.get(User, user.id) is user
    user.full_name = "Grace Hopper"
    db.flush()

    db.expire_all()
    assert db.get(User, user.id).full_name == "Grace Hopper"
    assert (
        db.scalar(select(func.count()).select_from(User).where(User.username_key == "grace")) == 1
    )


def test_rows_may_refer_to_earlier_ones_and_to_pending_changes(db, org):
    pending = new_user("linus")
    pending.id = "00000000-0000-4000-8000-00000000000a"
    db.add(pending)  # not flushed yet: insert_now flushes it first
    personal = Team(org_id=org.org.id, name="linus", name_key="linus", kind="personal")
    personal.personal_owner_id = pending.id

    insert_now(db, personal)

    assert db.scalar(select(User.id).where(User.username_key == "linus")) == pending.id
    assert db.get(Team, personal.id).storage_type == "default"  # a scalar default


def test_the_database_numbers_an_autoincrement_key(db):
    first = AuditEvent(actor_type="operator", surface="cli", action="a.b", object_type="x")
    second = AuditEvent(actor_type="operator", surface="cli", action="a.b", object_type="x")

    insert_now(db, first, second)

    assert isinstance(first.seq, int) and second.seq > first.seq
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.seq == second.seq)) == second.id


def test_the_policy_engine_forgets_its_memoised_decisions(db, org):
    admin = Principal(
        PrincipalKind.USER, org.admin.username, CredentialKind.API_KEY, user_id=org.admin.id
    )
    authz.check(db, admin, Permission.ORG_READ, org.org)
    assert db.info.get(_MEMO)

    insert_now(db, new_user("barbara"))

    assert not db.info.get(_MEMO)


# --- insert_rows -------------------------------------------------------------------------------


def audit_row(action: str) -> dict[str, str]:
    return {"actor_type": "operator", "surface": "cli", "action": action, "object_type": "x"}


def test_insert_rows_fills_each_rows_defaults_and_keeps_the_order(db):
    insert_rows(db, AuditEvent, [audit_row(f"row.{i}") for i in range(3)])

    stored = db.execute(
        select(AuditEvent.action, AuditEvent.id, AuditEvent.at)
        .where(AuditEvent.action.like("row.%"))
        .order_by(AuditEvent.seq)
    ).all()
    assert [action for action, _, _ in stored] == ["row.0", "row.1", "row.2"]
    assert len({row_id for _, row_id, _ in stored}) == 3  # a default called for each row
    assert all(at is not None and at.tzinfo is not None for _, _, at in stored)


def test_insert_rows_may_refer_to_pending_changes_and_makes_no_objects(db, org):
    pending = new_user("margaret")
    pending.id = "00000000-0000-4000-8000-00000000000b"
    db.add(pending)  # not flushed yet: insert_rows flushes it first

    row = {"org_id": org.org.id, "name": "margaret", "name_key": "margaret", "kind": "personal"}
    insert_rows(db, Team, [row | {"personal_owner_id": pending.id}])

    team = db.scalars(select(Team).where(Team.personal_owner_id == pending.id)).one()
    assert team.storage_type == "default"  # a scalar default
    assert not db.new


def test_insert_rows_of_nothing_sends_nothing_and_the_engine_forgets_its_decisions(db, org):
    admin = Principal(
        PrincipalKind.USER, org.admin.username, CredentialKind.API_KEY, user_id=org.admin.id
    )
    authz.check(db, admin, Permission.ORG_READ, org.org)
    insert_rows(db, AuditEvent, [])
    assert db.info.get(_MEMO)

    insert_rows(db, AuditEvent, [audit_row("forget.me")])

    assert not db.info.get(_MEMO)
