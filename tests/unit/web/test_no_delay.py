"""``web.no_delay``: connections of a listening socket made the way ``uvicorn --workers``
makes it (``proto`` 0) get ``TCP_NODELAY`` from our protocol, which asyncio would not set."""

from __future__ import annotations

import asyncio
import socket

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from rolecall.web.no_delay import NoDelayH11Protocol


async def _app(scope, receive, send):  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def nodelay_of_a_connection(protocol_class: type[H11Protocol]) -> int:
    """Serve one connection with ``protocol_class`` on a socket bound as uvicorn's workers
    bind theirs; the server side's ``TCP_NODELAY``."""

    async def run() -> int:
        listener = socket.socket(family=socket.AF_INET)  # as uvicorn.Config.bind_socket
        listener.bind(("127.0.0.1", 0))
        config = Config(app=_app, log_level="warning")
        config.load()
        state = ServerState()
        made: list[H11Protocol] = []

        def factory() -> H11Protocol:
            made.append(protocol_class(config, state, {}))
            return made[-1]

        server = await asyncio.get_running_loop().create_server(factory, sock=listener)
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 204")
        served = made[0].transport.get_extra_info("socket")
        value = served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        await server.wait_closed()
        return int(value)

    return asyncio.run(run())


def test_our_protocol_turns_nagle_off_where_asyncio_leaves_it_on():
    assert nodelay_of_a_connection(H11Protocol) == 0  # the bug this module is for
    assert nodelay_of_a_connection(NoDelayH11Protocol) == 1
