"""Where calls to identity providers may go (``federation.destinations``): the rule by address
and mode, ``ROLECALL_OUTBOUND_ALLOW``, and a redirect checked like the first request."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from rolecall.federation.destinations import (
    SINGLE_ORG,
    DestinationRefused,
    Destinations,
    parse_allowed,
)
from rolecall.federation.jwks import FetchFailed, fetch_json
from rolecall.settings import Settings

MULTI_ORG = Destinations.of(Settings(mode="multi"))

NEVER = ["0.0.0.0", "::", "224.0.0.1", "169.254.169.254", "fe80::1", "fd00:ec2::254"]
NOT_PUBLIC = ["127.0.0.1", "::1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.9", "fc00::1"]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]


def refusal(rule: Destinations, address: str) -> str | None:
    return rule.refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NEVER)
def test_metadata_link_local_unspecified_and_multicast_are_refused_in_every_mode(address):
    assert refusal(SINGLE_ORG, address) is not None
    assert refusal(MULTI_ORG, address) is not None


def test_a_v4_mapped_v6_address_is_judged_as_the_v4_address():
    assert "metadata" in (refusal(SINGLE_ORG, "::ffff:169.254.169.254") or "")
    assert refusal(MULTI_ORG, "::ffff:10.0.0.1") == "not a public address (multi-org mode)"


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_single_org_mode_reaches_private_and_loopback_addresses(address):
    assert refusal(SINGLE_ORG, address) is None


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_multi_org_mode_refuses_every_address_that_is_not_public(address):
    assert refusal(MULTI_ORG, address) == "not a public address (multi-org mode)"


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_reached_in_both_modes(address):
    assert refusal(SINGLE_ORG, address) is None
    assert refusal(MULTI_ORG, address) is None


def test_the_allow_list_opens_networks_addresses_and_host_names():
    rule = Destinations.of(
        Settings(mode="multi", outbound_allow="10.1.0.0/16, 169.254.169.254 ,idp.internal.")
    )
    assert refusal(rule, "10.1.200.3") is None
    assert refusal(rule, "10.2.0.1") is not None  # outside the network listed
    assert refusal(rule, "169.254.169.254") is None  # the operator's explicit choice
    rule.check("IdP.Internal", 443)  # listed by name: not even resolved
    with pytest.raises(DestinationRefused, match="not a public address"):
        rule.check("127.0.0.1", 443)


def test_a_host_name_is_judged_by_what_it_resolves_to():
    with pytest.raises(DestinationRefused) as refused:
        MULTI_ORG.check("localhost", 80)
    assert str(refused.value).startswith("localhost (")  # names the address it found
    assert "ROLECALL_OUTBOUND_ALLOW" in str(refused.value)
    SINGLE_ORG.check("localhost", 80)


def test_a_name_that_does_not_resolve_is_left_to_fail_on_its_own():
    MULTI_ORG.check("no-such-host.invalid", 443)


@pytest.mark.parametrize("entry", ["bad host!", "-", "a..b", "x" * 300])
def test_a_bad_allow_list_entry_is_refused_at_start_up(entry):
    with pytest.raises(ValueError, match="not a host name, an address or a network"):
        parse_allowed([entry])
    with pytest.raises(ValidationError, match="outbound_allow"):
        Settings(outbound_allow=f"10.0.0.0/8,{entry}")


def test_an_empty_allow_list_is_unset():
    assert Settings(outbound_allow=" ").outbound_allow is None
    assert parse_allowed(["", " "]) == (frozenset(), ())


class _Redirect(BaseHTTPRequestHandler):
    """Sends every GET on to the cloud metadata address."""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_to_a_refused_address_is_not_followed(redirecting):
    with pytest.raises(FetchFailed, match=r"169\.254\.169\.254 is a link-local or cloud metadata"):
        fetch_json(redirecting + "/.well-known/openid-configuration")


def test_in_multi_org_mode_a_loopback_issuer_is_not_fetched(redirecting):
    with pytest.raises(FetchFailed, match=r"will not fetch .* not a public address"):
        fetch_json(redirecting + "/jwks", MULTI_ORG)
