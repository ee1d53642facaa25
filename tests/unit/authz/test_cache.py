"""The access cache's bounds and its freshness rules (pure: a scripted feed and clock)."""

from __future__ import annotations

import pytest

from rolecall.authz.cache import AccessCache
from rolecall.db.changes import BUSY


class Feed:
    """Answers what the test says: True (a write), False (none), None (cannot tell)."""

    def __init__(self) -> None:
        self.state: bool | str | None = False

    def changed(self) -> bool | str | None:
        state = self.state
        if state:
            self.state = False  # a change is reported once
        return state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def feed() -> Feed:
    return Feed()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    feed: Feed, clock: Clock, *, size: int = 3, lifetime: float = 10.0, spread: float = 1.0
) -> AccessCache:
    return AccessCache(feed, size=size, lifetime=lifetime, clock=clock, spread=lambda: spread)


def test_an_entry_put_is_got_back(feed, clock):
    cache = make(feed, clock)
    epoch = cache.begin()

    assert cache.put("k", "v", epoch)
    cache.begin()
    assert cache.get("k") == "v"


def test_the_least_recently_used_entry_goes_beyond_the_size(feed, clock):
    cache = make(feed, clock, size=3)
    epoch = cache.begin()
    for key in "abc":
        cache.put(key, key.upper(), epoch)
    cache.get("a")  # now b is the least recently used

    cache.put("d", "D", epoch)

    assert len(cache) == 3
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == ["A", "C", "D"]


def test_an_entry_expires_after_its_share_of_the_lifetime(feed, clock):
    cache = make(feed, clock, lifetime=10.0, spread=0.8)
    cache.put("k", "v", cache.begin())

    clock.now += 7.9
    assert cache.get("k") == "v"
    clock.now += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0


def test_entries_live_a_random_share_of_the_lifetime_never_more():
    cache = AccessCache(Feed(), size=1000, lifetime=10.0, clock=Clock())
    epoch = cache.begin()
    shares = []
    for n in range(200):
        cache.put(n, n, epoch)
        shares.append((cache._entries[n][0] - 1000.0) / 10.0)

    assert all(0.75 <= share <= 1.0 for share in shares)
    assert len(set(shares)) > 1


def test_a_get_does_not_extend_the_lifetime(feed, clock):
    cache = make(feed, clock, lifetime=10.0)
    cache.put("k", "v", cache.begin())
    clock.now += 6
    assert cache.get("k") == "v"
    clock.now += 6

    assert cache.get("k") is None


def test_a_reported_write_drops_everything(feed, clock):
    cache = make(feed, clock)
    cache.put("k", "v", cache.begin())
    feed.state = True

    cache.begin()

    assert cache.get("k") is None
    assert len(cache) == 0


def test_a_fill_begun_before_a_write_is_refused(feed, clock):
    cache = make(feed, clock)
    epoch = cache.begin()  # a request starts reading the database
    feed.state = True
    cache.begin()  # another request sees the write

    assert cache.put("k", "stale", epoch) is False
    assert cache.get("k") is None


def test_a_fill_begun_before_an_invalidation_is_refused(feed, clock):
    cache = make(feed, clock)
    epoch = cache.begin()
    cache.invalidate()

    assert cache.put("k", "stale", epoch) is False


def test_when_the_feed_cannot_tell_the_cache_is_bypassed(feed, clock):
    cache = make(feed, clock)
    cache.put("k", "v", cache.begin())
    feed.state = None

    assert cache.begin() is None
    assert cache.get("k") is None
    assert cache.put("k", "v", None) is False
    assert len(cache) == 0


def test_after_the_feed_recovers_old_entries_stay_dropped(feed, clock):
    cache = make(feed, clock)
    epoch = cache.begin()
    cache.put("k", "v", epoch)
    feed.state = None
    cache.begin()
    feed.state = False

    assert cache.begin() is not None
    assert cache.get("k") is None
    assert cache.put("k", "late", epoch) is False  # begun before the outage


@pytest.mark.parametrize(("size", "lifetime"), [(0, 10.0), (-1, 10.0), (5, 0.0), (5, -1.0)])
def test_a_cache_needs_positive_bounds(feed, clock, size, lifetime):
    with pytest.raises(ValueError):
        AccessCache(feed, size=size, lifetime=lifetime, clock=clock)


def test_a_busy_feed_skips_the_cache_once_and_keeps_it(feed, clock):
    cache = make(feed, clock)
    cache.put("k", "v", cache.begin())
    feed.state = BUSY

    assert cache.begin() is None
    assert cache.get("k") is None
    feed.state = False
    assert cache.begin() is not None
    assert cache.get("k") == "v"


def test_a_write_committed_while_the_feed_was_busy_still_drops_everything(feed, clock):
    cache = make(feed, clock)
    epoch = cache.begin()
    cache.put("k", "v", epoch)
    feed.state = BUSY
    cache.begin()
    assert cache.put("j", "during", epoch) is False  # no fills while it cannot tell
    feed.state = True  # what the next answer reports

    cache.begin()

    assert cache.get("k") is None
    assert cache.put("k", "late", epoch) is False
