"""Servers that answer slowly, for the tests of deadlines: a whole HTTP answer sent a byte at a
time, each byte well within a per-read timeout, the whole far past a deadline."""

from __future__ import annotations

import time
from typing import BinaryIO


def http_answer(status: int, body: bytes) -> bytes:
    """The bytes of a minimal HTTP/1.1 answer: status line, ``content-length``, body."""
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


def send_slowly(out: BinaryIO, answer: bytes, interval: float) -> None:
    """Write ``answer`` to ``out`` a byte every ``interval`` seconds, until done or the client
    gives up (closes the connection)."""
    for n in range(len(answer)):
        try:
            out.write(answer[n : n + 1])
            out.flush()
        except OSError:
            return
        time.sleep(interval)
