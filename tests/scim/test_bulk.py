"""SCIM bulk operations (RFC 7644 §3.7): ``POST /Bulk`` with creates, replaces, patches and
deletes of Users, Groups and Roles, ``bulkId`` references, ``failOnErrors`` and versions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.users.models import User
from tests import factories
from tests.scim.conftest import GROUP_URN, PATCH_URN, ROLE_URN, assert_scim_error, new_user

BULK = "/scim/v2/Bulk"
REQUEST_URN = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
RESPONSE_URN = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"


def bulk(*operations: dict, **extra: object) -> dict:
    return {"schemas": [REQUEST_URN], "Operations": list(operations), **extra}


def post_user(bulk_id: str, name: str) -> dict:
    return {"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": new_user(name)}


def post_group(bulk_id: str, name: str, *members: str) -> dict:
    data = {
        "schemas": [GROUP_URN],
        "displayName": name,
        "members": [{"value": m} for m in members],
    }
    return {"method": "POST", "path": "/Groups", "bulkId": bulk_id, "data": data}


def patch_op(path: str, *operations: dict, **extra: object) -> dict:
    data = {"schemas": [PATCH_URN], "Operations": list(operations)}
    return {"method": "PATCH", "path": path, "data": data, **extra}


def sent(scim, body: dict) -> list[dict]:
    response = scim.post(BULK, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["schemas"] == [RESPONSE_URN]
    return response.json()["Operations"]


def local(location: str) -> str:
    """A resource's ``location`` as a path for the test client."""
    return "/scim/v2" + location.split("/scim/v2", 1)[1]


def user_count(db) -> int:
    return db.scalar(select(func.count()).select_from(User))


def test_users_and_a_group_of_them_are_created_in_one_request(scim):
    """The group's members name users created earlier in the same request by bulkId."""
    results = sent(
        scim,
        bulk(
            post_user("u1", "bulk.one@example.com"),
            post_user("u2", "bulk.two@example.com"),
            post_group("g1", "Bulk Team", "bulkId:u1", "bulkId:u2"),
        ),
    )

    assert [r["status"] for r in results] == ["201", "201", "201"]
    assert [r["bulkId"] for r in results] == ["u1", "u2", "g1"]
    group = scim.get(local(results[2]["location"]))
    assert group.status_code == 200, group.text
    ids = {r["location"].rsplit("/", 1)[1] for r in results[:2]}
    assert {m["value"] for m in group.json()["members"]} == ids
    shown = scim.get(local(results[2]["location"]))
    assert shown.headers["ETag"] == results[2]["version"]
    assert results[2]["location"] == shown.json()["meta"]["location"]
    for result in results[:2]:  # each user's version was that before it joined the group
        assert scim.get(local(result["location"])).headers["ETag"] != result["version"]


def test_a_reference_to_a_later_post_waits_for_it(scim):
    results = sent(
        scim,
        bulk(post_group("g1", "Early Team", "bulkId:u1"), post_user("u1", "later@example.com")),
    )

    assert [(r["bulkId"], r["status"]) for r in results] == [("g1", "201"), ("u1", "201")]
    group = scim.get(local(results[0]["location"])).json()
    assert [m["value"] for m in group["members"]] == [results[1]["location"].rsplit("/", 1)[1]]


def test_each_method_on_each_resource_and_a_path_with_a_bulk_id(scim):
    role = {
        "schemas": [ROLE_URN],
        "name": "bulk-role",
        "inheritedFrom": "viewer",
        "permissions": [{"name": "project:update"}],
    }
    results = sent(
        scim,
        bulk(
            post_user("u1", "methods@example.com"),
            {"method": "POST", "path": "/Roles", "bulkId": "r1", "data": role},
            post_group("g1", "Methods Team"),
            patch_op(
                "/Groups/bulkId:g1",
                {"op": "add", "path": "members", "value": [{"value": "bulkId:u1"}]},
            ),
            patch_op("/Users/bulkId:u1", {"op": "replace", "path": "displayName", "value": "M"}),
            {
                "method": "PUT",
                "path": "/Roles/bulkId:r1",
                "data": role | {"name": "bulk-role-2", "description": "renamed"},
            },
            {"method": "DELETE", "path": "/Roles/bulkId:r1"},
            {"method": "delete", "path": "/users/bulkId:u1"},  # method and type in any case
        ),
    )

    # The group's PATCH is 204, as when sent alone: no version (its members are not rendered).
    assert [r["status"] for r in results] == [
        "201",
        "201",
        "201",
        "204",
        "200",
        "200",
        "204",
        "204",
    ]
    assert "version" not in results[3] and "version" in results[4]
    assert results[3]["location"] == results[2]["location"]
    assert results[7]["location"] == results[0]["location"]
    assert scim.get(local(results[0]["location"])).status_code == 404
    assert scim.get(local(results[2]["location"])).json()["members"] == []  # the user left it
    assert scim.get(local(results[1]["location"])).status_code == 404


