"""A DNS that changes its answers: host names of the tests' own, answered by the system
resolver's ``socket.getaddrinfo`` replaced for one test (every other name and address goes
to the real one).

``names.answer("idp.test", ["127.0.0.1"], ["127.0.0.2"])``: the first lookup of ``idp.test``
gets 127.0.0.1, every later one 127.0.0.2 (a DNS rebinding attack in two lines);
``names.lookups["idp.test"]`` counts them. ``names.hang("slow.test")``: lookups of that name
wait until ``names.release()`` (a resolver that does not answer), then answer 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from typing import Any

import pytest


class Names:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = socket.getaddrinfo
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: Counter[str] = Counter()
        self.hanging: set[str] = set()
        self.released = threading.Event()
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)

    def hang(self, name: str) -> None:
        self.hanging.add(name)
        self.answers[name] = [["127.0.0.1"]]

    def release(self) -> None:
        self.released.set()

    def answer(self, name: str, *answers: list[str]) -> None:
        """``name``'s answers, one per lookup in turn; the last one stays."""
        self.answers[name] = list(answers)

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups[host] += 1
        if host in self.hanging:
            self.released.wait(30)
        answers = self.answers[host]
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [info for a in addresses for info in self.real(a, port, *args, **kwargs)]
