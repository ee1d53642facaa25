"""Microsoft Entra ID's requests, replayed: the request shapes of Microsoft's "build a SCIM
endpoint" guide (user and group operations) and what its SCIM validator and provisioning
service are known to send.

Entra talks to ``<base>/scim`` with ``application/scim+json``, posts users with the enterprise
extension and ``roles: []``, matches users by ``userName`` or ``externalId`` before creating
them, capitalises op names (``Replace``, ``Add``, ``Remove``), sends booleans as strings
(``"False"``), path-less replaces whose value keys are attribute paths (``name.givenName``),
value-filtered paths (``emails[type eq "work"].value``), and removes group members both by a
``members[value eq "id"]`` path and by a value list. Each step asserts the answer, then the
effect in rolecall itself.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from tests.scim.conformance.helpers import (
    ENTERPRISE_USER,
    GROUP,
    USER,
    Scim,
    assert_scim_error,
    basic,
    member_ids,
)


@pytest.fixture
def entra(client, org) -> Scim:
    return Scim(
        client,
        "/scim",
        basic(org.admin.username, org.admin_key),
        user_agent="Microsoft.Azure.AD.ProvisioningService",
    )


def entra_user(tag: str, **extra) -> dict:
    """Entra's "Create User" request body."""
    user_name = f"Test_User_{tag}@testuser.com"
    return {
        "schemas": [USER, ENTERPRISE_USER],
        "externalId": f"ext-{tag}",
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {
            "formatted": f"Given{tag} Family{tag}",
            "familyName": f"Family{tag}",
            "givenName": f"Given{tag}",
        },
        "roles": [],
        ENTERPRISE_USER: {
            "employeeNumber": "701984",
            "department": "Research",
            "manager": {"value": "not-a-rolecall-user"},
        },
        "locale": "en-US",
        **extra,
    }


def create(entra: Scim, tag: str, **extra) -> dict:
    response = entra.post("/Users", entra_user(tag, **extra))
    assert response.status_code == 201, response.text
    return response.json()


def rest_user(client, org, user_id: str) -> dict:
    response = client.get(f"/api/v1/users/{user_id}", headers=org.admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


def rest_members(client, org, team: str) -> list[str]:
    response = client.get(f"/api/v1/teams/{team}/members", headers=org.admin_headers)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["items"]]


