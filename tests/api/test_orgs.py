"""The organization through /api/v1/org: reading, renaming, default team, settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.authz.permissions import Permission
from rolecall.errors import InvalidInput
from rolecall.orgs.bootstrap import initialize
from rolecall.orgs.models import Organization
from tests import factories

ORG = "/api/v1/org"


def audit_events(db, action: str) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_admin_reads_the_org_with_its_settings(client, org):
    response = client.get(ORG, headers=org.admin_headers)

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["default_team"]) == (org.org.id, org.org.name, None)
    assert body["settings"] == {
        "disable_personal_entity": False,
        "disable_admin_team_access": False,
        "session_length_hours": 720,
        "disable_sso_provisioning": False,
        "use_identifier_claims": False,
        "enable_sso_group_claims": False,
        "ldap_group_sync": False,
        "local_restore": False,
    }
    # LOCAL_RESTORE is an operator's recovery switch: only ever from the environment.
    assert body["fixed_by_environment"] == ["local_restore"]


def test_settings_set_by_the_environment_are_shown_as_fixed(make_client, org):
    client = make_client(disable_personal_entity=True, session_length_hours=8)

    body = client.get(ORG, headers=org.admin_headers).json()

    assert body["settings"]["disable_personal_entity"] is True
    assert body["settings"]["session_length_hours"] == 8
    assert body["fixed_by_environment"] == [
        "disable_personal_entity",
        "local_restore",
        "session_length_hours",
    ]


def test_admin_stores_settings_which_are_audited_and_shown(client, db, org):
    response = client.patch(
        ORG,
        headers=org.admin_headers,
        json={"settings": {"disable_admin_team_access": True, "session_length_hours": 12}},
    )

    assert response.status_code == 200
    settings = response.json()["settings"]
    assert settings["disable_admin_team_access"] is True
    assert settings["session_length_hours"] == 12
    db.expire_all()
    assert db.get(Organization, org.org.id).settings == {
        "disable_admin_team_access": True,
        "session_length_hours": 12,
    }
    (event,) = audit_events(db, "org.update")
    assert event.before == {
        "settings": {"disable_admin_team_access": False, "session_length_hours": 720}
    }
    assert event.after == {
        "settings": {"disable_admin_team_access": True, "session_length_hours": 12}
    }


def test_storing_an_unchanged_setting_records_nothing(client, db, org):
    body = {"settings": {"disable_personal_entity": False}}

    assert client.patch(ORG, headers=org.admin_headers, json=body).status_code == 200
    assert audit_events(db, "org.update") == []


def test_a_stored_setting_takes_effect_in_the_policy(client, db, org):
    team = factories.team(db, org.org)
    stored = {"settings": {"disable_admin_team_access": True}}
    assert client.patch(ORG, headers=org.admin_headers, json=stored).status_code == 200

    joined = client.post(
        f"/api/v1/teams/{team.name}/members",
        json={"user": org.admin.username},
        headers=org.admin_headers,
    )

    assert joined.status_code == 403
    assert joined.json()["error"]["rule"] == "org_admin.self_join_disabled"


def test_the_environment_wins_over_a_stored_setting_and_fixes_it(make_client, db, org):
    org.org.settings = {"disable_personal_entity": True}
    db.flush()
    client = make_client(disable_personal_entity=False)

    shown = client.get(ORG, headers=org.admin_headers).json()
    refused = client.patch(
        ORG, headers=org.admin_headers, json={"settings": {"disable_personal_entity": True}}
    )

    assert shown["settings"]["disable_personal_entity"] is False
    assert "disable_personal_entity" in shown["fixed_by_environment"]
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "fixed_by_environment"
    assert "GORILLA_DISABLE_PERSONAL_ENTITY" in error["message"]
    created = client.post(
        "/api/v1/projects",
        json={"entity": org.admin.username, "name": "mine"},
        headers=org.admin_headers,
    )
    assert created.status_code == 201


def test_a_member_cannot_store_settings(client, db, org):
    headers = factories.headers(factories.api_key(db, factories.user(db, org.org)))

    response = client.patch(
        ORG, headers=headers, json={"settings": {"disable_personal_entity": True}}
    )

    assert response.status_code == 403
    assert response.json()["error"]["rule"] == policy.RULE_ORG_MEMBER
    db.expire_all()
    assert db.get(Organization, org.org.id).settings in ({}, None)


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_every_active_member_reads_the_org(client, db, org, role):
    user = factories.user(db, org.org, role=role)

    response = client.get(ORG, headers=factories.headers(factories.api_key(db, user)))

    assert response.status_code == 200


def test_a_user_of_another_org_cannot_read_it(client, db, org):
    other = initialize(db, org_name="rival", admin_email="ceo@rival.example")

    response = client.get(ORG, headers=factories.headers(other.api_key))

    assert response.status_code == 403
    assert response.json()["error"]["rule"] == policy.RULE_OTHER_ORG


def test_a_key_scoped_to_run_create_cannot_read_the_org(client, db, org):
    key = factories.api_key(db, org.admin, scopes=(Permission.RUN_CREATE,))

    response = client.get(ORG, headers=factories.headers(key))

    assert response.status_code == 403
    assert response.json()["error"]["rule"] == policy.RULE_KEY_SCOPES


def test_anonymous_callers_are_401(client, org):
    assert client.get(ORG).status_code == 401


# --- renaming -----------------------------------------------------------------------------------


def test_admin_renames_the_org(client, db, org):
    old_name = org.org.name

    response = client.patch(ORG, headers=org.admin_headers, json={"name": "Acme-Labs"})

    assert response.status_code == 200 and response.json()["name"] == "Acme-Labs"
    db.expire_all()
    assert db.get(Organization, org.org.id).name_key == "acme-labs"
    [event] = audit_events(db, "org.update")
    assert (event.before, event.after) == ({"name": old_name}, {"name": "Acme-Labs"})


def test_renaming_to_another_orgs_name_is_a_conflict_case_insensitively(client, db, org):
    initialize(db, org_name="Globex", admin_email="hank@globex.example")

    response = client.patch(ORG, headers=org.admin_headers, json={"name": "GLOBEX"})

    assert response.status_code == 409
    assert audit_events(db, "org.update") == []


@pytest.mark.parametrize("name", ["wandb", "WandB"])
def test_no_organization_is_named_after_the_audience_every_org_accepts(client, db, org, name):
    # An org named wandb took every shared issuer's aud=wandb JWTs for its own (multi-org).
    renamed = client.patch(ORG, headers=org.admin_headers, json={"name": name})

    assert renamed.status_code == 422
    assert renamed.json()["error"]["field"] == "name"
    assert "reserved" in renamed.json()["error"]["message"]
    assert audit_events(db, "org.update") == []
    with pytest.raises(InvalidInput, match="reserved"):
        initialize(db, org_name=name, admin_email="hank@wandb.example")


def test_renaming_to_its_own_name_in_another_case_is_allowed(client, org):
    response = client.patch(ORG, headers=org.admin_headers, json={"name": org.org.name.upper()})

    assert response.status_code == 200 and response.json()["name"] == org.org.name.upper()


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "has space"},
        {"name": ".hidden"},
        {"name": "x" * 129},
        {"name": 42},
        {"settings": {"theme": "dark"}},
        {"settings": {"local_restore": True}},
        {"settings": {"session_length_hours": 0}},
        {"settings": {"session_length_hours": True}},  # was taken as 1
        {"settings": {"session_length_hours": 2.5}},
        {"settings": {"disable_personal_entity": "sometimes"}},
        {"settings": []},
        {"default_team": 7},
    ],
)
def test_bad_updates_are_422_and_change_nothing(client, db, org, body):
    name = org.org.name

    response = client.patch(ORG, headers=org.admin_headers, json=body)

    assert response.status_code == 422
    db.expire_all()
    assert db.get(Organization, org.org.id).name == name
    assert audit_events(db, "org.update") == []


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_org_admins_update_the_org(client, db, org, role):
    user = factories.user(db, org.org, role=role)

    response = client.patch(
        ORG, headers=factories.headers(factories.api_key(db, user)), json={"name": "mine"}
    )

    assert response.status_code == 403
    assert response.json()["error"]["rule"] == policy.RULE_ORG_MEMBER
    assert audit_events(db, "org.update") == []


# --- default team -------------------------------------------------------------------------------


def test_admin_sets_and_clears_the_default_team(client, db, org):
    team = factories.team(db, org.org, name="Everyone")

    response = client.patch(ORG, headers=org.admin_headers, json={"default_team": "everyone"})

    assert response.status_code == 200 and response.json()["default_team"] == "Everyone"
    db.expire_all()
    assert db.get(Organization, org.org.id).default_team_id == team.id
    cleared = client.patch(ORG, headers=org.admin_headers, json={"default_team": None})
    assert cleared.json()["default_team"] is None
    events = audit_events(db, "org.update")
    assert [e.after for e in events] == [{"default_team": "Everyone"}, {"default_team": None}]


def test_omitting_default_team_leaves_it(client, db, org):
    team = factories.team(db, org.org, name="core")
    org.org.default_team_id = team.id
    db.flush()

    response = client.patch(ORG, headers=org.admin_headers, json={"name": "renamed-org"})

    assert response.json()["default_team"] == "core"


def test_unknown_default_team_is_404(client, db, org):
    response = client.patch(ORG, headers=org.admin_headers, json={"default_team": "nope"})

    assert response.status_code == 404
    assert response.json()["error"]["field"] == "default_team"


def test_a_personal_entity_cannot_be_the_default_team(client, db, org):
    response = client.patch(
        ORG, headers=org.admin_headers, json={"default_team": org.admin.username}
    )

    assert response.status_code == 422
    db.expire_all()
    assert db.get(Organization, org.org.id).default_team_id is None


def test_a_team_of_another_org_cannot_be_the_default_team(client, db, org):
    other = initialize(db, org_name="faraway", admin_email="x@faraway.example")
    factories.team(db, other.org, name="their-team")

    response = client.patch(ORG, headers=org.admin_headers, json={"default_team": "their-team"})

    assert response.status_code == 404


def test_single_mode_is_the_default_and_every_request_is_about_the_one_org(
    client, db, org, settings
):
    assert settings.mode == "single"
    initialize(db, org_name="second-org", admin_email="boss@second.example")

    # Single mode: the organization is the first one; naming another changes nothing.
    response = client.get(ORG, headers={**org.admin_headers, "X-Rolecall-Org": "second-org"})

    assert response.status_code == 200 and response.json()["id"] == org.org.id
