"""Filters and PATCH paths whose strings no database can store are refused as bad input.

A filter's compared values are JSON strings (RFC 7644 §3.4.2.2), so ``"\\ud800"`` escapes a lone
UTF-16 surrogate, which the grammar decodes into text that SQLite's driver cannot encode and
PostgreSQL refuses: these were 500s from inside the query.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.teams.models import TeamMembership
from tests.scim.conftest import GROUP_URN, PATCH_URN, assert_scim_error, new_user, patch

USERS, GROUPS, ROLES, BULK = "/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/Roles", "/scim/v2/Bulk"
LONE = r"\ud800"


@pytest.mark.parametrize(
    ("resource", "filter_text"),
    [
        (USERS, rf'userName eq "{LONE}"'),
        (USERS, r'id eq "\udfff"'),
        (USERS, rf'teamRoles[teamName eq "{LONE}"]'),
        (USERS, rf'userName eq "a" or (not (externalId sw "x{LONE}"))'),
        (GROUPS, r'displayName co "\uDFFF"'),
        (GROUPS, rf'members[value eq "{LONE}"]'),
        (ROLES, rf'name eq "{LONE}"'),
    ],
)
def test_a_filter_escaping_a_lone_surrogate_is_invalid_filter(scim, resource, filter_text):
    body = assert_scim_error(
        scim.get(resource, params={"filter": filter_text}), 400, "invalidFilter"
    )
    assert "surrogate" in body["detail"]


def test_a_search_escaping_a_lone_surrogate_is_invalid_filter(scim):
    search = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": f'userName eq "{LONE}"',
    }
    assert_scim_error(scim.post(f"{USERS}/.search", json=search), 400, "invalidFilter")


def test_a_surrogate_pair_is_one_character_and_filters_as_any_other(scim):
    user_name = "\U0001f600@example.com"
    assert scim.post(USERS, json=new_user(user_name)).status_code == 201

    found = scim.get(USERS, params={"filter": r'userName eq "\ud83d\ude00@example.com"'})

    assert found.status_code == 200, found.text
    assert [u["userName"] for u in found.json()["Resources"]] == [user_name]


def test_a_filter_with_a_nul_character_says_so(scim):
    body = assert_scim_error(
        scim.get(USERS, params={"filter": 'userName eq "a\x00b"'}), 400, "invalidFilter"
    )
    assert "NUL" in body["detail"]


def test_a_value_filter_on_an_attribute_the_resource_lacks_says_it_is_unknown(scim):
    for resource, filter_text in (
        (ROLES, 'permissions[name eq "x"]'),
        (USERS, "members[value pr]"),
    ):
        body = assert_scim_error(
            scim.get(resource, params={"filter": filter_text}), 400, "invalidFilter"
        )
        assert "unknown or unsupported attribute" in body["detail"]
    body = assert_scim_error(
        scim.get(USERS, params={"filter": 'userName[value eq "x"]'}), 400, "invalidFilter"
    )
    assert "not multi-valued" in body["detail"]


def _group_with_member(scim) -> tuple[str, str]:
    user_id = scim.post(USERS, json=new_user()).json()["id"]
    group = {"schemas": [GROUP_URN], "displayName": "Vision", "members": [{"value": user_id}]}
    return scim.post(GROUPS, json=group).json()["id"], user_id


def _member_ids(db, group_id: str) -> list[str]:
    query = select(TeamMembership.user_id).where(TeamMembership.team_id == group_id)
    return list(db.scalars(query))


def test_a_patch_path_escaping_a_lone_surrogate_is_invalid_path_and_changes_nothing(scim, db):
    group_id, user_id = _group_with_member(scim)
    operation = {"op": "remove", "path": f'members[value eq "{LONE}"]'}

    body = assert_scim_error(
        scim.patch(f"{GROUPS}/{group_id}", json=patch(operation)), 400, "invalidPath"
    )

    assert "surrogate" in body["detail"]
    assert _member_ids(db, group_id) == [user_id]


def test_a_bulk_patch_escaping_a_lone_surrogate_fails_alone(scim, db):
    group_id, user_id = _group_with_member(scim)
    bad = {
        "schemas": [PATCH_URN],
        "Operations": [{"op": "remove", "path": f'members[value eq "{LONE}"]'}],
    }
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "PATCH", "path": f"/Groups/{group_id}", "data": bad},
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": new_user("b@example.com")},
        ],
    }

    response = scim.post(BULK, json=body)

    assert response.status_code == 200, response.text
    results = response.json()["Operations"]
    assert [r["status"] for r in results] == ["400", "201"]
    assert results[0]["response"]["scimType"] == "invalidPath"
    assert _member_ids(db, group_id) == [user_id]
