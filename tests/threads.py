"""Running test clients side by side in threads."""

from __future__ import annotations

import threading

import httpx


def run_together(threads: list[threading.Thread], *, timeout: float) -> None:
    """Start ``threads`` (concurrent clients), wait for each (at most ``timeout`` seconds
    apiece), and fail if one never finished."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a client never finished"


def send_at_once(
    base_url: str, headers: dict[str, str], requests: list[tuple[str, str, dict | None]]
) -> list[httpx.Response]:
    """Send each of ``requests`` (method, path under ``base_url``, JSON body or None) from a
    client of its own, all released together by a barrier; returns the answers, in the order
    they arrived."""
    barrier = threading.Barrier(len(requests))
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def send(method: str, path: str, body: dict | None) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
            barrier.wait(timeout=60)
            response = client.request(method, path, json=body)
        with lock:
            responses.append(response)

    run_together([threading.Thread(target=send, args=request) for request in requests], timeout=120)
    return responses
