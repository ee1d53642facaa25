"""JSON parsing that refuses text no database can store, and nesting no stack can hold.

JSON may escape a lone UTF-16 surrogate (``"\\ud800"``, RFC 8259 §8.2 calls such strings
unpredictable), and Python's ``json`` turns it into a ``str`` holding that surrogate: not Unicode
text. SQLite's driver cannot encode it, PostgreSQL refuses it, and the request would fail deep
inside a query. ``loads`` refuses it at the door instead, as the REST API's models do. Paired
escapes (``"\\ud83d\\ude00"``, an emoji) are one character once parsed and stay welcome.

``json`` also parses nested arrays and objects by recursion, and a few kilobytes of ``[`` make a
``RecursionError``, which is no ``ValueError``: ``loads`` makes it one. What parses may still be
nested too deeply for the code that reads it next, which walks bodies by recursion (a SCIM PATCH
value inside its schema's URN, a Bulk operation's data): ``loads`` refuses nesting deeper than
``MAX_DEPTH``, far beyond any body rolecall takes and well within the stack. And it takes ``NaN``,
``Infinity`` and numbers too large for a float (``1e400``, infinity), none of them JSON (RFC 8259
§6), and ``NaN`` passes every comparison that asks "is this too late?" as false: refused too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

#: An escaped surrogate, the only way one can reach a parsed string (UTF-8 cannot encode one):
#: found in the raw text first, so that the parsed value is walked only when it may hold one.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The deepest nesting of arrays and objects taken. SCIM's deepest bodies (a Bulk operation's
#: group with its members, a PATCH of the enterprise extension's manager) nest about 6 deep.
MAX_DEPTH = 64


class Refused(ValueError):
    """JSON text that ``json`` would parse and rolecall does not take; the message says why."""


class UnpairedSurrogate(Refused):
    """The JSON holds a string with a lone UTF-16 surrogate."""


class TooDeep(Refused):
    """The JSON nests arrays and objects deeper than the interpreter's stack allows."""


class NotANumber(Refused):
    """The JSON holds ``NaN``, ``Infinity`` or a number beyond a float's range."""


def _no_constant(name: str) -> float:
    raise NotANumber(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotANumber(f"{text[:32]} is beyond the range of numbers taken")
    return value


def loads(raw: bytes) -> Any:
    """``json.loads(raw)``; ``UnpairedSurrogate`` when a string in it (a key or a value) holds
    a lone surrogate, ``TooDeep``, ``NotANumber``, or another ``ValueError`` (such as
    ``UnicodeDecodeError``) when it is no JSON."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise TooDeep("the JSON nests arrays and objects too deeply") from None
    # Fewer brackets than the limit cannot nest past it: most bodies are not walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise TooDeep(f"the JSON nests arrays and objects more than {MAX_DEPTH} deep")
    if _ESCAPED_SURROGATE.search(raw) and _holds_surrogate(value):
        raise UnpairedSurrogate("a string holds an unpaired UTF-16 surrogate escape")
    return value


def escapes_unpaired_surrogate(text: str, parsed: Any) -> bool:
    """Whether ``parsed``, what a grammar that decodes JSON string escapes made of ``text``
    (a SCIM filter's or path's compared values are JSON strings, RFC 7644 §3.4.2.2), holds a
    lone surrogate that ``text`` escaped. ``parsed`` may be a tree of dataclasses."""
    return _ESCAPED_SURROGATE.search(text.encode("utf-8", "replace")) is not None and (
        _holds_surrogate(parsed)
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in ``value``; walked a level
    at a time, without recursion. ``json`` makes exact ``dict``s and ``list``s, and testing
    ``type(...) is`` keeps the walk of a 20,000-member PATCH at a third of its parse."""
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        keep = below.append
        for container in level:
            kind = type(container)
            items = container.values() if kind is dict else container if kind is list else ()
            for item in items:
                if type(item) is dict or type(item) is list:
                    keep(item)
        level = below
    return False


def _holds_surrogate(value: Any) -> bool:
    """Walked without recursion: a body nested as deep as ``json`` allows stays within the
    interpreter's stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, f.name) for f in dataclasses.fields(item))
    return False
