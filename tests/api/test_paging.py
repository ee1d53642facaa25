"""Every paged REST list takes ``?offset=&limit=`` with the same bounds and answers ``total``:
pages that do not overlap and together hold every item, in a stable order."""

from __future__ import annotations

import pytest

from rolecall.web.api.v1.paging import MAX_LIMIT, MAX_OFFSET
from tests import factories

API = "/api/v1"


def _arranged(db, org) -> dict[str, tuple[str, int]]:
    """Seven items in each list (besides those the organization starts with): the list's URL
    and how many items it holds."""
    team = factories.team(db, org.org, name="vision")
    for i in range(7):
        user = factories.user(db, org.org, username=f"pager{i}")
        factories.member(db, team, user)
        factories.team(db, org.org, name=f"pt{i}")
        factories.custom_role(db, org.org, name=f"role{i}")
        factories.service_account(db, org.org, team, name=f"bot{i}")
        factories.project(db, team, name=f"p{i}")
    # Service accounts are team members too: 7 users and 7 accounts.
    return {
        "teams": (f"{API}/teams", 8),
        "team members": (f"{API}/teams/vision/members", 14),
        "roles": (f"{API}/roles", 7),
        "service accounts": (f"{API}/service-accounts", 7),
        "users": (f"{API}/users", 8),
        "projects": (f"{API}/projects?entity=vision", 7),
    }


def _key(item: dict) -> str:
    return item.get("id") or item["name"]


def _get(client, org, url: str, **params):
    return client.get(url, params=params, headers=org.admin_headers)


@pytest.mark.parametrize(
    "listing", ["teams", "team members", "roles", "service accounts", "users", "projects"]
)
def test_pages_hold_every_item_once_with_the_total(client, db, org, listing):
    url, count = _arranged(db, org)[listing]
    whole = _get(client, org, url).json()
    assert (whole["total"], whole["offset"], whole["limit"]) == (count, 0, 100)
    assert len(whole["items"]) == count

    offsets = list(range(0, count, 3))
    pages = [_get(client, org, url, offset=offset, limit=3).json() for offset in offsets]

    assert [len(page["items"]) for page in pages] == [min(3, count - o) for o in offsets]
    assert all(page["total"] == count and page["limit"] == 3 for page in pages)
    assert [page["offset"] for page in pages] == offsets
    paged = [_key(item) for page in pages for item in page["items"]]
    assert paged == [_key(item) for item in whole["items"]]
    past_the_end = _get(client, org, url, offset=count, limit=3).json()
    assert past_the_end["items"] == [] and past_the_end["total"] == count


@pytest.mark.parametrize(
    "listing", ["teams", "team members", "roles", "service accounts", "users", "projects"]
)
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": MAX_OFFSET + 1}, "offset"),
    ],
)
def test_a_page_out_of_bounds_is_422_naming_the_parameter(client, db, org, listing, params, field):
    url, _ = _arranged(db, org)[listing]

    response = _get(client, org, url, **params)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_the_largest_page_and_offset_are_taken(client, db, org):
    url, count = _arranged(db, org)["teams"]

    largest = _get(client, org, url, limit=MAX_LIMIT).json()
    farthest = _get(client, org, url, offset=MAX_OFFSET).json()

    assert len(largest["items"]) == count and largest["limit"] == MAX_LIMIT
    assert farthest == {"items": [], "total": count, "offset": MAX_OFFSET, "limit": 100}
