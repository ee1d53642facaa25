"""SCIM resource versions (RFC 7644 §3.14): ``meta.version`` and ``ETag`` on Users, Groups and
Roles; ``If-None-Match`` on reads (304), ``If-Match`` on PUT, PATCH and DELETE (412)."""

from __future__ import annotations

import re

import pytest

from tests.scim.conftest import GROUP_URN, ROLE_URN, assert_scim_error, new_user, patch

USERS, GROUPS, ROLES = "/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/Roles"
WEAK_TAG = re.compile(r'^W/"[0-9a-f]{32}"$')


def created(scim, path: str, body: dict) -> dict:
    response = scim.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def version(scim, path: str, **params: str) -> str:
    response = scim.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == response.json()["meta"]["version"]
    return response.headers["ETag"]


def role_body(name: str = "auditor", permissions: tuple[str, ...] = ()) -> dict:
    return {
        "schemas": [ROLE_URN],
        "name": name,
        "description": "reads",
        "inheritedFrom": "viewer",
        "permissions": [{"name": p} for p in permissions],
    }


@pytest.fixture
def user(scim) -> dict:
    return created(scim, USERS, new_user("ver@example.com", displayName="Ver One"))


@pytest.fixture
def group(scim, user) -> dict:
    body = {"schemas": [GROUP_URN], "displayName": "Versioned", "members": [{"value": user["id"]}]}
    return created(scim, GROUPS, body)


# --- versions ---------------------------------------------------------------------------------


def test_a_created_user_carries_its_version_in_meta_and_etag_and_reads_give_the_same(scim):
    response = scim.post(USERS, json=new_user("ada.v@example.com"))

    assert response.status_code == 201, response.text
    tag = response.json()["meta"]["version"]
    assert WEAK_TAG.match(tag) and response.headers["ETag"] == tag
    user_id = response.json()["id"]
    assert version(scim, f"{USERS}/{user_id}") == tag
    listed = scim.get(USERS, params={"filter": 'userName eq "ada.v@example.com"'}).json()
    assert listed["Resources"][0]["meta"]["version"] == tag


def test_the_version_is_the_same_under_either_prefix_and_in_any_projection(scim, user, group):
    """The URL prefix only changes URLs; ``attributes`` only changes what is shown."""
    for path, shown in ((f"{USERS}/{user['id']}", "id"), (f"{GROUPS}/{group['id']}", "members")):
        tag = version(scim, path)
        assert version(scim, path.replace("/scim/v2/", "/scim/")) == tag
        projected = scim.get(path, params={"attributes": shown})
        assert projected.headers["ETag"] == tag and "meta" not in projected.json()


def test_a_change_makes_a_new_version_and_a_change_to_nothing_keeps_it(scim, user):
    path = f"{USERS}/{user['id']}"
    before = version(scim, path)

    def rename(to: str):
        return scim.patch(path, json=patch({"op": "replace", "path": "displayName", "value": to}))

    same = rename("Ver One")
    assert same.status_code == 200 and same.headers["ETag"] == before
    changed = rename("V2")

    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] != before
    assert changed.headers["ETag"] == changed.json()["meta"]["version"] == version(scim, path)


def test_a_users_version_follows_its_groups_and_a_groups_follows_its_members(scim, user, group):
    """A user shows its groups (and their names), a group its members: joining, leaving and
    renaming change both versions."""
    user_path, group_path = f"{USERS}/{user['id']}", f"{GROUPS}/{group['id']}"
    other = created(scim, USERS, new_user("other.v@example.com"))
    user_tag, group_tag = version(scim, user_path), version(scim, group_path)

    add = patch({"op": "add", "path": "members", "value": [{"value": other["id"]}]})
    assert scim.patch(group_path, json=add).status_code == 204
    assert version(scim, group_path) != group_tag
    assert version(scim, user_path) == user_tag  # the user's own groups did not change

    rename = patch({"op": "replace", "path": "displayName", "value": "Versioned Again"})
    group_tag = version(scim, group_path)
    assert scim.patch(group_path, json=rename).status_code == 204
    assert version(scim, user_path) != user_tag
    assert version(scim, group_path) != group_tag


