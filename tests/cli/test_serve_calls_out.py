"""A sign-in waiting on its directory holds up no other request's writes
(``db.session.commit_before_calling_out``).

On SQLite a writer's transaction holds the database's one write lock from its first query. An
LDAP sign-in that kept its transaction open across the directory's answer would make every
other writer wait for the directory (up to its timeouts). Here a live server's directory sits
behind a proxy that holds the sign-in's LDAP traffic; meanwhile another request must write,
and only then is the directory let through.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.test_serve_workers import basic
from tests.idp.ldap.conftest import BASE, SERVICE_DN, SERVICE_PW, Slapd
from tests.idp.ldap.conftest import slapd as slapd  # the session's directory (a fixture)
from tests.live_server import serving

#: Generous for a write that takes milliseconds; far less than the write turn's wait (5 s).
WRITE_TIMEOUT = 3.0


class GatedProxy:
    """Forwards loopback connections to ``target_port``, each only once ``gate`` is set;
    ``connected`` is set when the first connection arrives."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.gate = threading.Event()
        self.connected = threading.Event()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connected.set()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.gate.wait(30)
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._closing = True
        self.gate.set()
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def held_directory(slapd: Slapd) -> Iterator[GatedProxy]:
    proxy = GatedProxy(slapd.port)
    yield proxy
    proxy.close()


def test_a_sign_in_waiting_on_its_directory_holds_up_no_writer(
    initialised, held_directory: GatedProxy, tmp_path: Path
):
    env = {
        **os.environ,
        "LOCAL_LDAP_ADDRESS": f"ldap://127.0.0.1:{held_directory.port}",
        "LOCAL_LDAP_BASE_DN": BASE,
        "LOCAL_LDAP_BIND_DN": SERVICE_DN,
        "LOCAL_LDAP_BIND_PW": SERVICE_PW,
        "LOCAL_LDAP_ATTRIBUTES": "email=mail",
        "LOCAL_LDAP_LOGIN": "true",
    }
    scim = {**basic(initialised["api_key"]), "Content-Type": "application/scim+json"}
    user = {"userName": "written-meanwhile", "emails": [{"value": "meanwhile@example.com"}]}
    with (
        serving(env, tmp_path / "serve.log") as base_url,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        body = {"email": "bob@example.org", "password": "bob-pw"}
        signing_in = pool.submit(httpx.post, f"{base_url}/api/v1/auth/login", json=body, timeout=30)
        try:
            assert held_directory.connected.wait(20), "the sign-in never reached the directory"
            written = httpx.post(
                f"{base_url}/scim/v2/Users", json=user, headers=scim, timeout=WRITE_TIMEOUT
            )
            still_waiting = not signing_in.done()
        finally:
            held_directory.gate.set()
        signed_in = signing_in.result(timeout=30)

    assert written.status_code == 201, written.text
    assert still_waiting  # the write landed while the sign-in waited on the directory
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["email"] == "bob@example.org"
