"""Running test clients side by side in threads."""

from __future__ import annotations

import threading


def run_together(threads: list[threading.Thread], *, timeout: float) -> None:
    """Start ``threads`` (concurrent clients), wait for each (at most ``timeout`` seconds
    apiece), and fail if one never finished."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a client never finished"
