"""Helpers to reach per-session context (the settings the session was opened with)."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from rolecall.settings import Settings, get_settings

#: ``session.info`` key: the session has committed (a request's work then stands in part, as
#: after ``commit_before_calling_out`` or an audited refusal kept by an early commit).
COMMITTED = "rolecall.committed"

#: SQLSTATEs of a transaction that failed only because of others running beside it (on
#: PostgreSQL, where writers do not take turns for the whole database as on SQLite):
#: ``deadlock_detected`` (PostgreSQL broke a cycle of transactions waiting for each other's rows
#: by failing one of them), ``serialization_failure``, and ``unique_violation`` and
#: ``foreign_key_violation``: a row this transaction found missing (a membership it adds) was
#: inserted meanwhile, or one it refers to (a user, a team) was deleted meanwhile.
_LOST_TO_CONTENTION = frozenset({"40P01", "40001", "23505", "23503"})

#: ``session.info`` key: the work of the session's transaction runs again from its start if it
#: is lost to contention (set by the web layer's runner while it has retries left).
RUNS_AGAIN = "rolecall.runs_again"


class ChangedMeanwhile(Exception):
    """Raised by work that found, once it held its rows, that a writer beside it had changed
    what the work planned around before taking them (a team a leaving user joined meanwhile,
    which it did not hold: ``teams.writes.seal_leaving``). The work runs again from its start
    (``lost_to_contention``), as after a deadlock, but without waiting for one first."""


def session_settings(session: Session) -> Settings:
    """The settings the session's creator attached, else the process settings."""
    settings = session.info.get("settings")
    return settings if isinstance(settings, Settings) else get_settings()


def commit_before_calling_out(session: Session) -> None:
    """Commit what the request did so far, before a call to another server (an identity
    provider's endpoints, a directory) or other slow work that needs no database (checking a
    password with argon2id): the one place a service ends a transaction.

    A writer's transaction holds SQLite's single write lock (on PostgreSQL, a connection and
    any row locks) from its first query. A call out may take its whole timeout, a password
    check a tenth of a second or more, and no other request should wait for either. The work
    before must therefore stand on its own
    (a claimed sign-in state, an audited failure) or be reads only; the next query begins a
    new transaction, which the request's end commits or rolls back as usual.
    """
    if session.in_transaction():
        session.commit()


@event.listens_for(Session, "after_commit")
def _note_commit(session: Session) -> None:
    # SQLAlchemy announces a savepoint's release as a commit too; only the transaction's own
    # commit makes work stand.
    if not session.in_nested_transaction():
        session.info[COMMITTED] = True


def lost_to_contention(error: BaseException) -> bool:
    """Whether ``error`` may have failed a transaction only because others ran beside it, so
    that the same work, run again from its start, sees what they did and succeeds or is refused
    the usual way (a 404 for the row deleted meanwhile, a 409 or a no-op for the one added).
    PostgreSQL documents running such transactions again for deadlocks and serialization
    failures. ``StaleDataError``: a row this transaction read was deleted or changed before its
    UPDATE or DELETE reached it. ``ChangedMeanwhile``: the work noticed such a change itself.
    SQLite's writers take turns, so none of this comes from them."""
    if isinstance(error, (StaleDataError, ChangedMeanwhile)):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) if isinstance(error, DBAPIError) else None
    return sqlstate in _LOST_TO_CONTENTION


def runs_again(session: Session) -> bool:
    """Whether the work of ``session``'s transaction runs again from its start if it is lost
    to contention: the web runner has retries left and nothing of it is committed yet."""
    return session.info.get(RUNS_AGAIN, False) and COMMITTED not in session.info


def runs_again_after(session: Session, error: BaseException) -> bool:
    """Whether ``error`` lost ``session``'s transaction to a concurrent writer and its work
    will run again from the start: a service that would refuse such an error itself (a name
    taken at the same moment) lets it through instead, and the work run again is answered as a
    lone request would be (it then joins the user the other request created, or refuses the
    taken name in the usual words)."""
    return lost_to_contention(error) and runs_again(session)
