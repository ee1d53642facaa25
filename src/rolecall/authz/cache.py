"""The access cache: what request guards need, kept in process memory between requests.

DESIGN.md allows only caches that are safe to lose, with a bounded lifetime. This one holds what
the guard of a request loads before deciding (the API key's principal, the organization, the
facts ``policy.decide`` takes, a project's read body), so a repeated request decides without a
database round trip. The decision itself is never cached: ``policy.decide`` runs every time.

Freshness: the whole cache is dropped whenever a write is committed anywhere (``ChangeFeed``,
implemented per backend in ``db.changes``), checked before every lookup. An entry also expires
after at most ``lifetime`` seconds (a bound for writes no feed can see, such as SQL typed into
a PostgreSQL console), and the least recently used go beyond ``size`` entries.

Filling follows an epoch rule, so a request that read the database before a change was seen
cannot store what it read after the drop: ``begin()`` (before the reads) returns the epoch,
``put()`` stores only while it is still the current one. A request calls ``begin()`` before
its lookups too (it asks the feed), so a change committed after a fill's reads drops the entry
before any later request can use it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from rolecall.db.changes import BUSY

#: Defaults of ``ROLECALL_ACCESS_CACHE_SIZE`` and ``ROLECALL_ACCESS_CACHE_SECONDS``.
DEFAULT_SIZE = 20_000
DEFAULT_LIFETIME = 300.0
#: An entry lives between this share of the lifetime and all of it (chosen at random per entry),
#: so entries filled together (a burst of traffic) are not all refilled together.
LIFETIME_SPREAD = 0.75


class ChangeFeed(Protocol):
    """Tells whether anything was committed to the database since it was last asked."""

    def changed(self) -> bool | str | None:
        """True: a write was committed since the last call; False: none was; None: the feed
        cannot tell (the cache is dropped and bypassed); ``BUSY``: the feed cannot ask now but
        has lost nothing (this request bypasses the cache, which is kept)."""
        ...


class AccessCache:
    """A bounded, thread-safe LRU with a lifetime per entry, dropped whole on any change.

    Lookups run on the server's event loop, fills in its worker threads, so every change of
    the table holds one lock (held for dictionary operations only).
    """

    def __init__(
        self,
        feed: ChangeFeed,
        *,
        size: int = DEFAULT_SIZE,
        lifetime: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
        spread: Callable[[], float] = lambda: random.uniform(LIFETIME_SPREAD, 1.0),  # noqa: S311
    ) -> None:
        if size < 1 or lifetime <= 0:
            raise ValueError("an access cache needs a positive size and lifetime")
        self._feed = feed
        self.size = size
        self.lifetime = lifetime
        self._clock = clock
        self._spread = spread
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._epoch = 0
        self._usable = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _sync(self) -> bool:
        """Ask the feed; drop everything on a change. False: the cache must be bypassed."""
        state = self._feed.changed()
        if state == BUSY:
            self._usable = False  # no lookups and no fills until the feed answers again
            return False
        if state is None or state:
            with self._lock:
                self._entries.clear()
                self._epoch += 1
        self._usable = state is not None
        return self._usable

    def begin(self) -> int | None:
        """Ask the feed (dropping everything on a change) and return the epoch: call it once per
        request before its lookups, and before a fill reads the database. None: the cache is
        bypassed (no lookups, no fills)."""
        return self._epoch if self._sync() else None

    def get(self, key: Hashable) -> Any | None:
        """The live entry under ``key``, or None (also when the cache is bypassed). Only after
        this request's ``begin()``."""
        if not self._usable:
            return None
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return found[1]

    def put(self, key: Hashable, value: Any, epoch: int | None) -> bool:
        """Store ``value`` if nothing changed since ``begin()`` returned ``epoch``."""
        if epoch is None:
            return False
        with self._lock:
            if epoch != self._epoch or not self._usable:
                return False
            self._entries[key] = (self._clock() + self.lifetime * self._spread(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return True

    def invalidate(self) -> None:
        """Drop every entry (fills begun before this are refused)."""
        with self._lock:
            self._entries.clear()
            self._epoch += 1