def test_a_failed_operation_is_undone_alone_and_answered_with_its_error(scim, db):
    before = user_count(db)
    results = sent(
        scim,
        bulk(
            post_user("u1", "kept@example.com"),
            post_user("u2", "kept@example.com"),  # the same userName: 409 uniqueness
            {"method": "POST", "path": "/Users", "bulkId": "u3", "data": {"userName": ""}},
            post_user("u4", "also.kept@example.com"),
        ),
    )

    assert [r["status"] for r in results] == ["201", "409", "400", "201"]
    assert results[1]["response"]["scimType"] == "uniqueness"
    assert results[1]["response"]["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert results[2]["response"]["scimType"] == "invalidValue"
    assert "location" not in results[1] and "version" not in results[1]
    assert user_count(db) == before + 2


def test_an_operation_on_a_failed_posts_bulk_id_fails_with_409(scim, db):
    before = user_count(db)
    results = sent(
        scim,
        bulk(
            {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"userName": "x"}},
            post_group("g1", "Orphan Team", "bulkId:bad"),
        ),
    )

    assert [r["status"] for r in results] == ["400", "409"]
    assert results[1]["response"]["scimType"] == "invalidValue"
    assert "failed" in results[1]["response"]["detail"]
    assert (
        scim.get("/scim/v2/Groups", params={"filter": 'displayName eq "Orphan Team"'}).json()[
            "totalResults"
        ]
        == 0
    )
    assert user_count(db) == before


def test_references_in_a_circle_fail_instead_of_waiting_forever(scim):
    results = sent(
        scim,
        bulk(
            post_group("g1", "Circle One", "bulkId:g2"),
            post_group("g2", "Circle Two", "bulkId:g1"),
        ),
    )

    assert [r["status"] for r in results] == ["409", "409"]


def test_fail_on_errors_stops_after_that_many_failures(scim, db):
    before = user_count(db)
    results = sent(
        scim,
        bulk(
            post_user("u1", "first.ok@example.com"),
            post_user("u2", "first.ok@example.com"),
            post_user("u3", "first.ok@example.com"),
            post_user("u4", "never.run@example.com"),
            failOnErrors=2,
        ),
    )

    assert [(r["bulkId"], r["status"]) for r in results] == [
        ("u1", "201"),
        ("u2", "409"),
        ("u3", "409"),
    ]
    assert user_count(db) == before + 1


def test_a_version_is_each_operations_if_match(scim):
    created = scim.post("/scim/v2/Users", json=new_user("versioned.bulk@example.com")).json()
    path = f"/Users/{created['id']}"
    old = created["meta"]["version"]
    rename = {"op": "replace", "path": "displayName", "value": "Bulk Renamed"}

    first = sent(scim, bulk(patch_op(path, rename, version=old)))
    again = sent(scim, bulk(patch_op(path, rename | {"value": "Lost"}, version=old)))

    assert first[0]["status"] == "200" and first[0]["version"] != old
    assert again[0]["status"] == "412" and "response" in again[0]
    assert scim.get(f"/scim/v2{path}").json()["displayName"] == "Bulk Renamed"


def test_every_operation_is_audited_with_surface_scim(scim, db):
    sent(scim, bulk(post_user("u1", "audited.bulk@example.com"), post_group("g1", "Audited")))

    events = db.scalars(
        select(AuditEvent.action).where(AuditEvent.surface == "scim").order_by(AuditEvent.id)
    ).all()
    assert "user.create" in events and "team.create" in events