def test_a_group_shown_without_members_carries_no_version(scim, group):
    """Its version covers its members; leaving them out is what makes the read cheap."""
    response = scim.get(f"{GROUPS}/{group['id']}", params={"excludedAttributes": "members"})

    assert response.status_code == 200, response.text
    assert "ETag" not in response.headers and "version" not in response.json()["meta"]
    listed = scim.get(GROUPS, params={"excludedAttributes": "members"}).json()["Resources"]
    assert listed and all("version" not in g["meta"] for g in listed)
    whole = scim.get(GROUPS).json()["Resources"]
    assert all(WEAK_TAG.match(g["meta"]["version"]) for g in whole)


def test_roles_carry_versions_that_follow_their_permissions(scim):
    role = created(scim, ROLES, role_body())
    path = f"{ROLES}/{role['id']}"
    tag = version(scim, path)
    assert role["meta"]["version"] == tag

    add = patch({"op": "add", "path": "permissions", "value": [{"name": "project:update"}]})
    response = scim.patch(path, json=add)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] != tag == role["meta"]["version"]


# --- If-None-Match ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "group", "role"])
def test_if_none_match_with_the_current_version_answers_304_without_a_body(scim, user, group, kind):
    path = {
        "user": f"{USERS}/{user['id']}",
        "group": f"{GROUPS}/{group['id']}",
        "role": f"{ROLES}/{created(scim, ROLES, role_body())['id']}",
    }[kind]
    tag = version(scim, path)

    response = scim.get(path, headers={"If-None-Match": tag})

    assert response.status_code == 304
    assert response.content == b"" and response.headers["ETag"] == tag


@pytest.mark.parametrize(
    "header",
    [
        "{tag}",
        "{bare}",  # the same tag sent strong: compared weakly
        'W/"0123456789abcdef0123456789abcdef", {tag}',
        "*",
    ],
)
def test_if_none_match_matches_weakly_in_a_list_or_as_a_star(scim, user, header):
    path = f"{USERS}/{user['id']}"
    tag = version(scim, path)

    response = scim.get(path, headers={"If-None-Match": header.format(tag=tag, bare=tag[2:])})

    assert response.status_code == 304


def test_if_none_match_with_an_old_version_answers_the_resource(scim, user):
    path = f"{USERS}/{user['id']}"
    old = version(scim, path)
    scim.patch(path, json=patch({"op": "replace", "path": "displayName", "value": "Newer"}))

    response = scim.get(path, headers={"If-None-Match": old})

    assert response.status_code == 200
    assert response.json()["displayName"] == "Newer" and response.headers["ETag"] != old


def test_a_group_without_members_matches_only_a_star(scim, group):
    path = f"{GROUPS}/{group['id']}"
    tag = version(scim, path)
    params = {"excludedAttributes": "members"}

    assert scim.get(path, params=params, headers={"If-None-Match": tag}).status_code == 200
    assert scim.get(path, params=params, headers={"If-None-Match": "*"}).status_code == 304


# --- If-Match ---------------------------------------------------------------------------------


def stale(scim, path: str) -> str:
    """A version the resource had before a change made here."""
    tag = version(scim, path)
    body = patch({"op": "replace", "path": "externalId", "value": "moved-on"})
    assert scim.patch(path, json=body).status_code in (200, 204)  # a group's PATCH is 204
    assert version(scim, path) != tag
    return tag


def test_a_patch_with_a_stale_version_is_412_and_changes_nothing(scim, user):
    path = f"{USERS}/{user['id']}"
    old = stale(scim, path)
    now = version(scim, path)
    body = patch({"op": "replace", "path": "displayName", "value": "Lost Update"})

    refused = scim.patch(path, json=body, headers={"If-Match": old})

    assert_scim_error(refused, 412)
    assert scim.get(path).json()["displayName"] == "Ver One"
    assert version(scim, path) == now


