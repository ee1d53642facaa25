"""identity.sessions: password sign-in, sign-out and revocation, below the HTTP layer."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from rolecall.authz.facts import CredentialKind, PrincipalKind
from rolecall.db.engine import make_engine, make_sessionmaker
from rolecall.db.migrate import upgrade
from rolecall.errors import AuthenticationFailed
from rolecall.identity import sessions
from rolecall.identity.authenticate import authenticate_session
from rolecall.identity.models import BrowserSession
from rolecall.identity.passwords import RESTORE_PASSWORD_LIFETIME
from rolecall.identity.principal import Principal
from rolecall.identity.secrets import SESSION_PREFIX, digest
from rolecall.identity.sessions import (
    SIGN_IN_FAILED,
    revoke_session,
    revoke_user_sessions,
    sign_in_with_password,
    sign_out,
)
from rolecall.orgs.models import Organization, OrgMembership
from rolecall.settings import Settings
from tests import factories

PASSWORD = factories.ADMIN_PASSWORD


@pytest.fixture
def short_sessions() -> Settings:
    return Settings(session_length_hours=5)


def test_sign_in_opens_a_session_stored_as_a_digest(db, org, short_sessions):
    now = datetime.now(UTC)

    signed = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=short_sessions, now=now
    )

    row = signed.browser_session
    assert signed.cookie_secret.startswith(SESSION_PREFIX)
    assert row.digest == digest(signed.cookie_secret) and signed.cookie_secret != row.digest
    assert row.csrf_token == signed.csrf_token and len(signed.csrf_token) >= 32
    assert row.user_id == org.admin.id and row.method == "password"
    assert row.expires_at == now + timedelta(hours=5)
    principal, found = authenticate_session(db, signed.cookie_secret)
    assert found.id == row.id and principal.user_id == org.admin.id


def test_each_sign_in_gets_its_own_secrets(db, org, short_sessions):
    first = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=short_sessions
    )
    second = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=short_sessions
    )

    assert first.cookie_secret != second.cookie_secret
    assert first.csrf_token != second.csrf_token


@pytest.mark.parametrize("email", ["nobody@example.com", "", "x" * 400, "nul\x00@example.com"])
def test_unknown_emails_fail_like_wrong_passwords(db, org, short_sessions, email):
    with pytest.raises(AuthenticationFailed) as unknown:
        sign_in_with_password(db, email=email, password=PASSWORD, settings=short_sessions)
    with pytest.raises(AuthenticationFailed) as wrong:
        sign_in_with_password(db, email=org.admin.email, password="nope", settings=short_sessions)

    assert unknown.value.message == wrong.value.message == SIGN_IN_FAILED
    assert unknown.value.code == wrong.value.code == "sign_in_failed"


def watch_password_checks(monkeypatch, seen: list[object], look) -> None:  # type: ignore[no-untyped-def]
    """Record ``look()`` at the moment each password is checked, then check it as always."""
    real = sessions.verify_password

    def watched(password_hash: str | None, password: str) -> bool:
        seen.append(look())
        return real(password_hash, password)

    monkeypatch.setattr(sessions, "verify_password", watched)


@pytest.mark.parametrize("password", [PASSWORD, "wrong password"])
def test_no_transaction_is_open_while_a_password_is_checked(db, org, monkeypatch, password):
    """argon2id takes a tenth of a second or more: the sign-in holds no transaction (on SQLite,
    the database's one write lock) while it runs, whether the password is right or wrong."""
    seen: list[object] = []
    watch_password_checks(monkeypatch, seen, db.in_transaction)

    if password == PASSWORD:
        signed = sign_in_with_password(db, email=org.admin.email, password=password,
                                       settings=Settings())  # fmt: skip
        assert db.get(BrowserSession, signed.browser_session.id) is not None
    else:
        with pytest.raises(AuthenticationFailed):
            sign_in_with_password(db, email=org.admin.email, password=password,
                                  settings=Settings())  # fmt: skip
    assert seen == [False]


def test_other_writers_commit_while_a_password_is_checked(tmp_path, monkeypatch):
    """On a SQLite file, another request's write commits during the sign-in's argon2id check
    (it would wait for the sign-in's end if the sign-in held the write lock)."""
    url = f"sqlite:///{tmp_path / 'sign-in.db'}"
    upgrade(url)
    engine = make_engine(url)
    make_session = make_sessionmaker(engine)
    with make_session() as arrange:
        world = factories.bootstrap(arrange, org_name="acme")
        email = world.admin.email
        arrange.commit()

    def write_elsewhere() -> None:
        with make_session() as other:
            other.execute(update(Organization).values(name="acme-renamed"))
            other.commit()

    def write_now() -> bool:
        writer = threading.Thread(target=write_elsewhere)
        writer.start()
        writer.join(timeout=5)  # far more than a write takes; the sign-in waits meanwhile
        return not writer.is_alive()

    seen: list[object] = []
    watch_password_checks(monkeypatch, seen, write_now)
    try:
        with make_session() as session:
            sign_in_with_password(session, email=email, password=PASSWORD, settings=Settings())
            session.commit()
        with make_session() as check:
            assert check.scalar(select(Organization.name)) == "acme-renamed"
            assert check.scalar(select(BrowserSession.user_id)) == world.admin.id
    finally:
        engine.dispose()
    assert seen == [True]


def test_a_user_deactivated_everywhere_is_refused(db, org, short_sessions):
    membership = db.scalar(select(OrgMembership).where(OrgMembership.user_id == org.admin.id))
    membership.active = False
    db.flush()

    with pytest.raises(AuthenticationFailed) as refused:
        sign_in_with_password(db, email=org.admin.email, password=PASSWORD, settings=short_sessions)

    assert refused.value.code == "user_deactivated"
    assert db.scalar(select(BrowserSession)) is None


def test_revoking_a_users_sessions_counts_and_stops_them(db, org, short_sessions):
    signed = [
        sign_in_with_password(db, email=org.admin.email, password=PASSWORD, settings=short_sessions)
        for _ in range(2)
    ]
    other = factories.user(db, org.org)

    assert revoke_user_sessions(db, user_id=org.admin.id) == 2
    assert revoke_user_sessions(db, user_id=org.admin.id) == 0
    assert revoke_user_sessions(db, user_id=other.id) == 0
    for s in signed:
        with pytest.raises(AuthenticationFailed):
            authenticate_session(db, s.cookie_secret)


def test_revoke_session_keeps_the_first_revocation_time(db, org, short_sessions):
    signed = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=short_sessions
    )
    first = datetime(2030, 1, 1, tzinfo=UTC)

    revoke_session(db, signed.browser_session, now=first)
    revoke_session(db, signed.browser_session, now=first + timedelta(days=1))

    assert signed.browser_session.revoked_at == first


