"""Local passwords: argon2id."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

MIN_PASSWORD_LENGTH = 8

#: How long ``LOCAL_RESTORE``'s temporary password signs in after start-up set it (and only
#: while the server still runs with ``LOCAL_RESTORE``): a recovery is a matter of hours, and a
#: password printed to a log must not stay good for ever.
RESTORE_PASSWORD_LIFETIME = timedelta(hours=24)
#: The ``BrowserSession.method`` of a session that password opened: it lasts no longer than the
#: password, and ends when the server runs without ``LOCAL_RESTORE``.
RESTORE_METHOD = "local_restore"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash or not password:
        # Still spend the time of a verification so timing does not reveal which failed.
        spend_verification_time()
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def spend_verification_time() -> None:
    """Spend what a verification costs (one argon2id hash with the same parameters) where no
    local password is checked, so timing does not tell that none was."""
    _hasher.hash("x" * 12)


def temporary_password() -> str:
    return secrets.token_urlsafe(18)


def restore_password_ends(set_at: datetime) -> datetime:
    """When a ``LOCAL_RESTORE`` password set at ``set_at`` stops signing in."""
    return set_at + RESTORE_PASSWORD_LIFETIME


def restore_password_current(set_at: datetime | None, *, now: datetime) -> bool:
    """Whether a ``LOCAL_RESTORE`` password set at ``set_at`` is still within its lifetime
    (``RESTORE_PASSWORD_LIFETIME``); one set in the future (a clock moved back) is not."""
    return set_at is not None and set_at <= now < restore_password_ends(set_at)
