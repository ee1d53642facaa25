"""SDK fixtures: an ``Api`` talking over real HTTP to a uvicorn server on a loopback port.

One uvicorn server per test process (started on first use, stopped at the end) forwards each
request to the current test's app, built like the ``client`` fixture's: its sessions are bound
to the test's rolled-back transaction, so ``db`` and ``tests.factories`` arrange and inspect
what the SDK sees. The SDK uses its own ``httpx.Client``: nothing of the server is imported.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
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
    "ROLECALL_IDENTITY_TOKEN_FILE",
    "WANDB_IDENTITY_TOKEN_FILE",
    "WANDB_CREDENTIALS_FILE",
)
START_TIMEOUT = 30


class Dispatcher:
    """An ASGI app forwarding HTTP requests to ``target`` (the current test's app)."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.target is None:
            raise RuntimeError("no test app is being served")
        await self.target(scope, receive, send)


@pytest.fixture(scope="session")
def live_server() -> Iterator[tuple[str, Dispatcher]]:
    """A real HTTP server on 127.0.0.1 (a free port), in a background thread."""
    dispatcher = Dispatcher()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(dispatcher, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the SDK tests' uvicorn server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", dispatcher
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture(autouse=True)
def _clean_sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SDK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def base_url(live_server: tuple[str, Dispatcher], client: TestClient) -> Iterator[str]:
    """The live server's URL, serving this test's app (the same one ``client`` drives)."""
    url, dispatcher = live_server
    dispatcher.target = client.app
    yield url
    dispatcher.target = None


@pytest.fixture
def api_for(base_url: str) -> Iterator[Callable[..., Api]]:
    """An ``Api`` acting with ``secret`` over HTTP (extra keyword arguments go to ``Api``)."""
    made: list[Api] = []

    def make(secret: str | None, **kwargs: object) -> Api:
        api = Api(base_url=base_url, api_key=secret, **kwargs)  # type: ignore[arg-type]
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(api_for: Callable[..., Api], org) -> Api:  # type: ignore[no-untyped-def]
    """The org admin's ``Api``."""
    return api_for(org.admin_key)
