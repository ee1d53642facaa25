"""Where rolecall may connect to when it calls an identity provider: the one rule for every
outbound connection (OIDC discovery, token and userinfo endpoints, key sets, federation
issuers, LDAP directories, and every redirect on the way).

Organization admins store these addresses, so without a rule an admin could make the server
connect anywhere it can reach (server-side request forgery): a cloud metadata service, a
database port, an admin console on the private network.

- **Never**, in any mode: unspecified addresses (``0.0.0.0``, ``::``), multicast, link-local
  (``169.254.0.0/16``, ``fe80::/10``; cloud metadata services live at ``169.254.169.254``)
  and the other well-known metadata addresses (``METADATA_NETWORKS``).
- **Multi-org mode**: public addresses only. Organization admins there are tenants, not the
  server's operators; loopback, private (RFC 1918, ``fc00::/7``), shared (``100.64.0.0/10``)
  and the other special-purpose addresses are refused.
- **Single-org mode**: every other address too (private, loopback, ``100.64.0.0/10``...). A
  directory or identity provider behind the firewall is the norm of a self-hosted server, and
  its admins are the operator's.
- ``ROLECALL_OUTBOUND_ALLOW`` (hosts, addresses or networks, comma-separated) lets the
  operator open any of these, in either mode.

A connection looks the host up once, every address of the answer must pass, and it is made
to one of those very addresses (``Destinations.addresses``; httpx clients from ``client``
connect through ``VettedBackend``, LDAP through ``sso.ldap_connection.PinnedServer``), never
to a second lookup's answer: a DNS server answering a public address to the check and
``169.254.169.254`` to the connection (rebinding) gains nothing. TLS still checks the
certificate against the host name, not the address. Through a proxy set in the environment
(``HTTPS_PROXY``...) the proxy looks the name up itself: such a request's host is checked by
name first (``ProxiedTransport``), and the proxy must keep to the rule for its own answers.
LDAP referrals are never followed (``auto_referrals=False``): a directory's answer would name
the next host, and ldap3 would connect there unchecked and bind with the same credentials.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

import httpcore
import httpx

# How httpx reads HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY for a client of its own
# making; a client given a transport, as ours are, reads none of them by itself.
from httpx._utils import get_environment_proxies

from rolecall.federation.deadline import DeadlineBackend
from rolecall.settings import OrgMode, Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Seconds a host name's lookup may take. ``getaddrinfo`` takes no timeout, and a resolver
#: that does not answer keeps it, and the request waiting on it, for its retries (30 s and
#: more); the lookup runs on a thread of its own, left to finish alone when it takes longer.
LOOKUP_TIMEOUT = 5.0
#: Lookups running at once, the slow ones included; past it a lookup is refused at once (a
#: resolver that answers nobody would otherwise gather a thread per request).
MAX_LOOKUPS = 32
_lookups = threading.BoundedSemaphore(MAX_LOOKUPS)

#: Metadata services outside link-local space (AWS's IPv6 one, Alibaba Cloud's).
METADATA_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)


class DestinationRefused(Exception):
    """The address is not one rolecall may connect to; the message says why."""


def parse_allowed(entries: Iterable[str]) -> tuple[frozenset[str], tuple[Network, ...]]:
    """``ROLECALL_OUTBOUND_ALLOW``'s entries as (host names, networks); ``ValueError`` names a
    bad entry."""
    hosts: set[str] = set()
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        labels = entry.split(".")
        if len(entry) > 253 or not all(
            0 < len(label) <= 63 and label.replace("-", "").isalnum() for label in labels
        ):
            raise ValueError(f"{raw.strip()!r} is not a host name, an address or a network")
        hosts.add(entry)
    return frozenset(hosts), tuple(networks)


@dataclass(frozen=True)
class Destinations:
    """The rule in force (the default: single-org mode, nothing added)."""

    private_allowed: bool = True
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> Destinations:
        hosts, networks = parse_allowed((settings.outbound_allow or "").split(","))
        return cls(settings.mode != OrgMode.MULTI, hosts, networks)

    def check(self, host: str, port: int) -> None:
        """Raise ``DestinationRefused`` unless every address ``host`` resolves to may be
        reached: an address refused when it is stored (connections use ``addresses``). A name
        that does not resolve passes: the connection fails by itself."""
        if _bare(host) in self.allowed_hosts:
            return
        with suppress(OSError):
            self.addresses(host, port)

    def addresses(self, host: str, port: int, timeout: float = LOOKUP_TIMEOUT) -> list[str]:
        """The addresses to connect to for ``host``, in the resolver's order: looked up once
        (within ``timeout``, at most ``LOOKUP_TIMEOUT``) and each checked. Connect to these,
        never to the name again: a second lookup may answer what the first did not (DNS
        rebinding). A host allowed by name is not checked.

        Raises ``DestinationRefused``, or ``OSError`` when the name does not resolve in time.
        """
        name = _bare(host)
        found = _resolve(name, port, min(timeout, LOOKUP_TIMEOUT))
        if name in self.allowed_hosts:
            return found
        for text in found:
            address = _address(text)
            reason = self.refusal(address)
            if reason is not None:
                shown = host if host.strip("[]") == str(address) else f"{host} ({address})"
                raise DestinationRefused(
                    f"{shown} is {reason}; ROLECALL_OUTBOUND_ALLOW can permit it"
                )
        return found

    def refusal(self, address: Address) -> str | None:
        """Why ``address`` may not be reached, or None."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return None
        if address.is_unspecified or address.is_multicast:
            return "not an address to connect to"
        if address.is_link_local or any(address in n for n in METADATA_NETWORKS):
            return "a link-local or cloud metadata address"
        if address.is_global or self.private_allowed:
            return None
        return "not a public address (multi-org mode)"

    def client(
        self,
        timeout: float,
        verify: ssl.SSLContext,
        *,
        deadline: float,
        follow_redirects: bool = False,
    ) -> httpx.Client:
        """An httpx client for one exchange that connects only where this rule permits: every
        connection (a redirect's too) goes to an address ``addresses`` gave, and a request
        through a proxy of the environment is checked by name first. A refusal raises
        ``DestinationRefused``. ``timeout`` bounds each operation, ``deadline`` (seconds from
        now) all of them together (``federation.deadline``): ``httpx.TimeoutException``.
        """
        return httpx.Client(
            timeout=timeout,
            follow_redirects=follow_redirects,
            max_redirects=3,
            transport=VettedTransport(self, verify, deadline),
            mounts=self._environment_proxies(verify, deadline),
        )

    def _environment_proxies(
        self, verify: ssl.SSLContext, deadline: float
    ) -> dict[str, httpx.BaseTransport | None]:
        """The environment's proxies, mounted as httpx mounts them on a client without a
        transport of its own, so that an operator's proxy settings work as for any httpx
        client; a URL ``NO_PROXY`` names (None) goes through the client's ``VettedTransport``."""
        return {
            pattern: None
            if proxy is None
            else ProxiedTransport(self, httpx.HTTPTransport(verify=verify, proxy=proxy), deadline)
            for pattern, proxy in get_environment_proxies().items()
        }


