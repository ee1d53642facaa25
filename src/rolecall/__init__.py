"""rolecall: self-hosted identity and access management for machine-learning teams.

The admin SDK is importable as ``from rolecall import Api``; it pulls in no server code.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Api"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing the server never imports the SDK (and the reverse).
    if name == "Api":
        from rolecall.sdk import Api

        return Api
    raise AttributeError(name)
