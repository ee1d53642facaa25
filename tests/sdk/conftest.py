"""SDK fixtures: an ``Api`` driving the app in-process through its TestClient."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from rolecall import Api

#: Variables the SDK reads; cleared so the runner's environment cannot leak into a test.
SDK_ENV = (
    "ROLECALL_BASE_URL",
    "ROLECALL_API_KEY",
    "WANDB_BASE_URL",
    "WANDB_API_KEY",
    "WANDB_USERNAME",
    "WANDB_USER_EMAIL",
)


@pytest.fixture(autouse=True)
def _clean_sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api_for(client: TestClient) -> Callable[..., Api]:
    """An ``Api`` acting with ``secret`` (extra keyword arguments go to ``Api``)."""

    def make(secret: str | None, **kwargs: object) -> Api:
        return Api(api_key=secret, client=client, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def api(api_for: Callable[..., Api], org) -> Api:  # type: ignore[no-untyped-def]
    """The org admin's ``Api``."""
    return api_for(org.admin_key)
