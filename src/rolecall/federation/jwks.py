"""Finding an issuer's signing keys: OIDC discovery, then its JWKS, cached with a bounded life.

Discovery tries ``${ISSUER}/.well-known/oidc-configuration`` (the seeds' spelling) and then
``${ISSUER}/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4); the keys come
from the document's ``jwks_uri`` (RFC 7517 §5). A cached key set lives at most ``max_age``
seconds; a ``kid`` it does not hold makes it fetch again, at most once per ``refetch_interval``
per issuer, so a key rotation at the issuer needs nothing from an admin and a flood of made-up
``kid`` values cannot make us hammer the issuer. Key URLs in a JWT's header (``jku``, ``x5u``)
are never followed (RFC 8725 §3.10).

The cache is safe to lose (DESIGN.md): each process keeps its own.
"""

from __future__ import annotations

import functools
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from rolecall import strict_json
from rolecall.federation.destinations import SINGLE_ORG, DestinationRefused, Destinations

#: Asymmetric JWS algorithms we verify (RFC 7518 §3.1, RFC 8037 §3.1, and RFC 9864 §2's
#: fully-specified ``Ed25519`` and ``Ed448``, which deprecate the polymorphic ``EdDSA``; that
#: name stays accepted for the issuers that still sign with it). Never ``none`` or HMAC.
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
    | {"EdDSA", "Ed25519", "Ed448"}
)
#: The key type each algorithm family needs.
KEY_TYPE_OF = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
#: An algorithm's curve (RFC 7518 §3.4; RFC 9864 §2: the EdDSA algorithms named by theirs).
CURVE_OF = {
    "ES256": "P-256",
    "ES384": "P-384",
    "ES512": "P-521",
    "Ed25519": "Ed25519",
    "Ed448": "Ed448",
}

DISCOVERY_PATHS = ("/.well-known/oidc-configuration", "/.well-known/openid-configuration")
#: Where an OpenID Provider publishes its metadata (OpenID Connect Discovery 1.0 §4).
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
#: Seconds a fetched key set is used before it is fetched again.
MAX_AGE = 600.0
#: Fewest seconds between two fetches of one issuer's keys caused by an unknown ``kid``.
REFETCH_INTERVAL = 30.0
#: The longest a request waits for another's fetch of the same issuer's keys or metadata.
FETCH_WAIT = 10.0
#: Per request: connect, read, write and pool timeouts.
TIMEOUT = 5.0
#: The longest one exchange may take, its connections, redirects, headers and bodies together
#: (``federation.deadline``): ``TIMEOUT`` bounds each read, and a server sending a byte every
#: few seconds would otherwise hold the request, and a worker thread, as long as it liked.
DEADLINE = 10.0
#: Largest discovery document or key set we read.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_KEYS = 100

PublicKey = RSAKey | ECKey | OKPKey
_T = TypeVar("_T")


class FetchFailed(Exception):
    """The issuer's discovery document or key set could not be fetched or understood."""


class UnknownKey(Exception):
    """No key of the issuer's key set fits the JWT's header."""


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _why_not_https_url(url: str, what: str) -> str | None:
    """Why ``url`` cannot be ``what`` (an issuer, a ``jwks_uri``), or None: an https URL with a
    host (plain http only on loopback) and a valid port."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a port out of range, too
    except ValueError:
        return f"{what} is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return f"{what} is an https URL"
    if parts.scheme == "http" and not _is_loopback(host):
        return f"{what} uses https (plain http only on a loopback address)"
    return None


def check_issuer_url(url: str) -> str | None:
    """Why ``url`` cannot be an issuer, or None: https (http only on loopback), no query or
    fragment (OpenID Connect Discovery 1.0 §3)."""
    why = _why_not_https_url(url, "an issuer")
    if why is not None:
        return why
    parts = urlsplit(url)  # parsed above already: no ValueError here
    if parts.query or parts.fragment:
        return "an issuer URL has no query or fragment"
    return None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every call to an issuer, made once: building them reads the CA
    bundle, which costs more than a loopback request."""
    return httpx.create_ssl_context()


