"""Derived key secrets and the server secret key setting."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from rolecall.identity.secrets import API_KEY_PREFIX, derived_secret, new_secret
from rolecall.settings import Settings

#: The wandb SDK's client-side check: after the first ``-``, 40+ of ``[A-Za-z0-9_-]``.
WANDB_KEY = re.compile(r"^(?:[^-]*-)?[\w-]{40,}$")


def test_derived_secrets_depend_on_the_server_key_and_the_key_id():
    a = derived_secret(b"k" * 32, "id-1")
    assert a == derived_secret(b"k" * 32, "id-1")
    assert a != derived_secret(b"k" * 32, "id-2")
    assert a != derived_secret(b"j" * 32, "id-1")
    assert a.startswith(API_KEY_PREFIX)


@pytest.mark.parametrize(
    "make", [lambda: new_secret(API_KEY_PREFIX), lambda: derived_secret(b"k", "x")]
)
def test_keys_pass_the_wandb_sdks_format_check(make):
    for _ in range(200):
        secret = make()
        assert WANDB_KEY.fullmatch(secret) and "-" not in secret


def test_the_secret_key_is_at_least_32_characters():
    assert Settings(secret_key="s" * 32).secret_key_bytes == b"s" * 32
    assert Settings(secret_key="").secret_key_bytes is None
    assert Settings().secret_key_bytes is None
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(secret_key="short")
    assert "s" * 32 not in repr(Settings(secret_key="s" * 32))
