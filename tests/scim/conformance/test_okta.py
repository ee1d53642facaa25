"""Okta's requests, replayed: the steps of Okta's "SCIM 2.0 Spec Test" (the Runscope suite an
integration must pass), the CRUD test's deactivate/reactivate, profile pushes with PUT, and
group push (create, add and remove members, rename).

Okta talks to ``<base>/scim/v2``, sends ``application/scim+json`` (or plain JSON on creates),
uses email-shaped ``userName``s, deactivates with a path-less ``replace`` of ``active`` and never
deletes users. Each step asserts what Okta asserts, then the effect in rolecall itself.
"""

from __future__ import annotations

import uuid

import pytest

from tests.scim.conformance.helpers import (
    GROUP,
    LIST_RESPONSE,
    USER,
    Scim,
    assert_scim_error,
    basic,
    member_ids,
)


@pytest.fixture
def okta(client, org) -> Scim:
    return Scim(
        client,
        "/scim/v2",
        basic(org.admin.username, org.admin_key),
        user_agent="Okta SCIM Client 1.0.0",
    )


def okta_user(n: str, **extra) -> dict:
    """The body Okta's spec test posts ("Create Okta user with realistic values")."""
    email = f"{n}@okta-example.com"
    return {
        "schemas": [USER],
        "userName": email,
        "name": {"givenName": f"Given{n}", "familyName": f"Family{n}"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"Given{n} Family{n}",
        "active": True,
        **extra,
    }


def rest_user(client, org, user_id: str) -> dict:
    response = client.get(f"/api/v1/users/{user_id}", headers=org.admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


def rest_members(client, org, team: str) -> set[str]:
    response = client.get(f"/api/v1/teams/{team}/members", headers=org.admin_headers)
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["items"]}


def create(okta: Scim, body: dict) -> dict:
    response = okta.post("/Users", body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    return response.json()


# --- the SCIM 2.0 Spec Test, in its order -----------------------------------------------------


def test_spec_test_user_steps(okta, client, org):
    existing = create(okta, okta_user("existing"))

    # "Test Users endpoint": a one-item page of the ListResponse.
    page = okta.get("/Users", params={"count": 1, "startIndex": 1})
    assert page.status_code == 200, page.text
    listed = page.json()
    assert LIST_RESPONSE in listed["schemas"]
    assert listed["startIndex"] == 1
    assert listed["itemsPerPage"] == 1
    assert listed["totalResults"] == 2  # the admin and "existing"
    (first,) = listed["Resources"]
    assert first["id"] and first["userName"] and first["emails"][0]["value"]
    assert first["active"] is True

    # "Get Users/{{id}}".
    got = okta.get(f"/Users/{existing['id']}")
    assert got.status_code == 200
    body = got.json()
    assert body["id"] == existing["id"]
    assert body["name"]["givenName"] == "Givenexisting"
    assert body["name"]["familyName"] == "Familyexisting"
    assert body["emails"][0]["value"] == "existing@okta-example.com"

    # "Test invalid User by username": no match is 200 with an empty list, never 404.
    missing = okta.search("Users", 'userName eq "nobody-here@okta-example.com"')
    assert missing["totalResults"] == 0
    assert missing.get("Resources", []) == []

    # "Test invalid User by ID" and "Check status 404".
    for unknown in (str(uuid.uuid4()), "00919288221112222"):
        assert_scim_error(okta.get(f"/Users/{unknown}"), 404)

    # "Make sure random user doesn't exist", then "Create Okta user with realistic values".
    assert okta.search("Users", 'userName eq "rnd-7q@okta-example.com"')["totalResults"] == 0
    created_response = okta.post(
        "/Users", okta_user("rnd-7q"), headers={"Content-Type": "application/json"}
    )
    assert created_response.status_code == 201, created_response.text
    created = created_response.json()
    assert created["active"] is True
    assert created["id"]
    assert created["name"]["familyName"] == "Familyrnd-7q"
    assert created["name"]["givenName"] == "Givenrnd-7q"
    assert USER in created["schemas"]
    assert created["userName"] == "rnd-7q@okta-example.com"
    assert created_response.headers["Location"] == created["meta"]["location"]

    # "Verify that user was created": through SCIM, and in rolecall itself.
    again = okta.get(f"/Users/{created['id']}").json()
    assert (again["userName"], again["name"]["givenName"]) == (
        "rnd-7q@okta-example.com",
        "Givenrnd-7q",
    )
    stored = rest_user(client, org, created["id"])
    assert stored["email"] == "rnd-7q@okta-example.com"
    assert stored["active"] is True
    assert stored["role"] == "member"

    # "Expect failure when recreating user with same values".
    duplicate = okta.post(
        "/Users", okta_user("rnd-7q"), headers={"Content-Type": "application/json"}
    )
    assert_scim_error(duplicate, 409, "uniqueness")

    # "Username Case Sensitivity Check": the same user, whatever the case.
    caps = okta.search("Users", 'userName eq "RND-7Q@OKTA-EXAMPLE.COM"')
    assert caps["totalResults"] == 1
    assert [r["id"] for r in caps["Resources"]] == [created["id"]]

    # "Verify Groups endpoint".
    groups = okta.get("/Groups")
    assert groups.status_code == 200
    assert LIST_RESPONSE in groups.json()["schemas"]

    # "Check status 401": a credential that is not one.
    refused = okta.get(
        "/Users",
        params={"filter": 'userName eq "RND-7Q@OKTA-EXAMPLE.COM"'},
        headers={"Authorization": "non-token"},
    )
    assert_scim_error(refused, 401)


def test_a_wrong_api_key_is_a_401_in_the_scim_error_schema(okta, org):
    wrong = Scim(okta.client, okta.prefix, basic(org.admin.username, "rc_wrong"), "Okta")
    assert_scim_error(wrong.get("/Users"), 401)


# --- the CRUD test: deactivate, reactivate ----------------------------------------------------


def test_deactivate_then_reactivate_with_a_pathless_replace(okta, client, org):
    user = create(okta, okta_user("crud"))

    off = okta.patch(f"/Users/{user['id']}", [{"op": "replace", "value": {"active": False}}])
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert okta.get(f"/Users/{user['id']}").json()["active"] is False
    assert rest_user(client, org, user["id"])["active"] is False
    # Okta checks a deactivated user stays findable by userName (it reactivates by id).
    found = okta.search("Users", f'userName eq "{user["userName"]}"')
    assert [(r["id"], r["active"]) for r in found["Resources"]] == [(user["id"], False)]

    on = okta.patch(f"/Users/{user['id']}", [{"op": "replace", "value": {"active": True}}])
    assert on.status_code == 200, on.text
    assert on.json()["active"] is True
    assert rest_user(client, org, user["id"])["active"] is True


def test_deactivating_the_last_admin_is_refused_and_changes_nothing(okta, client, org):
    refused = okta.patch(f"/Users/{org.admin.id}", [{"op": "replace", "value": {"active": False}}])
    assert 400 <= refused.status_code < 500
    assert_scim_error(refused, refused.status_code)
    assert rest_user(client, org, org.admin.id)["active"] is True


# --- profile push: PUT with the whole user ----------------------------------------------------


def test_profile_push_replaces_the_user_with_put(okta, client, org):
    user = create(okta, okta_user("put"))
    # Okta's PUT carries the full profile: id, the unchanged userName, groups and (with
    # password sync on) a password, which is accepted and never returned.
    body = okta_user("put") | {
        "id": user["id"],
        "name": {"givenName": "Renamed", "familyName": "Person"},
        "displayName": "Renamed Person",
        "groups": [],
        "password": "OktaSync-pw-1",
    }
    replaced = okta.put(f"/Users/{user['id']}", body)
    assert replaced.status_code == 200, replaced.text
    answer = replaced.json()
    assert answer["id"] == user["id"]
    assert answer["name"]["givenName"] == "Renamed"
    assert answer["name"]["familyName"] == "Person"
    assert "password" not in answer
    fetched = okta.get(f"/Users/{user['id']}").json()
    assert fetched["name"]["givenName"] == "Renamed"
    assert "password" not in fetched
    assert rest_user(client, org, user["id"])["full_name"] == "Renamed Person"


def test_put_with_active_false_deactivates(okta, client, org):
    user = create(okta, okta_user("putoff"))
    replaced = okta.put(f"/Users/{user['id']}", okta_user("putoff", active=False))
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["active"] is False
    assert rest_user(client, org, user["id"])["active"] is False


def test_users_are_paged_stably_without_overlap(okta, org):
    for i in range(5):
        create(okta, okta_user(f"page{i}"))
    seen: list[str] = []
    start = 1
    while True:
        page = okta.get("/Users", params={"startIndex": start, "count": 2}).json()
        assert page["totalResults"] == 6
        assert page["startIndex"] == start
        ids = [r["id"] for r in page.get("Resources", [])]
        assert page["itemsPerPage"] == len(ids)
        if not ids:
            break
        seen += ids
        start += len(ids)
    assert len(seen) == 6
    assert len(set(seen)) == 6


# --- group push ------------------------------------------------------------------------------


def test_group_push_create_add_rename_remove(okta, client, org):
    alice = create(okta, okta_user("alice"))
    bob = create(okta, okta_user("bob"))

    created = okta.post("/Groups", {"schemas": [GROUP], "displayName": "okta-ml", "members": []})
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["displayName"] == "okta-ml"
    assert member_ids(group) == set()
    assert created.headers["Location"] == group["meta"]["location"]
    assert rest_members(client, org, "okta-ml") == set()

    # Okta looks the group up by name before pushing it.
    found = okta.search("Groups", 'displayName eq "okta-ml"')
    assert [r["id"] for r in found["Resources"]] == [group["id"]]

    added = okta.patch(
        f"/Groups/{group['id']}",
        [
            {
                "op": "add",
                "path": "members",
                "value": [
                    {"value": alice["id"], "display": alice["userName"]},
                    {"value": bob["id"], "display": bob["userName"]},
                ],
            }
        ],
    )
    assert added.status_code in (200, 204), added.text
    assert rest_members(client, org, "okta-ml") == {alice["id"], bob["id"]}
    assert member_ids(okta.get(f"/Groups/{group['id']}").json()) == {alice["id"], bob["id"]}

    # Rename: a path-less replace carrying the id and the new displayName.
    renamed = okta.patch(
        f"/Groups/{group['id']}",
        [{"op": "replace", "value": {"id": group["id"], "displayName": "okta-ml-renamed"}}],
    )
    assert renamed.status_code in (200, 204), renamed.text
    assert okta.get(f"/Groups/{group['id']}").json()["displayName"] == "okta-ml-renamed"
    assert rest_members(client, org, "okta-ml-renamed") == {alice["id"], bob["id"]}
    assert client.get("/api/v1/teams/okta-ml", headers=org.admin_headers).status_code == 404

    removed = okta.patch(
        f"/Groups/{group['id']}",
        [{"op": "remove", "path": f'members[value eq "{alice["id"]}"]'}],
    )
    assert removed.status_code in (200, 204), removed.text
    assert rest_members(client, org, "okta-ml-renamed") == {bob["id"]}
    # The user left the team, not the organization.
    assert rest_user(client, org, alice["id"])["active"] is True


def test_group_push_with_members_on_create(okta, client, org):
    carol = create(okta, okta_user("carol"))
    created = okta.post(
        "/Groups",
        {
            "schemas": [GROUP],
            "displayName": "okta-vision",
            "members": [{"value": carol["id"], "display": carol["userName"]}],
        },
    )
    assert created.status_code == 201, created.text
    assert member_ids(created.json()) == {carol["id"]}
    assert rest_members(client, org, "okta-vision") == {carol["id"]}
    listed = okta.get("/Groups", params={"excludedAttributes": "members", "startIndex": 1})
    assert listed.status_code == 200
    names = {g["displayName"]: g for g in listed.json()["Resources"]}
    assert "members" not in names["okta-vision"]


def test_deleting_a_group_is_refused_and_the_team_stays(okta, client, org):
    group = okta.post("/Groups", {"schemas": [GROUP], "displayName": "okta-keep"}).json()
    refused = okta.delete(f"/Groups/{group['id']}")
    assert 400 <= refused.status_code < 500
    assert_scim_error(refused, refused.status_code)
    assert "app" in refused.json()["detail"].lower()
    assert client.get("/api/v1/teams/okta-keep", headers=org.admin_headers).status_code == 200
