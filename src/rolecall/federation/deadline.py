"""One deadline for a whole exchange with an identity provider, not only for each read.

httpx's timeouts bound each connect, read and write on its own. A server that sends a byte
every few seconds (its status line, its headers or its body) keeps every read under the timeout
and holds the request, and the worker thread serving it, for as long as it likes; a few such
requests stop the server answering anyone. ``DeadlineBackend`` wraps a network backend so that
every connection it makes, and every read, write and TLS handshake on them, gives up once the
deadline has passed: each operation's own timeout is cut to the time left, and the failure is
httpcore's own timeout exception (httpx turns it into ``httpx.ReadTimeout``...) saying that the
whole exchange took too long.

The host name's lookup is bounded apart (``destinations.LOOKUP_TIMEOUT``), within the time
left that ``connect_tcp`` passes on.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import httpcore

T = TypeVar("T")
TimeoutKind = TypeVar("TimeoutKind", bound=httpcore.TimeoutException)


def _expired(kind: type[TimeoutKind], seconds: float) -> TimeoutKind:
    return kind(f"the whole exchange took more than {seconds:g} s")


def _left(deadline: float, seconds: float, timeout: float | None, kind: type[TimeoutKind]) -> float:
    """The timeout to give one operation: its own, cut to what is left before ``deadline``;
    ``kind`` (the deadline's failure) when nothing is left."""
    left = deadline - time.monotonic()
    if timeout is not None:
        left = min(timeout, left)
    if left <= 0:
        raise _expired(kind, seconds)
    return left


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose operations all end by one deadline (a ``time.monotonic()`` instant)."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float, seconds: float) -> None:
        self.stream = stream
        self.deadline = deadline
        self.seconds = seconds

    def _within(
        self,
        kind: type[httpcore.TimeoutException],
        timeout: float | None,
        run: Callable[[float], T],
    ) -> T:
        """``run(timeout cut to the time left)``; its ``kind`` of timeout, once the deadline
        has passed, is the deadline's."""
        try:
            return run(_left(self.deadline, self.seconds, timeout, kind))
        except kind:
            if time.monotonic() >= self.deadline:
                raise _expired(kind, self.seconds) from None
            raise

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._within(httpcore.ReadTimeout, timeout, lambda t: self.stream.read(max_bytes, t))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._within(httpcore.WriteTimeout, timeout, lambda t: self.stream.write(buffer, t))

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        secured = self._within(
            httpcore.ConnectTimeout,
            timeout,
            lambda t: self.stream.start_tls(ssl_context, server_hostname, t),
        )
        return DeadlineStream(secured, self.deadline, self.seconds)

    def get_extra_info(self, info: str) -> object:
        return self.stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """``backend``, every connection of it ending ``seconds`` after this backend was made (a
    client serves one exchange: build the backend with the client)."""

    def __init__(self, backend: httpcore.NetworkBackend, seconds: float) -> None:
        self.backend = backend
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(self.deadline, self.seconds, timeout, httpcore.ConnectTimeout)
        stream = self.backend.connect_tcp(host, port, left, local_address, socket_options)
        return DeadlineStream(stream, self.deadline, self.seconds)

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)
