"""Effective settings: environment (when set) over the stored value over the default."""

from __future__ import annotations

import pytest

from rolecall.errors import Conflict
from rolecall.orgs.models import Organization
from rolecall.orgs.settings import effective_settings, store_settings
from rolecall.settings import Settings


def _org(stored: dict | None) -> Organization:
    return Organization(name="acme", name_key="acme", settings=stored)


def test_defaults_apply_when_nothing_is_stored_or_set():
    effective = effective_settings(_org(None), Settings())

    assert effective.disable_personal_entity is False
    assert effective.disable_admin_team_access is False
    assert effective.session_length_hours == 720
    assert effective.fixed_by_environment == ["local_restore"]


def test_a_stored_value_beats_the_default():
    effective = effective_settings(_org({"session_length_hours": 6}), Settings())

    assert effective.session_length_hours == 6


def test_the_environment_beats_a_stored_value():
    settings = Settings(session_length_hours=720)

    effective = effective_settings(_org({"session_length_hours": 6}), settings)

    assert effective.session_length_hours == 720
    assert "session_length_hours" in effective.fixed_by_environment


def test_unknown_stored_keys_are_not_shown():
    effective = effective_settings(_org({"theme": "dark"}), Settings())

    assert "theme" not in effective.values


def test_storing_returns_only_what_changed():
    org = _org({"disable_personal_entity": True})

    before, after = store_settings(
        org, Settings(), {"disable_personal_entity": True, "session_length_hours": 8}
    )

    assert (before, after) == ({"session_length_hours": 720}, {"session_length_hours": 8})
    assert org.settings == {"disable_personal_entity": True, "session_length_hours": 8}


def test_storing_a_setting_the_environment_fixes_is_a_conflict():
    org = _org({})

    with pytest.raises(Conflict) as raised:
        store_settings(
            org, Settings(disable_admin_team_access=False), {"disable_admin_team_access": True}
        )

    assert raised.value.code == "fixed_by_environment"
    assert org.settings == {}
