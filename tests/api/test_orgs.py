"""The organization through /api/v1/org: reading, renaming, default team, settings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rolecall.audit.models import AuditEvent
from rolecall.authz import policy
from rolecall.authz.permissions import Permission
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
        "local_restore": False,
    }
    assert body["fixed_by_environment"] == []


def test_settings_set_by_the_environment_are_shown_as_fixed(make_client, org):
    client = make_client(disable_personal_entity=True, session_length_hours=8)

    body = client.get(ORG, headers=org.admin_headers).json()

    assert body["settings"]["disable_personal_entity"] is True
    assert body["settings"]["session_length_hours"] == 8
    assert body["fixed_by_environment"] == ["disable_personal_entity", "session_length_hours"]


def test_stored_settings_are_shown_under_the_environments(client, db, org):
    org.org.settings = {"theme": "dark", "disable_personal_entity": True}
    db.flush()

    settings = client.get(ORG, headers=org.admin_headers).json()["settings"]

    assert settings["theme"] == "dark"
    # The environment (here: the default) wins over a stored value.
    assert settings["disable_personal_entity"] is False


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
