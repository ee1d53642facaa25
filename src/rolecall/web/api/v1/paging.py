"""The query parameters of every paged REST list: ``?offset=&limit=``, the same bounds everywhere.

Lists answer ``{"items", "total", "offset", "limit"}``: ``total`` counts every item the caller
may see, so a client pages until ``offset + limit >= total``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

#: The most items one page holds, and how many when ``limit`` is not given.
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
#: Bounded, as SQLite's integers are (a larger offset was a 500): far past any directory.
MAX_OFFSET = 1_000_000_000

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items on the page (at most 500).")]
