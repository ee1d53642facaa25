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

The host is resolved and every address it resolves to must pass. The connection then
resolves the name again: a DNS server answering differently the second time (rebinding) is
not caught here. Where that matters, name the providers by address in
``ROLECALL_OUTBOUND_ALLOW`` or keep an egress firewall.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from rolecall.settings import OrgMode, Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

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
        reached. A name that does not resolve passes: the connection fails by itself."""
        name = host.strip("[]").lower().rstrip(".")
        if name in self.allowed_hosts:
            return
        for address in _addresses(name, port):
            reason = self.refusal(address)
            if reason is not None:
                shown = host if host.strip("[]") == str(address) else f"{host} ({address})"
                raise DestinationRefused(
                    f"{shown} is {reason}; ROLECALL_OUTBOUND_ALLOW can permit it"
                )

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

    def check_request(self, request: httpx.Request) -> None:
        """An httpx request hook: runs before every request of a client, redirects included."""
        url = request.url
        self.check(url.host, url.port or (443 if url.scheme == "https" else 80))

    def client(
        self, timeout: float, verify: ssl.SSLContext, *, follow_redirects: bool = False
    ) -> httpx.Client:
        """An httpx client whose every request (redirects too) passes ``check`` first."""
        return httpx.Client(
            timeout=timeout,
            verify=verify,
            follow_redirects=follow_redirects,
            max_redirects=3,
            event_hooks={"request": [self.check_request]},
        )


#: The rule when nothing else is said: single-org mode, nothing added.
SINGLE_ORG = Destinations()


def _addresses(name: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
