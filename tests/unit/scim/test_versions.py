"""``scim.versions``: what a version covers, and how preconditions are read."""

from __future__ import annotations

import pytest

from rolecall.scim.errors import ScimError
from rolecall.scim.versions import matches, stamp, tags, version_of


def resource(**changes: object) -> dict:
    base = {
        "id": "u1",
        "userName": "ada",
        "groups": [{"value": "t1", "display": "Team", "$ref": "https://a/scim/Groups/t1"}],
        "meta": {"created": "2026-01-01T00:00:00.000Z", "location": "https://a/scim/Users/u1"},
    }
    return base | changes


def test_urls_and_the_version_itself_are_not_part_of_the_version():
    moved = resource(
        groups=[{"value": "t1", "display": "Team", "$ref": "https://b/scim/v2/Groups/t1"}],
        meta={"created": "2026-01-01T00:00:00.000Z", "location": "https://b/scim/v2/Users/u1"},
    )

    assert version_of(moved) == version_of(resource())
    assert version_of(stamp(resource())) == version_of(resource())


@pytest.mark.parametrize(
    "changes",
    [
        {"userName": "Ada"},
        {"groups": [{"value": "t1", "display": "Team 2"}]},
        {"groups": []},
        {"meta": {"created": "2026-01-01T00:00:00.001Z"}},
        {"active": False},
    ],
)
def test_any_other_change_makes_another_version(changes):
    assert version_of(resource(**changes)) != version_of(resource())


def test_key_order_does_not_matter():
    shuffled = dict(reversed(list(resource().items())))

    assert version_of(shuffled) == version_of(resource())


def test_preconditions_list_weak_and_strong_tags_alike():
    assert tags('W/"a", "b" ,W/"c,d"') == frozenset({"a", "b", "c,d"})
    assert tags(" * ") is None
    assert tags(', "a",, "b",') == frozenset({"a", "b"})  # empty elements are skipped
    assert matches('"x", W/"a"', 'W/"a"') and matches("*", None)
    assert not matches('W/"a"', 'W/"b"') and not matches('W/"a"', None)


@pytest.mark.parametrize(
    "header", ["", " ", ",", "a", '"a', '"a" "b"', '"a", b', "*,*", 'W/ "a"', '"a", *']
)
def test_anything_else_is_invalid_value(header):
    with pytest.raises(ScimError) as refused:
        tags(header)

    assert refused.value.status == 400 and refused.value.scim_type == "invalidValue"