def test_deleting_a_group_in_bulk_is_refused_as_it_is_alone(scim):
    group = scim.post(
        "/scim/v2/Groups", json={"schemas": [GROUP_URN], "displayName": "Stays", "members": []}
    ).json()

    results = sent(scim, bulk({"method": "DELETE", "path": f"/Groups/{group['id']}"}))

    assert results[0]["status"] == "400" and results[0]["response"]["scimType"] == "mutability"
    assert scim.get(f"/scim/v2/Groups/{group['id']}").status_code == 200


@pytest.mark.parametrize(
    "body", [[], {}, {"Operations": []}, {"Operations": "POST"}, {"Operations": [None]}]
)
def test_a_request_without_operations_is_400_invalid_syntax(scim, body):
    assert_scim_error(scim.post(BULK, json=body), 400, "invalidSyntax")


@pytest.mark.parametrize(
    ("operation", "extra", "scim_type"),
    [
        ({"method": "GET", "path": "/Users"}, {}, "invalidValue"),
        ({"method": 1, "path": "/Users"}, {}, "invalidValue"),
        ({"path": "/Users/x"}, {}, "invalidValue"),
        ({"method": "DELETE"}, {}, "invalidValue"),
        ({"method": "POST", "path": "/Users", "data": {}}, {}, "invalidValue"),  # no bulkId
        ({"method": "POST", "path": "/Teams", "bulkId": "a", "data": {}}, {}, "invalidValue"),
        ({"method": "POST", "path": "/Users/x", "bulkId": "a", "data": {}}, {}, "invalidValue"),
        ({"method": "PATCH", "path": "/Users", "data": {}}, {}, "invalidValue"),
        ({"method": "PATCH", "path": "/Users/x/y", "data": {}}, {}, "invalidValue"),
        ({"method": "PATCH", "path": "/Users/x"}, {}, "invalidSyntax"),  # no data
        ({"method": "PUT", "path": "/Users/x", "data": []}, {}, "invalidSyntax"),
        ({"method": "DELETE", "path": "/Users/bulkId:nobody"}, {}, "invalidValue"),
        ({"method": "POST", "path": "/Users", "bulkId": "first", "data": {}}, {}, "invalidValue"),
        ({"method": "POST", "path": "/Users", "bulkId": "a" * 257, "data": {}}, {}, "invalidValue"),
        ({"method": "DELETE", "path": "/Users/x", "version": 3}, {}, "invalidValue"),
        ({"method": "DELETE", "path": "/Users/x"}, {"failOnErrors": 0}, "invalidValue"),
        ({"method": "DELETE", "path": "/Users/x"}, {"failOnErrors": "1"}, "invalidValue"),
        ({"method": "DELETE", "path": "/Users/x"}, {"failOnErrors": True}, "invalidValue"),
    ],
)
def test_a_malformed_operation_is_400_and_runs_nothing(scim, db, operation, extra, scim_type):
    """Refused as a whole before any operation runs (the first, a good one, does not)."""
    before = user_count(db)
    body = bulk(post_user("first", "never.made@example.com"), operation, **extra)

    assert_scim_error(scim.post(BULK, json=body), 400, scim_type)
    assert user_count(db) == before


def test_more_operations_than_advertised_is_413(scim, db):
    config = scim.get("/scim/v2/ServiceProviderConfig").json()["bulk"]
    assert config["supported"] is True and config["maxPayloadSize"] == 1024 * 1024
    too_many = [
        {"method": "DELETE", "path": f"/Users/u{i}"} for i in range(config["maxOperations"] + 1)
    ]

    assert_scim_error(scim.post(BULK, json=bulk(*too_many)), 413)


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_bulk_is_for_org_admins_only(client, db, org, role):
    user = factories.user(db, org.org, role=role)
    headers = factories.headers(factories.api_key(db, user))
    before = user_count(db)

    response = client.post(BULK, json=bulk(post_user("u1", "nope@example.com")), headers=headers)

    body = assert_scim_error(response, 403)
    assert policy.RULE_ORG_MEMBER in body["detail"]  # the deciding rule is named
    assert user_count(db) == before