def http_client(destinations: Destinations) -> httpx.Client:
    """A client for one exchange with an issuer: ``TIMEOUT`` for each operation and
    ``DEADLINE`` for all, certificates verified, every request to a destination
    ``destinations`` permits."""
    return destinations.client(TIMEOUT, tls_context(), deadline=DEADLINE)


def read_capped(response: httpx.Response, limit: int = MAX_DOCUMENT_BYTES) -> bytes | None:
    """The body of a streamed ``response``, or None once it passes ``limit`` bytes (read no
    further: a provider's answer is small, and a huge one would be held in memory whole)."""
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return None
    return body


def fetch_json(url: str, destinations: Destinations = SINGLE_ORG) -> dict[str, Any]:
    """GET ``url`` and decode a JSON object; at most ``MAX_DOCUMENT_BYTES``, ``TIMEOUT`` each
    read and ``DEADLINE`` in all; the URL and every redirect must go where ``destinations``
    permits.

    Raises ``FetchFailed`` with a message saying what went wrong.
    """
    problem = check_issuer_url(url)
    if problem:
        raise FetchFailed(f"{url}: {problem}")
    try:
        with (
            destinations.client(
                TIMEOUT, tls_context(), deadline=DEADLINE, follow_redirects=True
            ) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as response,
        ):
            if response.status_code != 200:
                raise FetchFailed(f"{url} answered HTTP {response.status_code}")
            body = read_capped(response)
            if body is None:
                raise FetchFailed(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise FetchFailed(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from exc
    except DestinationRefused as exc:
        raise FetchFailed(f"will not fetch {url}: {exc}") from exc
    try:
        data = strict_json.loads(body)
    except ValueError as exc:
        raise FetchFailed(f"{url} did not send JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise FetchFailed(f"{url} did not send a JSON object")
    return data


Fetch = Callable[[str], dict[str, Any]]


def fetcher(destinations: Destinations) -> Fetch:
    """``fetch_json`` under ``destinations`` (what the app's ``JwksCache`` fetches with)."""
    return functools.partial(fetch_json, destinations=destinations)


def discover(issuer: str, fetch: Fetch = fetch_json) -> str:
    """The issuer's ``jwks_uri``, from its discovery document. Raises ``FetchFailed``."""
    base = issuer.rstrip("/")
    problems: list[str] = []
    for path in DISCOVERY_PATHS:
        try:
            document = fetch(base + path)
        except FetchFailed as exc:
            problems.append(str(exc))
            continue
        stated = document.get("issuer")
        if stated is not None and (not isinstance(stated, str) or stated.rstrip("/") != base):
            # OpenID Connect Discovery 1.0 §4.3: the document must name the same issuer.
            raise FetchFailed(f"{base + path} names another issuer: {str(stated)[:200]!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise FetchFailed(f"{base + path} has no jwks_uri")
        # Stored, a jwks_uri that is no https URL would fail every exchange later.
        why = _why_not_https_url(jwks_uri, "its jwks_uri")
        if why is not None:
            raise FetchFailed(f"{base + path}: {why}: {jwks_uri[:200]!r}")
        return jwks_uri
    raise FetchFailed("no discovery document: " + "; ".join(problems))


def parse_key_set(data: dict[str, Any]) -> list[PublicKey]:
    """The usable public signing keys of a JWKS: symmetric, private, encryption-only and
    unreadable entries are left out. Raises ``FetchFailed`` when ``keys`` is missing."""
    entries = data.get("keys")
    if not isinstance(entries, list):
        raise FetchFailed("the JWKS has no keys list")
    keys: list[PublicKey] = []
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig" or "d" in entry:
            continue
        try:
            # The kty filter above: an RSA, EC or OKP key comes back, never an oct one.
            keys.append(cast(PublicKey, JWKRegistry.import_key(entry)))
        except (JoseError, ValueError, TypeError):
            continue
    return keys


def key_fits(key: PublicKey, alg: str) -> bool:
    """Whether ``key`` may verify a JWS made with ``alg`` (type, curve, its own ``alg``)."""
    if key.key_type != KEY_TYPE_OF.get(alg[:2]):
        return False
    stated = key.get("alg")
    if stated is not None and stated != alg:
        return False
    if alg in CURVE_OF:
        return bool(key.get("crv") == CURVE_OF[alg])
    if alg == "EdDSA":
        return key.get("crv") in ("Ed25519", "Ed448")
    return True


def provider_metadata(issuer: str, fetch: Fetch = fetch_json) -> dict[str, Any]:
    """An OpenID Provider's metadata from ``${ISSUER}/.well-known/openid-configuration``.

    The document must name the same issuer (OpenID Connect Discovery 1.0 §4.3). Raises
    ``FetchFailed``.
    """
    url = issuer.rstrip("/") + OPENID_CONFIGURATION
    document = fetch(url)
    stated = document.get("issuer")
    if not isinstance(stated, str) or stated.rstrip("/") != issuer.rstrip("/"):
        raise FetchFailed(f"{url} names another issuer: {str(stated)[:200]!r}")
    return document


@dataclass
class _Metadata:
    document: dict[str, Any]
    fetched_at: float


@dataclass
class _Entry:
    jwks_uri: str
    keys: list[PublicKey]
    fetched_at: float
    #: When an unknown ``kid`` last made us fetch again (None: never).
    refetched_at: float | None = None


class JwksCache:
    """Each issuer's keys, fetched on first use and again when stale or a ``kid`` is unknown.

    One fetch of an issuer at a time (its lock). Requests arriving meanwhile wait for it, at
    most ``fetch_wait`` seconds (then ``FetchFailed``: try again), and take its outcome: its
    keys, or its failure. Before, each waiter fetched again in turn after a failure, so a slow
    issuer kept a queue of requests, each holding a worker thread, for their sum.
    """

    def __init__(
        self,
        *,
        fetch: Fetch = fetch_json,
        max_age: float = MAX_AGE,
        refetch_interval: float = REFETCH_INTERVAL,
        fetch_wait: float = FETCH_WAIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self.refetch_interval = refetch_interval
        self.fetch_wait = fetch_wait
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        #: One lock per issuer (a slow issuer holds up only its own exchanges), made under
        #: ``_locks_lock``.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        #: How many times each issuer's keys were fetched (for tests and metrics).
        self.fetches: dict[str, int] = {}
        #: OpenID Providers' metadata (single sign-on), kept as long as a key set.
        self._metadata: dict[str, _Metadata] = {}
        #: How many times each issuer was forgotten: a fetch that began before the last time
        #: keeps what it fetched to itself.
        self._forgotten: dict[str, int] = {}
        #: Per issuer and what was fetched ("keys", "metadata"): the fetches so far, and the
        #: last one's failure (None: it succeeded).
        self._outcomes: dict[tuple[str, str], tuple[int, FetchFailed | None]] = {}

    @contextmanager
    def _turn(self, issuer: str, what: str) -> Iterator[int]:
        """Hold the issuer's lock, waiting at most ``fetch_wait``; gives the number of its
        fetches of ``what`` finished before the wait began (for ``_fetched``)."""
        finished = self._outcomes.get((issuer, what), (0, None))[0]
        lock = self._lock_for(issuer)
        if not lock.acquire(timeout=self.fetch_wait):
            raise FetchFailed(
                f"another request has been fetching from {issuer} for more than "
                f"{self.fetch_wait:g} s; try again"
            )
        try:
            yield finished
        finally:
            lock.release()

    def _fetched(self, issuer: str, what: str, finished: int, fetch: Callable[[], _T]) -> _T:
        """``fetch()`` of ``what``, under the issuer's lock; but when the last such fetch
        ended after this request began waiting (``finished``), and failed, its failure,
        without asking the issuer again."""
        count, failure = self._outcomes.get((issuer, what), (0, None))
        if count > finished and failure is not None:
            raise FetchFailed(str(failure))
        try:
            fetched = fetch()
        except FetchFailed as exc:
            self._outcomes[issuer, what] = (count + 1, exc)
            raise
        self._outcomes[issuer, what] = (count + 1, None)
        return fetched

    def _load(self, issuer: str, finished: int, refetched_at: float | None = None) -> _Entry:
        load = functools.partial(self._load_now, issuer, refetched_at)
        return self._fetched(issuer, "keys", finished, load)

    def _load_now(self, issuer: str, refetched_at: float | None) -> _Entry:
        forgotten = self._forgotten.get(issuer, 0)
        jwks_uri = discover(issuer, self._fetch)
        keys = parse_key_set(self._fetch(jwks_uri))
        entry = _Entry(jwks_uri, keys, self._clock(), refetched_at)
        self.fetches[issuer] = self.fetches.get(issuer, 0) + 1
        self._keep(self._entries, issuer, entry, forgotten)
        return entry

    def _keep(self, table: dict[str, Any], issuer: str, fetched: Any, forgotten: int) -> None:
        """Cache what a fetch brought back, unless ``forget`` ran since it began."""
        if self._forgotten.get(issuer, 0) == forgotten:
            table[issuer] = fetched

    def discover(self, issuer: str) -> str:
        """The issuer's ``jwks_uri`` (not cached). Raises ``FetchFailed``."""
        return discover(issuer, self._fetch)

    def _lock_for(self, issuer: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(issuer, threading.Lock())

    def forget(self, issuer: str) -> None:
        """Drop what is cached for ``issuer`` (its registration changed), at once: without
        waiting for a fetch of its keys under way, which holds the issuer's lock for as long
        as the issuer takes to answer. The caller may hold the database's write lock (an
        issuer's removal), and a slow issuer held every other writer up with it."""
        with self._locks_lock:
            self._forgotten[issuer] = self._forgotten.get(issuer, 0) + 1
            self._entries.pop(issuer, None)
            self._metadata.pop(issuer, None)

    def metadata(self, issuer: str) -> dict[str, Any]:
        """The OpenID Provider's metadata document, fetched at most every ``max_age`` seconds.

        Raises ``FetchFailed``; a failed fetch is not cached, so the next sign-in tries again.
        """
        with self._turn(issuer, "metadata") as finished:
            cached = self._metadata.get(issuer)
            if cached is None or self._clock() - cached.fetched_at >= self.max_age:
                forgotten = self._forgotten.get(issuer, 0)
                fetch = functools.partial(provider_metadata, issuer, self._fetch)
                document = self._fetched(issuer, "metadata", finished, fetch)
                cached = _Metadata(document, self._clock())
                self._keep(self._metadata, issuer, cached, forgotten)
            return cached.document

    def key_for(self, issuer: str, kid: str | None, alg: str) -> PublicKey:
        """The issuer's key for a JWS header's ``kid`` and ``alg``.

        Without a ``kid`` the key set must hold exactly one key fitting ``alg``.
        Raises ``FetchFailed`` (the issuer cannot be reached) or ``UnknownKey``.
        """
        with self._turn(issuer, "keys") as finished:
            entry = self._entries.get(issuer)
            now = self._clock()
            if entry is None or now - entry.fetched_at >= self.max_age:
                entry = self._load(issuer, finished, entry.refetched_at if entry else None)
            found = _select(entry.keys, kid, alg)
            last = entry.refetched_at
            may_refetch = last is None or now - last >= self.refetch_interval
            if found is None and kid is not None and may_refetch:
                # Perhaps the issuer rotated its keys. The attempt counts even if it fails:
                # else, while the issuer is down, each made-up kid would ask it again.
                entry.refetched_at = now
                entry = self._load(issuer, finished, refetched_at=now)
                found = _select(entry.keys, kid, alg)
        if found is not None:
            return found
        if kid is None:
            fitting = sum(1 for key in entry.keys if key_fits(key, alg))
            raise UnknownKey(
                f"the JWT has no kid and the issuer's JWKS has {fitting} keys for {alg}"
            )
        if any(key.kid == kid for key in entry.keys):
            raise UnknownKey(f"the issuer's key {kid[:64]!r} is not a key for {alg}")
        raise UnknownKey(f"kid {kid[:64]!r} is not in the issuer's JWKS ({entry.jwks_uri})")


def _select(keys: list[PublicKey], kid: str | None, alg: str) -> PublicKey | None:
    if kid is not None:
        return next((k for k in keys if k.kid == kid and key_fits(k, alg)), None)
    fitting = [k for k in keys if key_fits(k, alg)]
    return fitting[0] if len(fitting) == 1 else None