def test_sign_out_ends_only_the_session_in_use(db, org, short_sessions):
    kept = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=short_sessions
    )
    ended = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=short_sessions
    )
    actor, _ = authenticate_session(db, ended.cookie_secret)

    assert sign_out(db, actor=actor) is True
    assert sign_out(db, actor=actor) is False  # already ended

    assert ended.browser_session.revoked_at is not None
    assert kept.browser_session.revoked_at is None


def test_sign_out_with_another_credential_does_nothing(db, org):
    actor = Principal(
        PrincipalKind.USER, org.admin.username, CredentialKind.API_KEY, user_id=org.admin.id
    )

    assert sign_out(db, actor=actor) is False


# --- LOCAL_RESTORE's temporary password --------------------------------------------------------

RESTORE_ON = Settings(local_restore=True)


def restored(db, org, now: datetime) -> str:
    from rolecall.identity.principal import operator
    from rolecall.orgs.bootstrap import restore_admin_password

    result = restore_admin_password(db, actor=operator("server"), now=now)
    assert result is not None and result.admin == org.admin.email
    assert result.expires_at == now + RESTORE_PASSWORD_LIFETIME
    return result.password


@pytest.mark.parametrize(
    ("after", "signs_in"),
    [(timedelta(0), True),
     (RESTORE_PASSWORD_LIFETIME - timedelta(seconds=1), True),
     (RESTORE_PASSWORD_LIFETIME, False),
     (timedelta(days=30), False),
     (-timedelta(minutes=5), False)],
)  # fmt: skip
def test_the_restore_password_signs_in_for_its_lifetime_only(db, org, after, signs_in):
    set_at = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    password = restored(db, org, set_at)
    now = set_at + after

    if signs_in:
        signed = sign_in_with_password(
            db, email=org.admin.email, password=password, settings=RESTORE_ON, now=now
        )
        assert signed.browser_session.method == "local_restore"
    else:
        with pytest.raises(AuthenticationFailed):
            sign_in_with_password(
                db, email=org.admin.email, password=password, settings=RESTORE_ON, now=now
            )
    # The admin's own password works all along, and is recorded as such.
    own = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=RESTORE_ON, now=now
    )
    assert own.browser_session.method == "password"


def test_the_restore_password_needs_local_restore_on(db, org):
    now = datetime.now(UTC)
    password = restored(db, org, now)

    with pytest.raises(AuthenticationFailed):
        sign_in_with_password(
            db, email=org.admin.email, password=password, settings=Settings(), now=now
        )


def test_restoring_leaves_the_admins_own_password_and_drops_older_restores(db, org):
    now = datetime.now(UTC)
    own_hash = org.admin.password_hash
    other = factories.user(db, org.org, username="former", email="former@example.com")
    other.restore_password_hash, other.restore_password_set_at = "$argon2id$old", now
    db.flush()

    restored(db, org, now)

    db.expire_all()
    assert org.admin.password_hash == own_hash
    assert org.admin.restore_password_set_at == now
    assert (other.restore_password_hash, other.restore_password_set_at) == (None, None)


def test_a_recovery_session_lasts_no_longer_than_its_password(db, org):
    set_at = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    password = restored(db, org, set_at)
    now = set_at + RESTORE_PASSWORD_LIFETIME - timedelta(hours=1)

    signed = sign_in_with_password(
        db, email=org.admin.email, password=password, settings=RESTORE_ON, now=now
    )
    own = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=RESTORE_ON, now=now
    )

    # SESSION_LENGTH is 720 hours: the recovery session ends with its password, an hour on.
    assert signed.lifetime == timedelta(hours=1)
    assert signed.browser_session.expires_at == set_at + RESTORE_PASSWORD_LIFETIME
    assert own.lifetime == timedelta(hours=720)


def test_a_recovery_session_ends_when_the_server_runs_without_local_restore(db, org):
    now = datetime.now(UTC)
    password = restored(db, org, now)
    signed = sign_in_with_password(
        db, email=org.admin.email, password=password, settings=RESTORE_ON, now=now
    )
    own = sign_in_with_password(
        db, email=org.admin.email, password=PASSWORD, settings=RESTORE_ON, now=now
    )

    db.info["settings"] = RESTORE_ON
    assert authenticate_session(db, signed.cookie_secret)[0].user_id == org.admin.id
    db.info["settings"] = Settings()  # restarted without LOCAL_RESTORE
    with pytest.raises(AuthenticationFailed) as ended:
        authenticate_session(db, signed.cookie_secret)
    assert ended.value.code == "session_expired" and "LOCAL_RESTORE" in ended.value.message
    assert authenticate_session(db, own.cookie_secret)[0].user_id == org.admin.id
