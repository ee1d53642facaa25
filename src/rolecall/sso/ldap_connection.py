"""Reaching the directory: its address, the connection, StartTLS and the binds (ldap3).

``ldap.Directory`` runs these as its steps; each failure is an ``LdapError`` naming the step
(connect, tls, bind, password) with a stable code and a detail for the administrator.
Certificates are always verified (``CERT_REQUIRED``) against the configured CA file or the
system's bundle, and must name the configured host. The connection goes only to the addresses
``federation.destinations`` looked up and checked (``PinnedServer``), and referrals are never
followed: the directory would choose where to connect next.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ldap3 import ANONYMOUS, NONE, SIMPLE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPSASLPrepError, LDAPSSLConfigurationError, LDAPStartTLSError
from ldap3.protocol.sasl.sasl import sasl_prep

from rolecall.sso.ldap_errors import (
    CONFIDENTIALITY_REQUIRED,
    INAPPROPRIATE_AUTHENTICATION,
    INVALID_CREDENTIALS,
    UNWILLING_TO_PERFORM,
    LdapError,
    lost,
    result_error,
    tls_reason,
)

DEFAULT_PORTS = {"ldap": 389, "ldaps": 636}


@dataclass(frozen=True)
class Endpoint:
    """Where the directory is and how to secure the connection."""

    host: str
    port: int
    ldaps: bool
    start_tls: bool


def parse_address(address: str | None, *, tls_enable: bool) -> Endpoint:
    """``ldap://host[:port]`` or ``ldaps://host[:port]``; raises ``LdapError`` (step connect)."""
    text = (address or "").strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme.lower() not in DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.username
    ):
        raise LdapError(
            "connect",
            "ldap_invalid_settings",
            f"the address {text!r} is not ldap://host[:port] or ldaps://host[:port]",
        )
    scheme = parts.scheme.lower()
    ldaps = scheme == "ldaps"
    return Endpoint(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        ldaps=ldaps,
        start_tls=tls_enable and not ldaps,
    )


class PinnedServer(Server):  # type: ignore[misc]  # ldap3 has no type hints
    """A directory reached only at ``addresses``, not at what its host name resolves to when a
    connection opens (ldap3 would look the name up there again, and a DNS server could answer
    an address never checked). The host stays the name, so TLS checks the certificate against
    the name alone: ldap3 accepts a certificate naming ``Server.host``, so with an address as
    the host a certificate for the address would pass too."""

    def __init__(self, host: str, addresses: list[str], **options: Any) -> None:
        super().__init__(host, **options)
        self._pinned = [
            # ldap3's form of a getaddrinfo entry: plus whether it answered, and when.
            [*info, None, None]
            for address in addresses
            for info in socket.getaddrinfo(
                address, self.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        ]

    @property
    def address_info(self) -> list[list[Any]]:
        """What ldap3 connects to (and otherwise resolves the host name for)."""
        return self._pinned


def make_connection(
    endpoint: Endpoint,
    addresses: list[str],
    ca_file: str | None,
    *,
    connect_timeout: int,
    receive_timeout: int,
) -> Connection:
    """An unopened, read-only, anonymous connection to ``endpoint``, made to ``addresses`` only
    (the host's, as ``Destinations.addresses`` checked them), TLS set up for LDAPS or StartTLS,
    following no referral; ``LdapError`` (step tls) when the CA file cannot be read."""
    tls = None
    if endpoint.ldaps or endpoint.start_tls:
        try:
            tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file)
        except LDAPSSLConfigurationError:
            raise LdapError(
                "tls", "ldap_tls_failed", f"the CA file {ca_file} is missing or unreadable"
            ) from None
    server = PinnedServer(
        endpoint.host,
        addresses,
        port=endpoint.port,
        use_ssl=endpoint.ldaps,
        tls=tls,
        get_info=NONE,
        connect_timeout=connect_timeout,
    )
    return Connection(
        server,
        auto_bind=False,
        read_only=True,
        # ldap3 would otherwise answer a referral result by connecting to the host it names
        # (looked up anew, never checked) and binding there with these very credentials.
        auto_referrals=False,
        raise_exceptions=False,
        receive_timeout=receive_timeout,
        authentication=ANONYMOUS,
    )


