"""The key cache and discovery, with a fake fetcher (pure code: no HTTP here; the real HTTP
path is exercised against the loopback issuer in tests/idp)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from rolecall.federation import jwks
from rolecall.federation.jwks import FetchFailed, JwksCache, UnknownKey

ISS = "https://idp.example"
META = ISS + "/.well-known/openid-configuration"
SEEDS_META = ISS + "/.well-known/oidc-configuration"
KEYS = ISS + "/keys"


def rsa(kid: str, **params: Any) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, **params})


class FakeIdp:
    """Answers discovery and JWKS fetches from dicts; counts requests."""

    def __init__(self, *keys: Any, discovery: dict[str, Any] | None = None) -> None:
        self.keys = list(keys)
        self.documents: dict[str, Any] = {META: discovery or {"issuer": ISS, "jwks_uri": KEYS}}
        self.calls: list[str] = []

    def __call__(self, url: str) -> dict[str, Any]:
        self.calls.append(url)
        if url == KEYS:
            return {"keys": [k.as_dict(private=False) for k in self.keys]}
        if url not in self.documents:
            raise FetchFailed(f"{url} answered HTTP 404")
        return self.documents[url]  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache(idp: FakeIdp, clock: Clock | None = None) -> JwksCache:
    return JwksCache(fetch=idp, clock=clock or Clock(), max_age=600, refetch_interval=30)


def test_discovery_prefers_the_seeds_path_then_openid():
    idp = FakeIdp()
    assert jwks.discover(ISS, idp) == KEYS
    assert idp.calls == [SEEDS_META, META]
    idp.documents[SEEDS_META] = {"jwks_uri": "https://idp.example/other?v=2"}
    assert jwks.discover(ISS + "/", idp) == "https://idp.example/other?v=2"
    idp.documents[SEEDS_META] = {"jwks_uri": "http://127.0.0.1:8080/keys"}
    assert jwks.discover(ISS, idp) == "http://127.0.0.1:8080/keys"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"issuer": "https://evil.example", "jwks_uri": KEYS}, "names another issuer"),
        ({"issuer": ISS}, "has no jwks_uri"),
        ({"issuer": ISS, "jwks_uri": ""}, "has no jwks_uri"),
        # Each was stored and made every later exchange fail.
        ({"issuer": 5, "jwks_uri": KEYS}, "names another issuer"),
        ({"jwks_uri": "http://[::1"}, "is not a URL"),
        ({"jwks_uri": "https://idp.example:99999/keys"}, "is not a URL"),
        ({"jwks_uri": "ftp://idp.example/keys"}, "is an https URL"),
        ({"jwks_uri": "/keys"}, "is an https URL"),
        ({"jwks_uri": "http://idp.example/keys"}, "plain http only on a loopback"),
    ],
)
def test_bad_discovery_documents(document, message):
    with pytest.raises(FetchFailed, match=message):
        jwks.discover(ISS, FakeIdp(discovery=document))


def test_no_discovery_document_lists_both_attempts():
    idp = FakeIdp()
    del idp.documents[META]
    with pytest.raises(FetchFailed, match=r"oidc-configuration.*openid-configuration"):
        jwks.discover(ISS, idp)


def test_keys_are_cached_for_their_lifetime_then_fetched_again():
    clock = Clock()
    idp = FakeIdp(rsa("a"))
    keys = cache(idp, clock)
    assert keys.key_for(ISS, "a", "RS256").kid == "a"
    assert keys.key_for(ISS, "a", "RS256").kid == "a"
    assert idp.calls.count(KEYS) == 1
    clock.now += 600
    keys.key_for(ISS, "a", "RS256")
    assert idp.calls.count(KEYS) == 2


def test_an_unknown_kid_fetches_again_at_most_once_per_interval():
    clock = Clock()
    idp = FakeIdp(rsa("a"))
    keys = cache(idp, clock)
    keys.key_for(ISS, "a", "RS256")
    idp.keys.append(rsa("b"))  # the issuer rotates
    assert keys.key_for(ISS, "b", "RS256").kid == "b"
    assert idp.calls.count(KEYS) == 2
    for _ in range(3):
        with pytest.raises(UnknownKey, match="is not in the issuer's JWKS"):
            keys.key_for(ISS, "made-up", "RS256")
    assert idp.calls.count(KEYS) == 2  # refetched for "b" less than 30 s ago
    clock.now += 30
    with pytest.raises(UnknownKey):
        keys.key_for(ISS, "made-up", "RS256")
    assert idp.calls.count(KEYS) == 3
    keys.forget(ISS)
    keys.key_for(ISS, "a", "RS256")
    assert idp.calls.count(KEYS) == 4


def test_forgetting_an_issuer_does_not_wait_for_a_fetch_under_way():
    """``forget`` runs in an issuer's removal, which holds SQLite's write lock: waiting for a
    slow issuer's fetch (which holds the issuer's lock) held every other writer up, until
    they failed with "database is locked" (a 500, found by fuzzing). And what that fetch
    brings back, begun before the forgetting, is not kept."""
    idp = FakeIdp(rsa("a"))
    answering, answered = threading.Event(), threading.Event()

    def slow(url: str) -> dict[str, Any]:
        if url == KEYS:
            answering.set()
            answered.wait(10)
        return idp(url)

    keys = JwksCache(fetch=slow, clock=Clock(), max_age=600, refetch_interval=30)
    fetching = threading.Thread(target=keys.key_for, args=(ISS, "a", "RS256"))
    fetching.start()
    assert answering.wait(10)
    forgetting = threading.Thread(target=keys.forget, args=(ISS,))
    forgetting.start()
    forgetting.join(5)
    try:
        assert not forgetting.is_alive()  # it did not wait for the fetch
    finally:
        answered.set()
        fetching.join(10)
    keys.key_for(ISS, "a", "RS256")
    assert idp.calls.count(KEYS) == 2  # the first fetch's keys were not kept


class Gate:
    """A fetcher whose fetches of ``url`` wait until ``open()``, then fail or answer as
    ``idp`` does; ``waiting`` is set when the first such fetch starts."""

    def __init__(self, idp: FakeIdp, url: str) -> None:
        self.idp, self.url = idp, url
        self.waiting, self.opened = threading.Event(), threading.Event()

    def __call__(self, url: str) -> dict[str, Any]:
        if url == self.url:
            self.waiting.set()
            self.opened.wait(10)
        return self.idp(url)

    def open(self) -> None:
        self.opened.set()


def in_threads(count: int, call: Any) -> list[BaseException | Any]:
    """``call()`` in ``count`` threads at once; what each returned or raised."""
    outcomes: list[BaseException | Any] = [None] * count

    def run(n: int) -> None:
        try:
            outcomes[n] = call()
        except Exception as exc:  # the outcome under test
            outcomes[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_requests_waiting_for_a_fetch_that_fails_share_its_failure():
    """Before, each request waiting on a failing issuer fetched again in turn once the lock
    was free: a slow issuer kept the queue, each holding a worker thread, for their sum."""
    idp = FakeIdp(rsa("a"))
    del idp.documents[META]  # discovery fails (after the slow seeds' path)
    gate = Gate(idp, SEEDS_META)
    keys = JwksCache(fetch=gate, clock=Clock(), max_age=600, refetch_interval=30)
    first = threading.Thread(target=lambda: in_threads(1, lambda: keys.key_for(ISS, "a", "RS256")))
    first.start()
    assert gate.waiting.wait(10)
    opener = threading.Timer(0.3, gate.open)  # while the others wait
    opener.start()
    outcomes = in_threads(4, lambda: keys.key_for(ISS, "a", "RS256"))
    first.join(10)
    assert all(isinstance(o, FetchFailed) for o in outcomes)
    assert {str(o) for o in outcomes} == {str(outcomes[0])}
    assert "openid-configuration" in str(outcomes[0])
    assert idp.calls.count(SEEDS_META) == 1  # one fetch for the five requests
    # A request arriving after the failure asks the issuer again: nothing is cached.
    idp.documents[META] = {"issuer": ISS, "jwks_uri": KEYS}
    assert keys.key_for(ISS, "a", "RS256").kid == "a"
    assert idp.calls.count(SEEDS_META) == 2


def test_a_request_waits_for_another_s_fetch_at_most_fetch_wait():
    idp = FakeIdp(rsa("a"))
    gate = Gate(idp, KEYS)
    keys = JwksCache(fetch=gate, clock=Clock(), fetch_wait=0.2)
    first = threading.Thread(target=keys.key_for, args=(ISS, "a", "RS256"))
    first.start()
    assert gate.waiting.wait(10)
    try:
        with pytest.raises(FetchFailed, match=r"fetching from .* for more than 0\.2 s; try again"):
            keys.key_for(ISS, "a", "RS256")
        with pytest.raises(FetchFailed, match="try again"):
            keys.metadata(ISS)  # the issuer's one lock
    finally:
        gate.open()
        first.join(10)
    assert idp.calls.count(KEYS) == 1
    assert keys.key_for(ISS, "a", "RS256").kid == "a"  # the first fetch's keys, kept
    assert idp.calls.count(KEYS) == 1


def test_a_failed_metadata_fetch_is_not_taken_for_a_failed_key_fetch():
    idp = FakeIdp(rsa("a"))
    gate = Gate(idp, META)
    keys = JwksCache(fetch=gate, clock=Clock(), max_age=600, refetch_interval=30)
    del idp.documents[META]  # the metadata fetch fails; the keys come from the seeds' path
    idp.documents[SEEDS_META] = {"issuer": ISS, "jwks_uri": KEYS}
    first = threading.Thread(target=lambda: in_threads(1, lambda: keys.metadata(ISS)))
    first.start()
    assert gate.waiting.wait(10)
    threading.Timer(0.3, gate.open).start()
    [found] = in_threads(1, lambda: keys.key_for(ISS, "a", "RS256"))
    first.join(10)
    assert found.kid == "a"


def test_without_kid_the_only_fitting_key_is_used():
    keys = cache(FakeIdp(rsa("a"), ECKey.generate_key("P-256", parameters={"kid": "e"})))
    assert keys.key_for(ISS, None, "RS256").kid == "a"
    assert keys.key_for(ISS, None, "ES256").kid == "e"
    two = cache(FakeIdp(rsa("a"), rsa("b")))
    with pytest.raises(UnknownKey, match="no kid and the issuer's JWKS has 2 keys"):
        two.key_for(ISS, None, "RS256")


def test_a_key_of_another_type_or_alg_does_not_fit():
    keys = cache(
        FakeIdp(rsa("a", alg="RS256"), ECKey.generate_key("P-384", parameters={"kid": "e"}))
    )
    with pytest.raises(UnknownKey, match="is not a key for ES256"):
        keys.key_for(ISS, "a", "ES256")
    with pytest.raises(UnknownKey, match="is not a key for RS384"):
        keys.key_for(ISS, "a", "RS384")
    with pytest.raises(UnknownKey, match="is not a key for ES256"):
        keys.key_for(ISS, "e", "ES256")  # P-384 is ES384's curve
    assert keys.key_for(ISS, "e", "ES384").kid == "e"


def test_eddsa_keys():
    okp = OKPKey.generate_key("Ed25519", parameters={"kid": "o"})
    assert jwks.key_fits(okp, "EdDSA") and not jwks.key_fits(okp, "RS256")


def test_rfc_9864_names_fit_only_their_own_curve():
    ed25519 = OKPKey.generate_key("Ed25519")
    ed448 = OKPKey.generate_key("Ed448")
    assert jwks.key_fits(ed25519, "Ed25519") and not jwks.key_fits(ed25519, "Ed448")
    assert jwks.key_fits(ed448, "Ed448") and not jwks.key_fits(ed448, "Ed25519")
    assert not jwks.key_fits(rsa("r"), "Ed25519")


def test_parse_key_set_leaves_out_what_cannot_verify():
    good = rsa("a").as_dict(private=False)
    private = rsa("p").as_dict(private=True)
    entries = [
        good,
        private,
        OctKey.generate_key(256, parameters={"kid": "hmac"}).as_dict(private=True),
        {**rsa("enc").as_dict(private=False), "use": "enc"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
    ]
    assert [k.kid for k in jwks.parse_key_set({"keys": entries})] == ["a"]
    with pytest.raises(FetchFailed, match="no keys list"):
        jwks.parse_key_set({"keys": "nope"})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://idp.example", None),
        ("http://127.0.0.1:8080", None),
        ("http://localhost", None),
        ("http://[::1]:9", None),
        ("http://idp.example", "plain http only on a loopback"),
        ("ftp://idp.example", "https URL"),
        ("https://", "https URL"),
        ("https://idp.example/?x=1", "no query"),
        ("https://idp.example/#f", "no query"),
        ("http://[::1", "not a URL"),
    ],
)
def test_issuer_urls(url, problem):
    found = jwks.check_issuer_url(url)
    assert (found is None) if problem is None else (problem in found)


def test_fetch_json_refuses_bad_urls_without_fetching():
    with pytest.raises(FetchFailed, match="plain http"):
        jwks.fetch_json("http://idp.example/keys")


def test_provider_metadata_naming_another_issuer_is_refused():
    """OpenID Connect Discovery 1.0 §4.3: the metadata of ``ISS`` must say it is ``ISS``'s; an
    issuer serving another's document (a mix-up) is refused, and so is one naming none."""
    idp = FakeIdp(discovery={"issuer": "https://evil.example", "jwks_uri": KEYS})
    with pytest.raises(FetchFailed, match=r"names another issuer: 'https://evil\.example'"):
        jwks.provider_metadata(ISS, fetch=idp)
    idp.documents[META] = {"jwks_uri": KEYS}
    with pytest.raises(FetchFailed, match="names another issuer: 'None'"):
        jwks.provider_metadata(ISS, fetch=idp)
    idp.documents[META] = {"issuer": ISS + "/", "jwks_uri": KEYS}  # a trailing slash is the same
    assert jwks.provider_metadata(ISS, fetch=idp)["jwks_uri"] == KEYS
