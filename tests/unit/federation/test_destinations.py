"""Where calls to identity providers may go (``federation.destinations``): the rule by address
and mode, ``ROLECALL_OUTBOUND_ALLOW``, and a redirect checked like the first request."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from rolecall.federation import destinations
from rolecall.federation.destinations import (
    SINGLE_ORG,
    DestinationRefused,
    Destinations,
    parse_allowed,
)
from rolecall.federation.jwks import FetchFailed, fetch_json
from rolecall.settings import Settings
from tests.resolver import Names
from tests.slow_answers import http_answer, send_slowly

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
    MULTI_ORG.check("x" * 64 + ".example.org", 443)  # a label too long to look up


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


# --- the address checked is the address connected to (DNS rebinding) -----------------------

#: Multi-org mode, with the operator allowing 127.0.0.1 only: 127.0.0.2 stands for an address
#: a rebinding DNS server would point a checked name to (a metadata service, an admin port).
LOOPBACK_ONE = Destinations.of(Settings(mode="multi", outbound_allow="127.0.0.1"))


class _Answering(BaseHTTPRequestHandler):
    """Answers every GET with 200 and the server's name, and notes the request; with the
    server's ``drip`` set, sends the answer a byte at a time from its status line on."""

    server: Served

    def do_GET(self) -> None:
        self.server.requests.append(self.requestline)
        body = json.dumps({"server": self.server.name}).encode()
        if self.server.drip is not None:
            send_slowly(self.wfile, http_answer(200, body), self.server.drip)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Served(ThreadingHTTPServer):
    """An HTTP server on ``host``:``port`` (0: a free one), over TLS with ``tls``, noting what
    it is asked; a context manager that serves meanwhile."""

    def __init__(
        self, name: str, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__((host, port), _Answering)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.name = name
        self.requests: list[str] = []
        self.port = self.server_address[1]
        #: Seconds between the bytes of each answer (None: all at once).
        self.drip: float | None = None

    def __enter__(self) -> Served:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Names:
    return Names(monkeypatch)


def get(
    rule: Destinations, url: str, verify: ssl.SSLContext | None = None, deadline: float = 5.0
) -> httpx.Response:
    with rule.client(5.0, verify or ssl.create_default_context(), deadline=deadline) as client:
        return client.get(url)


def test_a_name_is_looked_up_once_and_connected_to_at_the_address_checked(names):
    """A DNS server answering an allowed address to the check and another to the connection
    (rebinding) gains nothing: the connection goes to the address that was checked."""
    with Served("checked") as checked, Served("rebound", "127.0.0.2", checked.port) as rebound:
        names.answer("idp.test", ["127.0.0.1"], ["127.0.0.2"])
        response = get(LOOPBACK_ONE, f"http://idp.test:{checked.port}/jwks")
        assert response.json() == {"server": "checked"}
        assert checked.requests == ["GET /jwks HTTP/1.1"]
        assert rebound.requests == []
        assert names.lookups["idp.test"] == 1


def test_a_refused_answer_is_not_connected_to_whatever_the_next_lookup_says(names):
    with Served("checked") as checked:
        names.answer("idp.test", ["127.0.0.2"], ["127.0.0.1"])
        with pytest.raises(DestinationRefused, match=r"^idp\.test \(127\.0\.0\.2\) is not a"):
            get(LOOPBACK_ONE, f"http://idp.test:{checked.port}/jwks")
        assert checked.requests == []
        assert names.lookups["idp.test"] == 1


def test_every_address_of_the_answer_must_pass(names):
    with Served("checked") as checked:
        names.answer("idp.test", ["127.0.0.1", "127.0.0.2"])
        with pytest.raises(DestinationRefused, match=r"idp\.test \(127\.0\.0\.2\)"):
            get(LOOPBACK_ONE, f"http://idp.test:{checked.port}/jwks")
        assert checked.requests == []


def test_the_addresses_of_a_name_are_tried_in_turn(names):
    with Served("checked") as checked:
        names.answer("idp.test", ["127.0.0.3", "127.0.0.1"])  # nothing listens on 127.0.0.3
        assert get(SINGLE_ORG, f"http://idp.test:{checked.port}/").json() == {"server": "checked"}
        assert names.lookups["idp.test"] == 1


def test_a_host_allowed_by_name_is_connected_to_without_the_rule(names):
    rule = Destinations.of(Settings(mode="multi", outbound_allow="idp.test"))
    with Served("checked") as checked:
        names.answer("idp.test", ["127.0.0.1"])
        assert get(rule, f"http://idp.test:{checked.port}/").json() == {"server": "checked"}


def test_a_name_that_does_not_resolve_fails_to_connect():
    with pytest.raises(httpx.ConnectError, match="not known"):
        get(SINGLE_ORG, "http://no-such-host.invalid/")


def test_a_refused_redirect_reaches_the_caller_as_a_refusal(redirecting):
    client = SINGLE_ORG.client(
        5.0, ssl.create_default_context(), deadline=5.0, follow_redirects=True
    )
    with client, pytest.raises(DestinationRefused, match=r"^169\.254\.169\.254 is a link-local"):
        client.get(redirecting + "/")


# --- TLS: the certificate is still checked against the host name ---------------------------


@dataclass
class Authority:
    """A certificate authority of the tests' own, and a server certificate it signed for
    ``localhost`` (for the name only, no address in it)."""

    ca_pem: str
    cert_file: str
    key_file: str

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _signed(
    subject: str, key: ec.EllipticCurvePublicKey, ca_key: ec.EllipticCurvePrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rolecall-test-ca")]))
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _signed("rolecall-test-ca", ca_key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        ), True),
    ])  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _signed("localhost", key.public_key(), ca_key, [
        (x509.SubjectAlternativeName([x509.DNSName("localhost")]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
    ])  # fmt: skip
    where = tmp_path_factory.mktemp("tls")
    (where / "server.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (where / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
    return Authority(ca_pem, str(where / "server.crt"), str(where / "server.key"))


@pytest.fixture
def https(authority: Authority) -> Iterator[tuple[Served, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with the ``localhost`` certificate, and the server names
    its clients sent (SNI)."""
    sent: list[str | None] = []
    context = authority.server_context()
    context.sni_callback = lambda _socket, name, _context: sent.append(name)
    with Served("tls", tls=context) as served:
        yield served, sent


def test_tls_checks_the_certificate_against_the_name_not_the_address(https, authority, names):
    served, sent = https
    names.answer("localhost", ["127.0.0.1"])
    url = f"https://localhost:{served.port}/"
    assert get(SINGLE_ORG, url, authority.client_context()).json() == {"server": "tls"}
    assert names.lookups["localhost"] == 1  # connected to the address looked up...
    assert sent == ["localhost"]  # ...with the name as SNI, and its certificate accepted


def test_tls_refuses_a_certificate_for_another_name_at_the_same_address(https, authority, names):
    served, sent = https
    names.answer("idp.test", ["127.0.0.1"])
    with pytest.raises(httpx.ConnectError, match=r"Hostname mismatch.*'idp\.test'"):
        get(SINGLE_ORG, f"https://idp.test:{served.port}/", authority.client_context())
    # Nor does the address the name led to stand in for the name.
    with pytest.raises(httpx.ConnectError, match="IP address mismatch"):
        get(SINGLE_ORG, f"https://127.0.0.1:{served.port}/", authority.client_context())
    assert served.requests == []
    assert sent == ["idp.test", None]  # no SNI for an address (RFC 6066 §3)


# --- proxies of the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) --------------


def test_a_proxy_of_the_environment_is_still_used_the_name_checked_first(monkeypatch, names):
    """Through a proxy the proxy looks the name up: rolecall checks the name before."""
    with Served("proxy") as proxy, Served("direct") as direct:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        names.answer("idp.test", ["127.0.0.1"])
        assert get(SINGLE_ORG, "http://idp.test/jwks").json() == {"server": "proxy"}
        assert proxy.requests == ["GET http://idp.test/jwks HTTP/1.1"]
        with pytest.raises(DestinationRefused, match=r"^169\.254\.169\.254 is a link-local"):
            get(SINGLE_ORG, "http://169.254.169.254/latest/meta-data/")
        assert len(proxy.requests) == 1
        # Named by NO_PROXY: straight to the server, through the checked connection.
        assert get(SINGLE_ORG, f"http://127.0.0.1:{direct.port}/").json() == {"server": "direct"}
        assert len(proxy.requests) == 1


# --- one deadline for the whole exchange (federation.deadline) -------------------------------


def test_an_answer_sent_a_byte_at_a_time_is_cut_off_at_the_deadline():
    """Each read is within the 5 s timeout; the exchange as a whole is not. Before, a server
    dripping its status line and headers held the request as long as it went on."""
    with Served("slow") as slow:
        slow.drip = 0.05  # about 5 s in all
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout, match=r"whole exchange took more than 0\.4 s"):
            get(SINGLE_ORG, f"http://127.0.0.1:{slow.port}/", deadline=0.4)
        assert time.monotonic() - started < 2
        slow.drip = None
        assert get(SINGLE_ORG, f"http://127.0.0.1:{slow.port}/").json() == {"server": "slow"}


def test_a_proxy_of_the_environment_keeps_the_deadline_too(monkeypatch, names):
    with Served("proxy") as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        names.answer("idp.test", ["127.0.0.1"])
        proxy.drip = 0.05
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout, match=r"whole exchange took more than 0\.4 s"):
            get(SINGLE_ORG, "http://idp.test/jwks", deadline=0.4)
        assert time.monotonic() - started < 2
        assert proxy.requests == ["GET http://idp.test/jwks HTTP/1.1"]


def test_a_tls_handshake_never_answered_ends_at_the_deadline():
    with socket.socket() as silent:  # the kernel accepts the connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout, match=r"whole exchange took more than 0\.4 s"):
            get(SINGLE_ORG, f"https://127.0.0.1:{silent.getsockname()[1]}/", deadline=0.4)
        assert time.monotonic() - started < 2


# --- a resolver that does not answer ---------------------------------------------------------


def test_a_lookup_the_resolver_does_not_answer_is_given_up_at_the_timeout(names):
    """``getaddrinfo`` takes no timeout: a resolver answering nobody held each request, and
    its worker thread, for the resolver's retries (30 s and more)."""
    names.hang("slow.test")
    try:
        started = time.monotonic()
        with pytest.raises(OSError, match=r"^'slow\.test' did not resolve within 0\.3 s$"):
            SINGLE_ORG.addresses("slow.test", 443, timeout=0.3)
        with pytest.raises(httpx.ConnectError, match=r"did not resolve within 0\.4 s"):
            get(SINGLE_ORG, "http://slow.test/jwks", deadline=0.4)  # the deadline bounds it
        assert time.monotonic() - started < 3
    finally:
        names.release()
    assert SINGLE_ORG.addresses("slow.test", 443) == ["127.0.0.1"]


def test_lookups_waiting_on_the_resolver_are_bounded(names, monkeypatch):
    monkeypatch.setattr(destinations, "_lookups", threading.BoundedSemaphore(1))
    names.hang("slow.test")
    try:
        with pytest.raises(OSError, match="did not resolve"):
            SINGLE_ORG.addresses("slow.test", 443, timeout=0.1)
        started = time.monotonic()  # the first lookup still waits: none more is started
        with pytest.raises(OSError, match=r"^too many host name lookups are already waiting"):
            SINGLE_ORG.addresses("other.test", 443)
        assert time.monotonic() - started < 0.5
    finally:
        names.release()
    for _ in range(50):  # the hung lookup ends once the resolver answers, freeing its place
        if destinations._lookups.acquire(timeout=0.1):
            destinations._lookups.release()
            break
    assert SINGLE_ORG.addresses("slow.test", 443) == ["127.0.0.1"]
