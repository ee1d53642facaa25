"""One deadline for a whole exchange with an identity provider, not only for each read.

httpx's timeouts bound each connect, read and write on its own. A server that sends a byte
every few seconds (its status line, its headers or its body) keeps every read under the timeout
and holds the request, and the worker thread serving it, for as long as it likes; a few such
requests stop the server answering anyone. ``DeadlineBackend`` wraps a network backend so that
every connection it makes, and every read, write and TLS handshake on them, gives up once the
deadline has passed: each operation's own timeout is cut to the time left, and the failure is
httpcore's own timeout exception (httpx turns it into ``httpx.ReadTimeout``...) saying that the
whole exchange took too long.

Not bounded: the host name's lookup (``getaddrinfo`` takes no timeout; the resolver's own
applies).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable

import httpcore


def _left(deadline: float, timeout: float | None) -> float:
    """The timeout to give one operation: its own, cut to what is left before ``deadline``."""
    left = deadline - time.monotonic()
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose operations all end by one deadline (a ``time.monotonic()`` instant)."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float, seconds: float) -> None:
        self.stream = stream
        self.deadline = deadline
        self.seconds = seconds

    def _expired(self, kind: type[httpcore.TimeoutException]) -> httpcore.TimeoutException:
        return kind(f"the whole exchange took more than {self.seconds:g} s")

    def _timeout(self, timeout: float | None, kind: type[httpcore.TimeoutException]) -> float:
        left = _left(self.deadline, timeout)
        if left <= 0:
            raise self._expired(kind)
        return left

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self.stream.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))
        except httpcore.ReadTimeout:
            if time.monotonic() >= self.deadline:
                raise self._expired(httpcore.ReadTimeout) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self.stream.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))
        except httpcore.WriteTimeout:
            if time.monotonic() >= self.deadline:
                raise self._expired(httpcore.WriteTimeout) from None
            raise

    def close(self) -> None:
        self.stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            secured = self.stream.start_tls(
                ssl_context, server_hostname, self._timeout(timeout, httpcore.ConnectTimeout)
            )
        except httpcore.ConnectTimeout:
            if time.monotonic() >= self.deadline:
                raise self._expired(httpcore.ConnectTimeout) from None
            raise
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
        left = _left(self.deadline, timeout)
        if left <= 0:
            raise httpcore.ConnectTimeout(f"the whole exchange took more than {self.seconds:g} s")
        stream = self.backend.connect_tcp(host, port, left, local_address, socket_options)
        return DeadlineStream(stream, self.deadline, self.seconds)

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)
