"""A real OpenLDAP ``slapd`` per test session (so per xdist worker), on ports free at run time.

``slapd``: the strict directory (anonymous bind refused, like AD); ``slapd_anon``: a second one
that allows anonymous bind and read. Both serve ``ldap://`` (with StartTLS) and ``ldaps://``
from a throwaway CA (``ca_file``); the data is ``tests/idp/slapd/data.ldif``. Needs the Debian
packages ``slapd`` and ``ldap-utils`` (``scripts/test.sh`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SLAPD_DIR = Path(__file__).resolve().parents[1] / "slapd"
BASE = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PW = "admin-pw"
SERVICE_DN = f"cn=svc-rolecall,ou=services,{BASE}"
SERVICE_PW = "svc-pw"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


@dataclass
class Slapd:
    workdir: Path
    port: int
    ldaps_port: int
    anonymous: bool

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "certs" / "ca.crt")

    def modify(self, ldif: str) -> None:
        """Change the directory as its root DN (``ldapmodify``)."""
        subprocess.run(
            ["ldapmodify", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PW],
            input=ldif, text=True, check=True, capture_output=True, timeout=10,
        )  # fmt: skip

    def counters(self) -> dict[str, int]:
        """Binds and connections the server has seen (its ``cn=Monitor`` counters).

        Reading them costs one connection and one bind of their own, counted in the answer.
        """
        out = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PW,
             "-b", "cn=Monitor", "(|(cn=Bind)(cn=Total))", "monitorOpInitiated", "monitorCounter"],
            text=True, check=True, capture_output=True, timeout=10,
        ).stdout  # fmt: skip
        values: dict[str, int] = {}
        current = ""
        for line in out.splitlines():
            if line.startswith("dn: "):
                current = "binds" if line.startswith("dn: cn=Bind") else "connections"
            elif line.startswith(("monitorOpInitiated: ", "monitorCounter: ")):
                values[current] = int(line.split(": ", 1)[1])
        return values


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start(workdir: Path, *, anonymous: bool) -> Slapd:
    if not Path("/usr/sbin/slapd").exists() or shutil.which("ldapadd") is None:
        pytest.fail(
            "slapd and ldap-utils are needed for the LDAP tests (apt-get install slapd ldap-utils)"
        )
    env = {**os.environ, "LDAP_ALLOW_ANON": "1" if anonymous else "0"}
    last = ""
    for _ in range(3):  # another process may grab a port between choosing and binding it
        port, ldaps_port = _free_ports(2)
        result = subprocess.run(
            [str(SLAPD_DIR / "start.sh"), str(port), str(workdir), str(ldaps_port)],
            env=env, text=True, capture_output=True, timeout=60,
        )  # fmt: skip
        if result.returncode == 0:
            return Slapd(workdir, port, ldaps_port, anonymous)
        last = result.stderr
        subprocess.run([str(SLAPD_DIR / "stop.sh"), str(workdir)], check=False)
    pytest.fail(f"slapd did not start: {last}")


def _stop(server: Slapd) -> None:
    """SIGTERM without waiting: slapd takes about two seconds to wind down, and its data is
    thrown away anyway (``stop.sh`` is the waiting variant, for use by hand)."""
    pidfile = server.workdir / "slapd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = _start(tmp_path_factory.mktemp("slapd"), anonymous=False)
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def slapd_anon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = _start(tmp_path_factory.mktemp("slapd-anon"), anonymous=True)
    yield server
    _stop(server)


@pytest.fixture(scope="session")
def unreachable_url() -> str:
    """An ``ldap://`` address nothing listens on (connection refused at once)."""
    return f"ldap://127.0.0.1:{_free_ports(1)[0]}"


def settings_values(server: Slapd, **overrides: Any) -> dict[str, Any]:
    """LDAP settings for ``server`` (service bind, StartTLS off, email=mail) as plain values."""
    values: dict[str, Any] = {
        "address": server.url,
        "base_dn": BASE,
        "bind_dn": SERVICE_DN,
        "bind_pw": SERVICE_PW,
        "attributes": {"email": "mail"},
        "tls_enable": False,
        "ca_file": server.ca_file,
        "group_allow_list": (),
        "login": True,
    }
    values.update(overrides)
    return values
