"""uvicorn's HTTP/1.1 protocol with ``TCP_NODELAY`` on every connection.

asyncio turns Nagle's algorithm off on the connections of a listening socket it made itself,
but only when that socket says it is TCP (``proto == IPPROTO_TCP``). With ``--workers``
uvicorn makes the socket itself (``socket.socket(family)``: ``proto`` 0), so the workers'
connections keep Nagle on. A response goes out as two writes (head, then body); the second
then waits for the client's delayed ACK of the first, about 40 ms, on every request of a
keep-alive connection. ``rolecall serve`` uses this protocol in every mode.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with suppress(OSError):  # the peer is already gone: nothing to speed up
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
