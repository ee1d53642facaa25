"""Secrets shown once, stored as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "rc_"
SESSION_PREFIX = "rcs_"
ACCESS_TOKEN_PREFIX = "rct_"


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A random secret with a recognisable prefix (so leaked keys are easy to scan for)."""
    return prefix + secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hint(secret: str) -> str:
    """What listings show: the prefix and a few characters, never enough to use."""
    return secret[: len(API_KEY_PREFIX) + 6]
