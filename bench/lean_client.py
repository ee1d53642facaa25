"""A lean HTTP/1.1 load client for the benchmarks: asyncio streams, one connection per client
(kept alive unless the server closes it), requests encoded once before the clock starts,
responses read by status line, ``Content-Length`` or chunked body, nothing else.

Why not httpx: on a two-core machine the client shares the cores with the server it measures.
Eight httpx threads spend about 2 ms of CPU per request, so they, not the server, set the pace
of any server faster than about 800 requests/s. This client spends 0.05-0.2 ms per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Checks one response (status, body): what went wrong, or None.
Check = Callable[[int, bytes], "str | None"]


@dataclass(frozen=True)
class Request:
    wire: bytes
    check: Check


def encode(
    method: str,
    base_url: str,
    target: str,
    headers: dict[str, str],
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    """The bytes of one request to ``base_url`` (``target``: path and query, already quoted)."""
    host = urlsplit(base_url).netloc
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    chunked = False
    # HTTP/1.0 (wsgiref, for one) closes after each response unless it says otherwise.
    keep_alive = head.startswith(b"HTTP/1.1")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection":
            keep_alive = value == b"keep-alive"
    if chunked:
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # the (empty) trailer section
                return status, bytes(body), keep_alive
            body += (await reader.readexactly(size + 2))[:-2]
    if length is None and not keep_alive:
        return status, await reader.read(), False  # the body runs to the end of the stream
    return status, (await reader.readexactly(length) if length else b""), keep_alive


@dataclass
class Outcome:
    latencies_ms: list[float]
    failures: list[str]
    seconds: float


def run(
    base_url: str, requests: list[Request], clients: int, timeout: float, deadline_s: float
) -> Outcome:
    """Send ``requests`` over ``clients`` connections, each sending its next request when the
    last one's response is in. Stops after ``deadline_s`` seconds, finished or not."""
    return asyncio.run(_run(base_url, requests, clients, timeout, deadline_s))


async def _run(
    base_url: str, requests: list[Request], clients: int, timeout: float, deadline_s: float
) -> Outcome:
    parts = urlsplit(base_url)
    pending = iter(requests)
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + deadline_s

    async def client() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for request in pending:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(parts.hostname, parts.port)
                reader, writer = connection
                writer.write(request.wire)
                status, body, keep_alive = await asyncio.wait_for(_read_response(reader), timeout)
                error = request.check(status, body)
                if not keep_alive:
                    writer.close()
                    connection = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if connection is not None:
                    connection[1].close()
                connection = None
            latencies.append((time.perf_counter() - started) * 1000)
            if error:
                failures.append(error)
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Outcome(latencies, failures, time.perf_counter() - started)
