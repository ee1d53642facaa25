"""Secrets shown once, stored as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "rc_"
SESSION_PREFIX = "rcs_"
ACCESS_TOKEN_PREFIX = "rct_"


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A random secret with a recognisable prefix (so leaked keys are easy to scan for).

    Hex, so it holds no ``-``: the wandb SDK refuses keys with fewer than 40 characters after
    their first ``-``; ``rc_`` and 64 hex characters pass its check.
    """
    return prefix + secrets.token_hex(nbytes)


#: Domain separation for secrets derived from the server's secret key.
_DERIVED_LABEL = b"rolecall derived API key v1\x00"


def derived_secret(server_key: bytes, key_id: str, prefix: str = API_KEY_PREFIX) -> str:
    """A key secret the server can compute again from its secret key and the key's id.

    Used for service-account keys that the wandb SDK can only receive by reading the team
    (``members[].apiKey``). Only its digest is stored, as for every key; computing it needs
    both the server's secret key and the key's row.
    """
    mac = hmac.new(server_key, _DERIVED_LABEL + key_id.encode("utf-8"), hashlib.sha256)
    return prefix + mac.hexdigest()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def hint(secret: str) -> str:
    """What listings show: the prefix and a few characters, never enough to use."""
    return secret[: len(API_KEY_PREFIX) + 6]
