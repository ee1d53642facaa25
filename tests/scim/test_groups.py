"""SCIM /Groups = teams: create with members, get, list, PATCH members and name, PUT, DELETE."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.orgs.models import OrgMembership
from rolecall.teams.models import Team, TeamMembership
from rolecall.users.models import User
from tests import factories
from tests.scim.conftest import GROUP_URN, assert_scim_error, new_user, patch
from tests.statements import statements_sent

GROUPS = "/scim/v2/Groups"


def user_id(scim, name: str) -> str:
    response = scim.post("/scim/v2/Users", json=new_user(f"{name}@example.com"))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def members_of(scim, group_id: str) -> set[str]:
    return {m["value"] for m in scim.get(f"{GROUPS}/{group_id}").json()["members"]}


def create_group(scim, display_name: str = "Data Science", members=()) -> dict:
    response = scim.post(
        GROUPS,
        json={
            "schemas": [GROUP_URN],
            "displayName": display_name,
            "members": [{"value": m} for m in members],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_create_group_makes_a_team_with_its_members(scim, db):
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")

    response = scim.post(
        GROUPS,
        json={
            "schemas": [GROUP_URN],
            "displayName": "Data Science",
            "externalId": "okta-g1",
            "members": [{"value": alice}, {"value": bob, "display": "bob"}],
        },
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["displayName"] == "Data Science" and body["externalId"] == "okta-g1"
    assert {m["value"] for m in body["members"]} == {alice, bob}
    assert response.headers["Location"] == body["meta"]["location"]
    team = db.get(Team, body["id"])
    assert team.kind == "team" and team.name == "Data-Science"
    roles = set(db.scalars(select(TeamMembership.role).where(TeamMembership.team_id == team.id)))
    assert roles == {"member"}
    db.expire_all()
    actions = [
        e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.object_id == team.id))
    ]
    assert "team.create" in actions and actions.count("team.member.add") == 2
    surfaces = set(db.scalars(select(AuditEvent.surface).where(AuditEvent.object_id == team.id)))
    assert surfaces == {"scim"}


def test_a_valid_display_name_is_the_team_name(scim, db):
    body = create_group(scim, "ml-research")
    assert db.get(Team, body["id"]).name == "ml-research"


def test_duplicate_display_name_is_409_uniqueness(scim):
    create_group(scim, "Data Science")
    assert_scim_error(scim.post(GROUPS, json={"displayName": "data science"}), 409, "uniqueness")


def test_a_display_name_whose_team_name_is_taken_gets_a_free_team_name(scim, db, org):
    """Team names and usernames are one namespace across organizations: a group whose name is
    some user's, another organization's team's, or that of a group whose display name differs
    (``Data Science`` and ``Data/Science`` both suggest ``Data-Science``) gets the next free
    team name and keeps its display name, which is unique in its organization only. It was a
    409 ``uniqueness`` that a lookup by ``displayName`` could not explain, and identity
    providers that link a group after a 409 by that lookup were stuck."""
    factories.user(db, org.org, username="research")
    factories.team(db, factories.bootstrap(db).org, name="Engineering")
    create_group(scim, "Data Science")

    made = {name: create_group(scim, name) for name in ("research", "Engineering", "Data/Science")}

    names = {display: db.get(Team, group["id"]).name for display, group in made.items()}
    assert names == {
        "research": "research-2",
        "Engineering": "Engineering-2",
        "Data/Science": "Data-Science-2",
    }
    for display, group in made.items():
        found = scim.get(GROUPS, params={"filter": f'displayName eq "{display}"'}).json()
        assert [g["id"] for g in found["Resources"]] == [group["id"]]
        assert found["Resources"][0]["displayName"] == display


def test_a_rename_to_a_display_name_whose_team_name_is_taken_gets_a_free_one(scim, db, org):
    factories.user(db, org.org, username="ops")
    group = create_group(scim, "g1")

    response = scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch({"op": "replace", "path": "displayName", "value": "ops"}),
        params={"excludedAttributes": "members"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "ops"
    assert db.get(Team, group["id"]).name == "ops-2"


@pytest.mark.parametrize(
    "body",
    [
        {"schemas": [GROUP_URN]},
        {"displayName": ""},
        {"displayName": 5},
        {"displayName": "g", "members": [{"value": "no-such-user"}]},
        {"displayName": "g", "members": ["x"]},
    ],
)
def test_bad_group_bodies_are_invalid_value_and_create_nothing(scim, db, org, body):
    before = db.scalar(select(Team.id).where(Team.kind == "team", Team.org_id == org.org.id))

    assert_scim_error(scim.post(GROUPS, json=body), 400, "invalidValue")
    db.expire_all()
    after = db.scalar(select(Team.id).where(Team.kind == "team", Team.org_id == org.org.id))
    assert after == before


def test_list_and_filter_groups(scim, db, org):
    alice = user_id(scim, "alice")
    one = create_group(scim, "Data Science", [alice])
    create_group(scim, "Platform")
    factories.team(db, org.org, name="plain-team")

    by_name = scim.get(GROUPS, params={"filter": 'displayName eq "data science"'}).json()
    by_member = scim.get(
        GROUPS, params={"filter": f'members[value eq "{alice}"]', "excludedAttributes": "members"}
    ).json()
    by_both = scim.get(
        GROUPS, params={"filter": f'id eq "{one["id"]}" and members[value eq "{alice}"]'}
    ).json()
    plain = scim.get(GROUPS, params={"filter": 'displayName eq "plain-team"'}).json()
    none = scim.get(GROUPS, params={"filter": 'displayName eq "nothing"'}).json()
    everything = scim.get(GROUPS).json()

    assert [g["id"] for g in by_name["Resources"]] == [one["id"]]
    assert [g["id"] for g in by_member["Resources"]] == [one["id"]]
    assert "members" not in by_member["Resources"][0]
    assert by_both["totalResults"] == 1
    assert plain["totalResults"] == 1
    assert none == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
    assert everything["totalResults"] == 3
    # Personal entities are no groups.
    assert all(g["displayName"] != org.admin.username for g in everything["Resources"])


def test_get_unknown_group_is_404(scim):
    assert_scim_error(scim.get(f"{GROUPS}/nope"), 404)


def test_patch_add_members_and_readding_is_a_noop(scim, db):
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])

    response = scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch(
            {"op": "Add", "path": "members", "value": [{"value": alice}, {"value": bob}]},
            {"op": "add", "path": "members", "value": [{"value": bob}]},
        ),
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert members_of(scim, group["id"]) == {alice, bob}
    rows = db.scalars(select(TeamMembership).where(TeamMembership.team_id == group["id"])).all()
    assert len(rows) == 2


def test_patch_remove_member_by_value_filter(scim):
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice, bob])

    response = scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch({"op": "remove", "path": f'members[value eq "{alice}"]'}),
    )

    assert response.status_code == 204, response.text
    assert members_of(scim, group["id"]) == {bob}


def test_patch_remove_members_by_value_list_removes_only_those(scim):
    alice, bob, carol = user_id(scim, "alice"), user_id(scim, "bob"), user_id(scim, "carol")
    group = create_group(scim, "g1", [alice, bob, carol])

    response = scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch(
            {
                "op": "Remove",
                "path": "members",
                "value": [{"value": alice}, {"value": carol}, {"value": "not-a-member"}],
            }
        ),
    )

    assert response.status_code == 204, response.text
    assert members_of(scim, group["id"]) == {bob}


def test_patch_remove_all_members_without_value(scim):
    alice = user_id(scim, "alice")
    group = create_group(scim, "g1", [alice])

    scim.patch(f"{GROUPS}/{group['id']}", json=patch({"op": "remove", "path": "members"}))

    assert members_of(scim, group["id"]) == set()


def test_member_operations_apply_in_order_although_runs_of_them_are_batched(scim, db):
    alice, bob, carol, dave = (user_id(scim, n) for n in ("alice", "bob", "carol", "dave"))
    group = create_group(scim, "g1", [alice, bob])
    names = {alice: "alice", bob: "bob", carol: "carol", dave: "dave"}

    response = scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch(
            {"op": "remove", "path": f'members[value eq "{alice}"]'},
            {"op": "add", "path": "members", "value": [{"value": alice}]},
            {"op": "add", "path": "members", "value": [{"value": carol}]},
            {"op": "remove", "path": "members", "value": [{"value": carol}]},
            {"op": "remove", "path": f'members[value eq "{bob}"]'},
            {"op": "add", "path": "members", "value": [{"value": dave}]},
            {"op": "replace", "path": "displayName", "value": "g2"},
            {"op": "remove", "path": f'members[value eq "{dave}"]'},
        ),
    )

    assert response.status_code == 204, response.text
    shown = scim.get(f"{GROUPS}/{group['id']}").json()
    assert shown["displayName"] == "g2"
    assert {m["value"] for m in shown["members"]} == {alice}
    recorded = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_id == group["id"], AuditEvent.action.like("team.member.%"))
        .order_by(AuditEvent.seq)
    ).all()
    steps = [(e.action.rsplit(".", 1)[1], (e.after or e.before)["user"]) for e in recorded]
    username = {name: db.get(User, user).username for user, name in names.items()}
    expected = [
        ("add", "alice"), ("add", "bob"),  # the create
        ("remove", "alice"), ("add", "alice"), ("add", "carol"), ("remove", "carol"),
        ("remove", "bob"), ("add", "dave"), ("remove", "dave"),
    ]  # fmt: skip
    assert steps == [(action, username[name]) for action, name in expected]


def test_many_member_operations_cost_as_many_statements_as_a_few(scim, db):
    ids = [user_id(scim, f"member{i}") for i in range(24)]

    def patched(operations: list[dict]) -> int:
        group = create_group(scim, f"g{len(operations)}-{operations[0]['op']}", ids)
        with statements_sent(db) as sent:
            response = scim.patch(f"{GROUPS}/{group['id']}", json=patch(*operations))
        assert response.status_code == 204, response.text
        return len(sent)

    removals = [{"op": "remove", "path": f'members[value eq "{i}"]'} for i in ids]
    assert patched(removals) == patched(removals[:2])
    re_adds = [{"op": "add", "path": "members", "value": [{"value": i}]} for i in ids]
    assert patched(removals + re_adds) == patched(removals[:2] + re_adds[:2])


def test_a_patch_answers_204_unless_attributes_are_named(scim):
    """RFC 7644 §3.5.2: a PATCH answers 204, or 200 with the group when ``attributes`` or
    ``excludedAttributes`` asks for it (then members are shown only if asked for)."""
    alice, bob, carol = user_id(scim, "alice"), user_id(scim, "bob"), user_id(scim, "carol")
    group = create_group(scim, "g1", [alice])
    path = f"{GROUPS}/{group['id']}"

    def add(member: str, **params: str):  # type: ignore[no-untyped-def]
        body = patch({"op": "add", "path": "members", "value": [{"value": member}]})
        return scim.patch(path, params=params, json=body)

    silent = add(bob)
    without = add(carol, excludedAttributes="members")
    named = add(alice, attributes="members")

    assert silent.status_code == 204 and silent.content == b"" and "ETag" not in silent.headers
    assert without.status_code == 200, without.text
    assert "members" not in without.json() and without.json()["displayName"] == "g1"
    assert "ETag" not in without.headers  # a group's version covers its members
    assert named.status_code == 200, named.text
    assert {m["value"] for m in named.json()["members"]} == {alice, bob, carol}
    assert named.headers["ETag"] == scim.get(path).headers["ETag"]
    assert members_of(scim, group["id"]) == {alice, bob, carol}


def test_put_and_create_leave_members_out_when_asked(scim):
    alice = user_id(scim, "alice")
    params = {"excludedAttributes": "members"}
    body = {"schemas": [GROUP_URN], "displayName": "quiet", "members": [{"value": alice}]}

    created = scim.post(GROUPS, params=params, json=body)
    replaced = scim.put(f"{GROUPS}/{created.json()['id']}", params=params, json=body)

    assert created.status_code == 201, created.text
    assert replaced.status_code == 200, replaced.text
    for answer in (created.json(), replaced.json()):
        assert "members" not in answer and answer["displayName"] == "quiet"
    assert created.headers["Location"] == created.json()["meta"]["location"]
    assert members_of(scim, created.json()["id"]) == {alice}


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"attributes": ""}, {"schemas", "id", "displayName", "members", "meta"}),
        ({"excludedAttributes": ""}, {"schemas", "id", "displayName", "members", "meta"}),
        ({"attributes": "nosuch"}, {"schemas", "id"}),
        ({"excludedAttributes": "nosuch"}, {"schemas", "id", "displayName", "members", "meta"}),
        ({"attributes": "displayName,,"}, {"schemas", "id", "displayName"}),
        ({"attributes": f"{GROUP_URN}:MEMBERS"}, {"schemas", "id", "members"}),
    ],
)
def test_odd_attribute_names_on_a_patch_answer_200_and_apply_it(scim, params, shown):
    """Empty, unknown and URN-qualified names are no error (as on a GET): the PATCH applies
    and its answer shows what the names select."""
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])
    body = patch({"op": "add", "path": "members", "value": [{"value": bob}]})

    response = scim.patch(f"{GROUPS}/{group['id']}", params=params, json=body)

    assert response.status_code == 200, response.text
    assert set(response.json()) == shown
    if "members" in shown:
        assert {m["value"] for m in response.json()["members"]} == {alice, bob}
    assert members_of(scim, group["id"]) == {alice, bob}


def test_members_named_by_their_urn_are_loaded_on_reads(scim):
    alice = user_id(scim, "alice")
    group = create_group(scim, "g1", [alice])
    params = {"attributes": f"{GROUP_URN}:members.value"}

    one = scim.get(f"{GROUPS}/{group['id']}", params=params)
    listed = scim.get(GROUPS, params={**params, "filter": 'displayName eq "g1"'})

    assert one.json()["members"] == [{"value": alice}]
    assert listed.json()["Resources"][0]["members"] == [{"value": alice}]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("param", ["attributes", "excludedAttributes"])
def test_a_malformed_attribute_path_on_a_write_changes_nothing(scim, db, method, param):
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])
    teams_before = set(db.scalars(select(Team.id)))
    full = {"schemas": [GROUP_URN], "displayName": "g2", "members": [{"value": bob}]}
    body = {
        "POST": full,
        "PUT": full,
        "PATCH": patch({"op": "add", "path": "members", "value": [{"value": bob}]}),
    }[method]
    url = GROUPS if method == "POST" else f"{GROUPS}/{group['id']}"

    response = scim.request(method, url, params={param: "members!"}, json=body)

    assert_scim_error(response, 400, "invalidFilter")
    db.expire_all()
    assert set(db.scalars(select(Team.id))) == teams_before
    after = scim.get(f"{GROUPS}/{group['id']}").json()
    assert after["displayName"] == "g1"
    assert {m["value"] for m in after["members"]} == {alice}


def test_patch_replace_members_sets_exactly_those(scim):
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])

    scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch({"op": "replace", "path": "members", "value": [{"value": bob}]}),
    )

    assert members_of(scim, group["id"]) == {bob}


def test_patch_rename_by_path_and_pathless(scim, db):
    group = create_group(scim, "g1")

    by_path = scim.patch(
        f"{GROUPS}/{group['id']}",
        params={"attributes": "displayName"},
        json=patch({"op": "replace", "path": "displayName", "value": "Machine Learning"}),
    )
    pathless = scim.patch(
        f"{GROUPS}/{group['id']}",
        params={"attributes": "displayName"},
        json=patch({"op": "Replace", "value": {"id": group["id"], "displayName": "ml-team"}}),
    )

    assert by_path.json()["displayName"] == "Machine Learning"
    assert pathless.json()["displayName"] == "ml-team"
    db.expire_all()
    assert db.get(Team, group["id"]).name == "ml-team"


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "remove"}, "noTarget"),
        ({"op": "remove", "path": "displayName"}, "mutability"),
        ({"op": "replace", "path": "nosuch", "value": "x"}, "invalidPath"),
        ({"op": "remove", "path": 'members[display eq "x"]'}, "invalidPath"),
        ({"op": "add", "path": "members", "value": [{"value": "ghost"}]}, "invalidValue"),
        ({"op": "add", "path": "members[", "value": []}, "invalidPath"),
        ({"op": "bogus", "path": "members", "value": []}, "invalidSyntax"),
        ({"op": "replace", "path": "members"}, "invalidSyntax"),
        (
            {"op": "replace", "path": "meta.lastModified", "value": "2000-01-01T00:00:00Z"},
            "mutability",
        ),
    ],
)
def test_bad_group_patches(scim, operation, scim_type):
    alice = user_id(scim, "alice")
    group = create_group(scim, "g1", [alice])

    response = scim.patch(
        f"{GROUPS}/{group['id']}",
        json=patch({"op": "remove", "path": "members", "value": [{"value": alice}]}, operation),
    )

    assert_scim_error(response, 400, scim_type)
    assert members_of(scim, group["id"]) == {alice}


def test_put_replaces_name_and_members(scim):
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])
    body = dict(group, displayName="g2", members=[{"value": bob}], externalId="e1")

    response = scim.put(f"{GROUPS}/{group['id']}", json=body)

    assert response.status_code == 200, response.text
    assert response.json()["displayName"] == "g2" and response.json()["externalId"] == "e1"
    assert members_of(scim, group["id"]) == {bob}


def test_service_accounts_stay_when_members_are_replaced(scim, db, org):
    group = create_group(scim, "g1")
    team = db.get(Team, group["id"])
    account = factories.service_account(db, org.org, team)

    scim.put(f"{GROUPS}/{group['id']}", json={"displayName": "g1", "members": []})

    db.expire_all()
    rows = db.scalars(select(TeamMembership).where(TeamMembership.team_id == team.id)).all()
    assert [r.service_account_id for r in rows] == [account.id]


def test_delete_group_is_refused_and_the_team_stays(scim, db):
    group = create_group(scim, "g1")

    body = assert_scim_error(scim.delete(f"{GROUPS}/{group['id']}"), 400, "mutability")

    assert "delete the team from the app" in body["detail"]
    db.expire_all()
    assert db.get(Team, group["id"]) is not None


def test_user_shows_its_groups(scim):
    alice = user_id(scim, "alice")
    group = create_group(scim, "Data Science", [alice])

    user = scim.get(f"/scim/v2/Users/{alice}").json()

    assert user["groups"] == [
        {
            "value": group["id"],
            "display": "Data Science",
            "$ref": f"http://testserver:80/scim/v2/Groups/{group['id']}",
            "type": "direct",
        }
    ]
    assert user["teamRoles"] == [{"teamName": "Data-Science", "roleName": "member"}]


def test_a_deactivated_user_can_be_a_member(scim):
    alice = user_id(scim, "alice")
    scim.patch(f"/scim/v2/Users/{alice}", json=patch({"op": "replace", "value": {"active": False}}))

    group = create_group(scim, "g1", [alice])

    assert {m["value"] for m in group["members"]} == {alice}


def test_member_changes_move_the_groups_and_the_users_last_modified(scim, db, org):
    """RFC 7643 §3.1: lastModified is when the resource's details last changed, and equals
    created until then. A group's members are part of it, a user's groups and team roles part
    of the user: a provider's delta sync (``meta.lastModified gt``) finds both."""
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])
    assert group["meta"]["lastModified"] == group["meta"]["created"]

    def stamps():  # type: ignore[no-untyped-def]
        db.expire_all()
        memberships = {
            m.user_id: m.updated_at
            for m in db.scalars(select(OrgMembership).where(OrgMembership.org_id == org.org.id))
        }
        return db.get(Team, group["id"]).updated_at, memberships[alice], memberships[bob]

    url = f"{GROUPS}/{group['id']}"
    team_0, alice_0, bob_0 = stamps()
    addition = {"op": "add", "path": "members", "value": [{"value": bob}]}
    assert scim.patch(url, json=patch(addition)).status_code == 204
    team_1, alice_1, bob_1 = stamps()
    assert team_1 > team_0 and bob_1 > bob_0 and alice_1 == alice_0

    removal = {"op": "remove", "path": f'members[value eq "{alice}"]'}
    assert scim.patch(url, json=patch(removal)).status_code == 204
    team_2, alice_2, bob_2 = stamps()
    assert team_2 > team_1 and alice_2 > alice_1 and bob_2 == bob_1

    roles = {
        "op": "replace",
        "path": "teamRoles",
        "value": [{"teamName": "g1", "roleName": "admin"}],
    }
    assert scim.patch(f"/scim/v2/Users/{bob}", json=patch(roles)).status_code == 200
    team_3, _, bob_3 = stamps()
    assert bob_3 > bob_2 and team_3 == team_2  # a group shows no member's role

    since = scim.get(
        "/scim/v2/Users", params={"filter": f'meta.lastModified gt "{group["meta"]["created"]}"'}
    )
    assert {r["id"] for r in since.json()["Resources"]} == {alice, bob}
    shown = scim.get(url).json()["meta"]
    assert shown["lastModified"] > shown["created"]


