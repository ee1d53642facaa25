"""The server's access log without query strings.

uvicorn logs each request's path with its query string, and a query string can carry secrets:
the OIDC callback's authorization ``code`` and ``state``, an ``If-Match`` tag's neighbours, a
filter naming a user. The log keeps the path and shows that a query was there (``?…``), so no
secret reaches it (DESIGN: "secrets never appear in any log").
"""

from __future__ import annotations

import copy
import logging
from typing import Any

#: What stands for a query string the log leaves out.
HIDDEN = "?…"


class WithoutQueryStrings(logging.Filter):
    """Rewrites uvicorn's access record (``client, method, path, http version, status``) so its
    path has no query string; any other record passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, query, _ = args[2].partition("?")
            if query:
                record.args = (args[0], args[1], path + HIDDEN, args[3], args[4])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with ``WithoutQueryStrings`` on its access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["without_query_strings"] = {"()": WithoutQueryStrings}
    config["handlers"]["access"].setdefault("filters", []).append("without_query_strings")
    return config