def start_tls(conn: Connection, endpoint: Endpoint) -> None:
    """Upgrade ``conn`` with StartTLS (RFC 4511 §4.14); ``LdapError`` (step tls)."""
    where = f"{endpoint.host}:{endpoint.port}"
    try:
        # read_server_info=False: a server refusing unauthenticated reads would fail here.
        done = conn.start_tls(read_server_info=False)
    except LDAPStartTLSError as exc:
        raise LdapError(
            "tls", "ldap_tls_failed", f"StartTLS with {where} failed: {tls_reason(str(exc))}"
        ) from None
    except Exception as exc:  # ldap3 raises more than LDAPException
        raise LdapError("tls", "ldap_tls_failed", f"StartTLS with {where} failed: {exc}") from None
    if not done:
        reason = conn.result.get("description") or "refused"
        raise LdapError(
            "tls",
            "ldap_tls_failed",
            f"{where} refused StartTLS ({reason}); is TLS set up there?",
        )


def password_refusal(password: str) -> str | None:
    """Why ``password`` cannot go into a simple bind, or ``None`` when it can.

    ldap3 prepares a simple bind's password with SASLprep (RFC 4013) and refuses, before
    anything is sent, one holding a character the profile prohibits (RFC 4013 §2.3: control
    characters such as NUL and tab, private-use and non-character code points...) or one that
    prepares to nothing. This is that very check, so such a password can be refused before the
    directory is contacted at all.
    """
    try:
        sasl_prep(password)
    except LDAPSASLPrepError as exc:
        return str(exc).removeprefix("SASLprep error: ")
    return None


def bind(conn: Connection, dn: str | None, password: str | None, *, service: bool) -> None:
    """A simple bind as ``dn`` (anonymous without one): the service account's (step bind) or
    the user's, checking its password (step password). Raises ``LdapError``."""
    if dn:
        conn.authentication = SIMPLE
        conn.user = dn
        conn.password = password
    try:
        ok = conn.bind()
    except LDAPSASLPrepError as exc:
        # Refused by ldap3 itself, nothing sent: the password's fault, not the directory's.
        reason = str(exc).removeprefix("SASLprep error: ")
        if service:
            raise LdapError(
                "bind",
                "ldap_bind_failed",
                f"the bind password cannot be sent in a simple bind (SASLprep, RFC 4013: "
                f"{reason}); change LOCAL_LDAP_BIND_PW",
            ) from None
        raise unusable_password(dn, reason) from None
    except Exception as exc:  # ldap3 raises more than LDAPException
        raise lost("bind" if service else "password", exc) from None
    if ok:
        return
    code = conn.result.get("result")
    if not service:
        if code in (INVALID_CREDENTIALS, INAPPROPRIATE_AUTHENTICATION, UNWILLING_TO_PERFORM):
            raise LdapError("password", "ldap_wrong_password", f"wrong password for {dn}")
        raise result_error("password", "ldap_search_failed", f"binding as {dn}", conn)
    if not dn and code in (INAPPROPRIATE_AUTHENTICATION, UNWILLING_TO_PERFORM):
        raise LdapError(
            "bind",
            "ldap_bind_failed",
            "the directory refuses anonymous binds; set a bind DN and password "
            "(LOCAL_LDAP_BIND_DN, LOCAL_LDAP_BIND_PW)",
        )
    if code == INVALID_CREDENTIALS:
        raise LdapError(
            "bind",
            "ldap_bind_failed",
            f"the directory refused the bind DN {dn} or its password",
        )
    if code == CONFIDENTIALITY_REQUIRED:
        raise LdapError(
            "bind",
            "ldap_bind_failed",
            "the directory requires TLS before binding; use ldaps:// or LOCAL_LDAP_TLS_ENABLE",
        )
    raise result_error("bind", "ldap_bind_failed", "the service bind", conn)


def unusable_password(dn: str | None, reason: str) -> LdapError:
    """A user's password that SASLprep refuses: a refusal of the credentials, like a wrong
    password (the sign-in layer says "wrong email or password" for both)."""
    whose = f" for {dn}" if dn else ""
    return LdapError(
        "password",
        "ldap_unusable_password",
        f"the password{whose} cannot be sent in a simple bind (SASLprep, RFC 4013: {reason})",
    )
