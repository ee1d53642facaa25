"""Local passwords: argon2id."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

MIN_PASSWORD_LENGTH = 8


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