#: The rule when nothing else is said: single-org mode, nothing added.
SINGLE_ORG = Destinations()


class VettedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting only to the addresses ``Destinations.addresses``
    gives. httpcore hands it the URL's host name, which the plain backend would look up anew
    for the connection; TLS then starts on the stream with that name, so the certificate is
    still checked against it (and it is the SNI sent)."""

    def __init__(self, destinations: Destinations) -> None:
        self.destinations = destinations

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            lookup = LOOKUP_TIMEOUT if timeout is None else timeout
            *others, last = self.destinations.addresses(host, port, lookup)
        except OSError as exc:  # what the plain backend raises when the name does not resolve
            raise httpcore.ConnectError(str(exc)) from exc
        for address in others:  # in order, as socket.create_connection tries a name's addresses
            with suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
        return super().connect_tcp(last, port, timeout, local_address, socket_options)


class VettedTransport(httpx.HTTPTransport):
    """httpx's transport, its connections made by ``VettedBackend``, all of them ending by
    one deadline (``seconds`` from now)."""

    def __init__(self, destinations: Destinations, verify: ssl.SSLContext, seconds: float) -> None:
        super().__init__(verify=verify)
        # httpx 0.28 takes no network backend (httpcore's pools do): the pool it made is
        # replaced by one that has ours. A client serves one exchange, so the pool's limits,
        # left at httpcore's defaults, hardly matter.
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=verify,
            network_backend=DeadlineBackend(VettedBackend(destinations), seconds),
        )


class ProxiedTransport(httpx.BaseTransport):
    """A proxy of the environment. The proxy looks the name up and connects, out of reach of
    ``VettedBackend``: the request's host is checked here first, by name (its own address is
    the operator's choice, not checked). Its connections end by the client's deadline too."""

    def __init__(
        self, destinations: Destinations, proxy: httpx.HTTPTransport, seconds: float
    ) -> None:
        self.destinations = destinations
        self.proxy = proxy
        # httpx builds the proxy's pool itself (and takes no network backend): the backend it
        # connects with is swapped for one keeping the deadline. httpcore reads it at each
        # connection, so the swap holds for every one.
        pool = proxy._pool
        pool._network_backend = DeadlineBackend(pool._network_backend, seconds)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self.destinations.check(url.host, url.port or (443 if url.scheme == "https" else 80))
        return self.proxy.handle_request(request)

    def close(self) -> None:
        self.proxy.close()


def _bare(host: str) -> str:
    """``host`` as the rule compares it: no brackets, lower case, no final dot."""
    return host.strip("[]").lower().rstrip(".")


def _resolve(name: str, port: int, timeout: float) -> list[str]:
    """The addresses ``name`` resolves to (itself when it is one); ``OSError`` when none, or
    none within ``timeout``."""
    try:
        ipaddress.ip_address(name)
        return [name]
    except ValueError:
        pass
    try:
        found = _look_up(name, port, timeout)
    except UnicodeError as exc:  # a label IDNA cannot encode: no name DNS could answer
        raise OSError(f"{name!r} is not a host name: {exc}") from exc
    return [str(info[4][0]) for info in found]


def _look_up(name: str, port: int, timeout: float) -> list[Any]:
    """``getaddrinfo`` on a daemon thread of its own, waited for at most ``timeout``."""
    if not _lookups.acquire(blocking=False):
        raise OSError("too many host name lookups are already waiting for the resolver")
    outcome: list[Any] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            outcome.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # given to the caller, raised on its own thread
            outcome.append(exc)
        finally:
            _lookups.release()
            done.set()

    threading.Thread(target=look_up, name="rolecall-lookup", daemon=True).start()
    if not done.wait(max(timeout, 0.0)):
        raise OSError(f"{name!r} did not resolve within {round(timeout, 1):g} s")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return cast(list[Any], outcome[0])


def _address(text: str) -> Address:
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return ipaddress.ip_address(text.split("%")[0])