def new_group(entra: Scim, name: str, members: list[str] = ()) -> dict:
    response = entra.post(
        "/Groups",
        {
            "schemas": [GROUP],
            "externalId": f"ext-{name}",
            "displayName": name,
            "meta": {"resourceType": "Group"},
            "members": [{"value": m} for m in members],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


# --- users -----------------------------------------------------------------------------------


def test_connection_probe_with_a_random_username_is_an_empty_list(entra):
    # "Test Connection" in the Entra portal filters on a random GUID.
    found = entra.search("Users", f'userName eq "{uuid.uuid4()}"')
    assert found["totalResults"] == 0
    assert found.get("Resources", []) == []


def test_create_user_with_the_enterprise_extension(entra, client, org):
    response = entra.post("/Users", entra_user("c1"))
    assert response.status_code == 201, response.text
    user = response.json()
    assert user["userName"] == "Test_User_c1@testuser.com"
    assert user["externalId"] == "ext-c1"
    assert user["active"] is True
    assert user["name"]["givenName"] == "Givenc1"
    assert user["name"]["familyName"] == "Familyc1"
    assert response.headers["Location"] == user["meta"]["location"]
    assert user["meta"]["resourceType"] == "User"
    # Accepted and ignored: the server keeps no attribute it does not store.
    assert ENTERPRISE_USER not in user
    assert "locale" not in user
    stored = rest_user(client, org, user["id"])
    assert stored["email"] == "Test_User_c1@testuser.com"
    assert stored["active"] is True


def test_lookups_by_username_and_external_id(entra):
    user = create(entra, "q1")
    by_name = entra.search("Users", 'userName eq "Test_User_q1@testuser.com"')
    assert [r["id"] for r in by_name["Resources"]] == [user["id"]]
    by_external = entra.search("Users", 'externalId eq "ext-q1"')
    assert [r["id"] for r in by_external["Resources"]] == [user["id"]]
    # externalId is case-exact: another case is another identifier.
    assert entra.search("Users", 'externalId eq "EXT-Q1"')["totalResults"] == 0
    # "Get User by query - Zero results".
    none = entra.search("Users", 'userName eq "non-existent user"')
    assert none["totalResults"] == 0


def test_duplicate_username_in_another_case_is_a_409_uniqueness(entra, client, org):
    create(entra, "dup")
    again = entra_user("dup") | {"userName": "TEST_USER_DUP@TESTUSER.COM", "externalId": "x2"}
    again["emails"] = [{"primary": True, "type": "work", "value": "other-dup@testuser.com"}]
    assert_scim_error(entra.post("/Users", again), 409, "uniqueness")
    listed = client.get("/api/v1/users", headers=org.admin_headers).json()["items"]
    assert sum(u["email"].lower() == "other-dup@testuser.com" for u in listed) == 0


def test_update_multivalued_properties_with_capitalised_replace(entra, client, org):
    user = create(entra, "mv")
    response = entra.patch(
        f"/Users/{user['id']}",
        [
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "updatedEmail@microsoft.com",
            },
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["value"] for e in body["emails"] if e.get("type") == "work"] == [
        "updatedEmail@microsoft.com"
    ]
    assert body["name"]["familyName"] == "updatedFamilyName"
    assert rest_user(client, org, user["id"])["email"] == "updatedEmail@microsoft.com"


def test_an_untyped_email_is_the_work_address_a_filtered_add_sets(entra, client, org):
    # rolecall keeps one address, the work one (the User schema says so): an email sent
    # without a type becomes it, and Entra's Add on emails[type eq "work"].value sets it.
    body = entra_user("nowork")
    body["emails"] = [{"value": "Test_User_nowork@testuser.com", "primary": True}]
    user = entra.post("/Users", body).json()
    assert [(e["value"], e.get("type")) for e in user["emails"]] == [
        ("Test_User_nowork@testuser.com", "work")
    ]
    response = entra.patch(
        f"/Users/{user['id']}",
        [{"op": "Add", "path": 'emails[type eq "work"].value', "value": "work-nw@testuser.com"}],
    )
    assert response.status_code == 200, response.text
    work = [e for e in response.json()["emails"] if e.get("type") == "work"]
    assert [e["value"] for e in work] == ["work-nw@testuser.com"]
    fetched = entra.get(f"/Users/{user['id']}").json()
    assert [e["value"] for e in fetched["emails"]] == ["work-nw@testuser.com"]
    assert rest_user(client, org, user["id"])["email"] == "work-nw@testuser.com"


def test_update_single_valued_username(entra, client, org):
    user = create(entra, "sv")
    response = entra.patch(
        f"/Users/{user['id']}",
        [{"op": "Replace", "path": "userName", "value": "5b50642d-79fc-4410@testuser.com"}],
    )
    assert response.status_code == 200, response.text
    assert response.json()["userName"] == "5b50642d-79fc-4410@testuser.com"
    found = entra.search("Users", 'userName eq "5b50642d-79fc-4410@testuser.com"')
    assert [r["id"] for r in found["Resources"]] == [user["id"]]
    assert entra.search("Users", 'userName eq "Test_User_sv@testuser.com"')["totalResults"] == 0


def test_pathless_replace_with_attribute_path_keys(entra, client, org):
    user = create(entra, "pl")
    response = entra.patch(
        f"/Users/{user['id']}",
        [
            {
                "op": "replace",
                "value": {
                    "name.givenName": "Ada",
                    "name.familyName": "Lovelace",
                    "displayName": "Ada Lovelace",
                },
            }
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"]["givenName"], body["name"]["familyName"]) == ("Ada", "Lovelace")
    assert body["displayName"] == "Ada Lovelace"
    assert rest_user(client, org, user["id"])["full_name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    ("operation", "then"),
    [
        (
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "active", "value": "True"},
        ),
        (
            {"op": "Replace", "value": {"active": "False"}},
            {"op": "Replace", "value": {"active": "True"}},
        ),
        (
            {"op": "replace", "path": "active", "value": False},
            {"op": "replace", "path": "active", "value": True},
        ),
    ],
    ids=["string-with-path", "string-pathless", "boolean"],
)
def test_disable_user_with_booleans_as_strings(entra, client, org, operation, then):
    user = create(entra, f"off{uuid.uuid4().hex[:6]}")
    response = entra.patch(f"/Users/{user['id']}", [operation])
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert rest_user(client, org, user["id"])["active"] is False
    back = entra.patch(f"/Users/{user['id']}", [then])
    assert back.status_code == 200, back.text
    assert back.json()["active"] is True
    assert rest_user(client, org, user["id"])["active"] is True


def test_an_unknown_op_is_a_400_invalid_syntax_and_changes_nothing(entra, client, org):
    user = create(entra, "badop")
    response = entra.patch(
        f"/Users/{user['id']}", [{"op": "Merge", "path": "active", "value": "False"}]
    )
    assert_scim_error(response, 400)
    assert rest_user(client, org, user["id"])["active"] is True


def test_a_boolean_that_is_not_one_is_a_400_and_changes_nothing(entra, client, org):
    user = create(entra, "badbool")
    response = entra.patch(
        f"/Users/{user['id']}", [{"op": "Replace", "path": "active", "value": "maybe"}]
    )
    assert_scim_error(response, 400)
    assert rest_user(client, org, user["id"])["active"] is True


def test_put_with_id_meta_groups_and_password(entra, client, org):
    user = create(entra, "put")
    body = entra_user("put") | {
        "id": user["id"],
        "meta": user["meta"],
        "groups": [{"value": str(uuid.uuid4()), "display": "ignored"}],
        "password": "P@ssw0rd-from-entra",
        "displayName": "Put Person",
        "name": {"givenName": "Put", "familyName": "Person"},
    }
    response = entra.put(f"/Users/{user['id']}", body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == user["id"]
    assert answer["displayName"] == "Put Person"
    assert "password" not in answer
    assert "password" not in entra.get(f"/Users/{user['id']}").json()
    listed = entra.search("Users", 'userName eq "Test_User_put@testuser.com"')
    assert all("password" not in r for r in listed["Resources"])
    assert rest_user(client, org, user["id"])["full_name"] == "Put Person"


def test_delete_user(entra, client, org, db):
    user = create(entra, "del")
    response = entra.delete(f"/Users/{user['id']}")
    assert response.status_code == 204, response.text
    assert_scim_error(entra.get(f"/Users/{user['id']}"), 404)
    assert entra.search("Users", 'userName eq "Test_User_del@testuser.com"')["totalResults"] == 0
    assert client.get(f"/api/v1/users/{user['id']}", headers=org.admin_headers).status_code == 404
    # The deletion is audited as a SCIM change.
    db.expire_all()
    events = db.scalars(select(AuditEvent).where(AuditEvent.object_id == user["id"])).all()
    assert events and {e.surface for e in events} == {"scim"}


# --- groups ----------------------------------------------------------------------------------


def test_group_lifecycle_as_entra_sends_it(entra, client, org):
    one = create(entra, "g1")
    two = create(entra, "g2")
    group = new_group(entra, "entra-ml")
    assert member_ids(group) == set()

    # "Get Group" and "Get Group by displayName" exclude the members.
    got = entra.get(f"/Groups/{group['id']}", params={"excludedAttributes": "members"})
    assert got.status_code == 200
    assert "members" not in got.json()
    assert got.json()["displayName"] == "entra-ml"
    found = entra.search("Groups", 'displayName eq "entra-ml"', excludedAttributes="members")
    assert [g["id"] for g in found["Resources"]] == [group["id"]]
    assert "members" not in found["Resources"][0]

    # "Update Group [Add Members]": capitalised op, $ref null.
    added = entra.patch(
        f"/Groups/{group['id']}",
        [
            {
                "op": "Add",
                "path": "members",
                "value": [{"$ref": None, "value": one["id"]}, {"$ref": None, "value": two["id"]}],
            }
        ],
    )
    assert added.status_code in (200, 204), added.text
    assert set(rest_members(client, org, "entra-ml")) == {one["id"], two["id"]}

    # "Update Group [Non-member attributes]": rename.
    renamed = entra.patch(
        f"/Groups/{group['id']}",
        [{"op": "Replace", "path": "displayName", "value": "entra-ml-2"}],
    )
    assert renamed.status_code in (200, 204), renamed.text
    assert entra.get(f"/Groups/{group['id']}").json()["displayName"] == "entra-ml-2"
    assert set(rest_members(client, org, "entra-ml-2")) == {one["id"], two["id"]}

    # "Update Group [Remove Members]": a value list removes only those listed.
    removed = entra.patch(
        f"/Groups/{group['id']}",
        [{"op": "Remove", "path": "members", "value": [{"$ref": None, "value": one["id"]}]}],
    )
    assert removed.status_code in (200, 204), removed.text
    assert rest_members(client, org, "entra-ml-2") == [two["id"]]
    assert member_ids(entra.get(f"/Groups/{group['id']}").json()) == {two["id"]}


def test_member_removal_by_value_filter_path(entra, client, org):
    one, two, three = (create(entra, f"rf{i}") for i in range(3))
    group = new_group(entra, "entra-rf", [one["id"], two["id"], three["id"]])
    assert member_ids(group) == {one["id"], two["id"], three["id"]}
    response = entra.patch(
        f"/Groups/{group['id']}",
        [{"op": "Remove", "path": f'members[value eq "{two["id"]}"]'}],
    )
    assert response.status_code in (200, 204), response.text
    assert set(rest_members(client, org, "entra-rf")) == {one["id"], three["id"]}


def test_readding_an_existing_member_is_a_no_op(entra, client, org):
    one = create(entra, "re1")
    group = new_group(entra, "entra-re", [one["id"]])
    before = client.get("/api/v1/teams/entra-re/members", headers=org.admin_headers).json()
    again = entra.patch(
        f"/Groups/{group['id']}",
        [{"op": "Add", "path": "members", "value": [{"value": one["id"]}]}],
    )
    assert again.status_code in (200, 204), again.text
    after = client.get("/api/v1/teams/entra-re/members", headers=org.admin_headers).json()
    assert after == before  # same member, same role, same join time


def test_adding_an_unknown_member_is_a_400_and_adds_nobody(entra, client, org):
    one = create(entra, "um1")
    group = new_group(entra, "entra-um")
    response = entra.patch(
        f"/Groups/{group['id']}",
        [
            {
                "op": "Add",
                "path": "members",
                "value": [{"value": one["id"]}, {"value": str(uuid.uuid4())}],
            }
        ],
    )
    assert 400 <= response.status_code < 500
    assert_scim_error(response, response.status_code)
    assert rest_members(client, org, "entra-um") == []


def test_duplicate_group_name_is_a_409_uniqueness(entra):
    new_group(entra, "entra-dup")
    response = entra.post("/Groups", {"schemas": [GROUP], "displayName": "ENTRA-DUP"})
    assert_scim_error(response, 409, "uniqueness")


def test_default_mapping_attributes_rolecall_does_not_store_are_accepted_and_ignored(
    entra, client, org
):
    # Entra's default attribute mapping for a custom app also sends title, preferredLanguage,
    # phone numbers, addresses and the enterprise extension; in one PATCH with attributes
    # rolecall does store, which must still apply.
    user = create(entra, "map")
    response = entra.patch(
        f"/Users/{user['id']}",
        [
            {"op": "Add", "path": "title", "value": "Engineer"},
            {"op": "Add", "path": "preferredLanguage", "value": "en-GB"},
            {"op": "Add", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 555 0100"},
            {"op": "Add", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Road"},
            {"op": "Replace", "path": f"{ENTERPRISE_USER}:department", "value": "Research"},
            {"op": "Replace", "path": f"{ENTERPRISE_USER}:manager", "value": "someone"},
            {"op": "Replace", "path": "name.givenName", "value": "Mapped"},
        ],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"]["givenName"] == "Mapped"
    for ignored in ("title", "preferredLanguage", "phoneNumbers", "addresses", ENTERPRISE_USER):
        assert ignored not in body
    fetched = entra.get(f"/Users/{user['id']}").json()
    assert fetched["name"]["givenName"] == "Mapped"
    assert rest_user(client, org, user["id"])["email"] == "Test_User_map@testuser.com"