def test_writes_that_change_no_member_keep_the_groups_version_and_time(scim):
    # "An update that changes nothing keeps the version": an If-Match tag stays good, and a
    # delta sync does not report the group.
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice, bob])
    url = f"{GROUPS}/{group['id']}"
    same = [{"value": alice}, {"value": bob}]
    writes = [
        lambda: scim.patch(url, json=patch({"op": "add", "path": "members", "value": same})),
        lambda: scim.patch(url, json=patch({"op": "replace", "path": "members", "value": same})),
        lambda: scim.put(url, json=scim.get(url).json()),
    ]

    for write in writes:
        assert write().status_code in (200, 204)
        shown = scim.get(url).json()
        assert shown["meta"] == group["meta"]
        assert shown["members"] == group["members"]


def test_a_member_s_deletion_moves_the_group_s_last_modified(scim):
    """The user leaves the organization, and with it the group: the group's members changed,
    so its lastModified moves and a delta sync finds it (``orgs.service.remove_membership``)."""
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice, bob])
    assert scim.delete(f"/scim/v2/Users/{alice}").status_code == 204

    shown = scim.get(f"{GROUPS}/{group['id']}").json()
    assert [m["value"] for m in shown["members"]] == [bob]
    assert shown["meta"]["lastModified"] > group["meta"]["lastModified"]
    assert shown["meta"]["version"] != group["meta"]["version"]
    since = scim.get(
        GROUPS, params={"filter": f'meta.lastModified gt "{group["meta"]["created"]}"'}
    )
    assert [r["id"] for r in since.json()["Resources"]] == [group["id"]]


@pytest.mark.parametrize("rename_first", [True, False])
def test_a_patchs_answer_shows_the_version_a_later_get_shows(scim, rename_first):
    """The group's lastModified is stamped as the transaction commits (``teams.writes``): the
    PATCH's own answer, rename or not, carries the version stored."""
    alice, bob = user_id(scim, "alice"), user_id(scim, "bob")
    group = create_group(scim, "g1", [alice])
    url = f"{GROUPS}/{group['id']}"
    rename = {"op": "replace", "path": "displayName", "value": "g2"}
    addition = {"op": "add", "path": "members", "value": [{"value": bob}]}
    operations = [rename, addition] if rename_first else [addition, rename]

    answer = scim.patch(url, json=patch(*operations), params={"attributes": "members"})

    assert answer.status_code == 200, answer.text
    later = scim.get(url)
    assert answer.headers["ETag"] == later.headers["ETag"]
    assert later.json()["meta"]["lastModified"] > group["meta"]["lastModified"]
