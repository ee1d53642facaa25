"""``federation.deadline`` on its own, over a fake stream: each operation's timeout is cut to
the time left, an operation once the time is up fails saying so, and a timeout is blamed on the
deadline only when the deadline has passed (the tests over real sockets, direct, through a
proxy and in a TLS handshake, are in ``test_destinations.py``)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

import httpcore
import pytest

from rolecall.federation.deadline import DeadlineBackend, DeadlineStream


class FakeStream(httpcore.NetworkStream):
    """Notes the timeouts it is given. With ``fail`` set it raises that instead of answering,
    first moving ``expiring``'s deadline into the past when set (the deadline passing while
    the operation waited)."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.fail: Exception | None = None
        self.expiring: DeadlineStream | None = None
        self.closed = False

    def _note(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)
        if self.expiring is not None:
            self.expiring.deadline = time.monotonic() - 1
        if self.fail is not None:
            raise self.fail

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._note(timeout)
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._note(timeout)

    def close(self) -> None:
        self.closed = True

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self._note(timeout)
        return FakeStream()

    def get_extra_info(self, info: str) -> object:
        return f"info {info}"


class FakeBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.connects: list[float | None] = []
        self.slept: list[float] = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append(timeout)
        return FakeStream()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def stream(seconds_left: float) -> tuple[DeadlineStream, FakeStream]:
    inner = FakeStream()
    return DeadlineStream(inner, time.monotonic() + seconds_left, 10.0), inner


Operation = Callable[[DeadlineStream], object]
OPERATIONS: list[tuple[Operation, type[httpcore.TimeoutException]]] = [
    (lambda s: s.read(10, 5.0), httpcore.ReadTimeout),
    (lambda s: s.write(b"y", 5.0), httpcore.WriteTimeout),
    (lambda s: s.start_tls(ssl.create_default_context(), "idp.test", 5.0), httpcore.ConnectTimeout),
]
WHOLE = r"^the whole exchange took more than 10 s$"


def test_each_operation_gets_the_smaller_of_its_timeout_and_the_time_left():
    roomy, inner = stream(60.0)
    assert roomy.read(10, timeout=5.0) == b"x"
    roomy.write(b"y", timeout=5.0)
    assert inner.timeouts == [5.0, 5.0]
    roomy.read(10, timeout=None)  # no timeout of its own: the time left
    assert 59.0 < (inner.timeouts[-1] or 0) <= 60.0
    short, inner = stream(1.0)
    short.read(10, timeout=5.0)
    assert 0 < (inner.timeouts[-1] or 0) <= 1.0


def test_a_tls_stream_keeps_the_same_deadline_and_the_rest_passes_through():
    roomy, inner = stream(60.0)
    secured = roomy.start_tls(ssl.create_default_context(), "idp.test", 5.0)
    assert isinstance(secured, DeadlineStream) and secured.deadline == roomy.deadline
    assert roomy.get_extra_info("ssl_object") == "info ssl_object"
    roomy.close()
    assert inner.closed


@pytest.mark.parametrize(("operation", "kind"), OPERATIONS)
def test_an_operation_once_the_time_is_up_fails_without_being_tried(operation, kind):
    late, inner = stream(-1.0)
    with pytest.raises(kind, match=WHOLE):
        operation(late)
    assert inner.timeouts == []


@pytest.mark.parametrize(("operation", "kind"), OPERATIONS)
def test_a_timeout_is_blamed_on_the_deadline_only_once_it_has_passed(operation, kind):
    early, inner = stream(60.0)
    inner.fail = kind("timed out")
    with pytest.raises(kind, match=r"^timed out$"):  # its own timeout, time still left
        operation(early)
    inner.expiring = early  # this time the deadline passes while the operation waits
    with pytest.raises(kind, match=WHOLE):
        operation(early)


def test_the_backend_connects_within_the_time_left_and_not_at_all_once_it_is_up():
    fake = FakeBackend()
    backend = DeadlineBackend(fake, 30.0)
    connected = backend.connect_tcp("127.0.0.1", 80, timeout=5.0)
    assert isinstance(connected, DeadlineStream) and connected.deadline == backend.deadline
    backend.connect_tcp("127.0.0.1", 80, timeout=None)
    assert fake.connects[0] == 5.0 and 29.0 < (fake.connects[1] or 0) <= 30.0
    backend.sleep(0.25)
    assert fake.slept == [0.25]
    backend.deadline = time.monotonic() - 1
    with pytest.raises(httpcore.ConnectTimeout, match=r"^the whole exchange took more than 30 s$"):
        backend.connect_tcp("127.0.0.1", 80, timeout=5.0)
    assert len(fake.connects) == 2
