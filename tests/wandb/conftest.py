"""The real ``wandb`` SDK against a live rolecall: a uvicorn server on loopback serving the
test's app (its sessions bound to the test's rolled-back transaction), and an environment in
a temporary directory so nothing reads or writes the real home, netrc or wandb settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from rolecall.settings import Settings
from tests.sdk.conftest import Dispatcher, live_server  # noqa: F401 (a fixture)

#: The server's secret key in these tests (service-account keys are derived from it).
SECRET_KEY = "wandb-tests-secret-key-0123456789abcdef"

WANDB_ENV = (
    "WANDB_API_KEY",
    "WANDB_BASE_URL",
    "WANDB_ENTITY",
    "WANDB_ORGANIZATION",
    "WANDB_USERNAME",
    "WANDB_USER_EMAIL",
    "WANDB_IDENTITY_TOKEN_FILE",
    "WANDB_CREDENTIALS_FILE",
    "WANDB_MODE",
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, host="testserver", port=80, secret_key=SECRET_KEY)


@pytest.fixture(autouse=True)
def wandb_home(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """HOME, netrc and every wandb directory in the test's temporary directory."""
    home = tmp_path / "home"
    home.mkdir()
    for name in WANDB_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / ".netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv(
        "WANDB_CREDENTIALS_FILE", str(home / ".config" / "wandb" / "credentials.json")
    )
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    return home


@pytest.fixture
def base_url(live_server: tuple[str, Dispatcher], client: TestClient) -> Iterator[str]:  # noqa: F811
    """The live server's URL, serving this test's app (the one ``client`` drives)."""
    url, dispatcher = live_server
    dispatcher.target = client.app
    yield url
    dispatcher.target = None


@pytest.fixture
def wandb_api(base_url: str) -> Callable[..., object]:
    """``wandb.Api`` acting with ``key`` against the live server."""
    import wandb

    def make(key: str, **kwargs: object) -> object:
        return wandb.Api(api_key=key, overrides={"base_url": base_url}, timeout=15, **kwargs)

    return make