def test_a_put_or_patch_with_the_current_version_or_a_star_goes_through(scim, user):
    path = f"{USERS}/{user['id']}"
    body = patch({"op": "replace", "path": "displayName", "value": "Matched"})

    response = scim.patch(path, json=body, headers={"If-Match": version(scim, path)})
    assert response.status_code == 200, response.text
    current = scim.get(path).json()
    current["displayName"] = "Put Matched"
    put = scim.put(path, json=current, headers={"If-Match": response.headers["ETag"]})
    assert put.status_code == 200, put.text
    star = scim.patch(
        path,
        json=patch({"op": "replace", "path": "displayName", "value": "Star"}),
        headers={"If-Match": "*"},
    )

    assert star.status_code == 200 and scim.get(path).json()["displayName"] == "Star"


def test_a_put_with_a_stale_version_is_412_and_changes_nothing(scim, user):
    path = f"{USERS}/{user['id']}"
    old = stale(scim, path)
    body = scim.get(path).json() | {"displayName": "Overwritten"}

    assert_scim_error(scim.put(path, json=body, headers={"If-Match": old}), 412)
    assert scim.get(path).json()["displayName"] == "Ver One"


def test_a_delete_with_a_stale_version_is_412_and_the_user_stays(scim, user):
    path = f"{USERS}/{user['id']}"
    old = stale(scim, path)

    assert_scim_error(scim.delete(path, headers={"If-Match": old}), 412)
    assert scim.get(path).status_code == 200
    assert scim.delete(path, headers={"If-Match": version(scim, path)}).status_code == 204
    assert scim.get(path).status_code == 404


def test_a_group_patch_with_a_stale_version_adds_no_member(scim, group):
    path = f"{GROUPS}/{group['id']}"
    old = stale(scim, path)
    newcomer = created(scim, USERS, new_user("late.v@example.com"))
    add = patch({"op": "add", "path": "members", "value": [{"value": newcomer["id"]}]})

    assert_scim_error(scim.patch(path, json=add, headers={"If-Match": old}), 412)
    members = [m["value"] for m in scim.get(path).json()["members"]]
    assert newcomer["id"] not in members
    put = scim.get(path).json() | {"members": []}
    assert_scim_error(scim.put(path, json=put, headers={"If-Match": old}), 412)
    assert len(scim.get(path).json()["members"]) == 1


def test_role_writes_with_a_stale_version_are_412_and_change_nothing(scim):
    role = created(scim, ROLES, role_body("checker", ("project:update",)))
    path = f"{ROLES}/{role['id']}"
    old = version(scim, path)
    renamed = scim.put(path, json=role_body("checker-2"))
    assert renamed.status_code == 200, renamed.text
    remove = patch({"op": "remove", "path": "permissions", "value": [{"name": "project:update"}]})

    assert_scim_error(scim.patch(path, json=remove, headers={"If-Match": old}), 412)
    assert_scim_error(scim.put(path, json=role_body("checker-3"), headers={"If-Match": old}), 412)
    assert_scim_error(scim.delete(path, headers={"If-Match": old}), 412)

    shown = scim.get(path).json()
    assert shown["name"] == "checker-2"
    assert {"name": "project:update", "isInherited": False} in shown["permissions"]


def test_a_precondition_on_a_missing_resource_is_404(scim):
    body = patch({"op": "replace", "path": "displayName", "value": "x"})

    response = scim.patch(f"{USERS}/no-such-user", json=body, headers={"If-Match": "*"})

    assert_scim_error(response, 404)


@pytest.mark.parametrize(
    "header",
    ["abc", 'W/"unterminated', '"a" "b"', '"a",, b', "W/", '"' + "a" * 5000 + '"', '"a", *'],
)
def test_a_malformed_precondition_is_400_invalid_value_and_changes_nothing(scim, user, header):
    path = f"{USERS}/{user['id']}"
    before = version(scim, path)
    body = patch({"op": "replace", "path": "displayName", "value": "Malformed"})
    refused = scim.patch(path, json=body, headers={"If-Match": header})

    assert_scim_error(refused, 400, "invalidValue")
    assert_scim_error(scim.get(path, headers={"If-None-Match": header}), 400, "invalidValue")
    assert version(scim, path) == before
