"""``strict_json.loads``: JSON whose strings no database can store, or whose nesting no stack
can hold, is a ``ValueError`` of its own; everything else parses as ``json.loads`` does."""

from __future__ import annotations

import pytest

from rolecall.strict_json import (
    MAX_DEPTH,
    NotANumber,
    Refused,
    TooDeep,
    UnpairedSurrogate,
    loads,
)


@pytest.mark.parametrize(
    "raw",
    [
        b'"\\ud800"',
        b'{"userName": "ada\\udfffx"}',
        b'{"a\\udc00": 1}',
        b'[1, {"deep": [{"x": ["\\uDBFF"]}]}]',
        b'"\\ude00\\ud83d"',  # a pair in the wrong order is two lone halves
    ],
)
def test_a_lone_surrogate_anywhere_is_refused(raw):
    with pytest.raises(UnpairedSurrogate):
        loads(raw)


def test_a_surrogate_pair_is_one_character_and_welcome():
    assert loads(b'{"name": "\\ud83d\\ude00 Ada"}') == {"name": "\U0001f600 Ada"}


def test_nesting_past_the_stack_is_refused():
    with pytest.raises(TooDeep):
        loads(b"[" * 100_000)


@pytest.mark.parametrize(
    ("opening", "closing"), [(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")]
)
def test_nesting_deeper_than_the_limit_is_refused_and_up_to_it_parses(opening, closing):
    """Parsed, but deeper than the readers after ``loads`` may walk by recursion."""
    levels = MAX_DEPTH // (2 if opening == b'[{"a":' else 1)
    assert loads(opening * levels + b"1" + closing * levels) is not None
    with pytest.raises(TooDeep, match=f"more than {MAX_DEPTH} deep"):
        loads(opening * (levels + 1) + b"1" + closing * (levels + 1))


def test_many_brackets_side_by_side_are_not_deep():
    wide = b"[" + b",".join([b'{"value": [1]}'] * 5_000) + b"]"
    assert len(loads(wide)) == 5_000


@pytest.mark.parametrize("raw", [b"{", b"\xff", b""])
def test_other_bad_json_is_a_value_error_as_before(raw):
    with pytest.raises(ValueError) as caught:
        loads(raw)
    assert not isinstance(caught.value, (TooDeep, UnpairedSurrogate))


@pytest.mark.parametrize("raw", [b"NaN", b'{"exp": Infinity}', b"[-Infinity]", b"1e400", b"-1e999"])
def test_numbers_json_does_not_have_are_refused(raw):
    with pytest.raises(NotANumber):
        loads(raw)


def test_every_refusal_is_one_kind_of_value_error():
    assert issubclass(UnpairedSurrogate, Refused) and issubclass(TooDeep, Refused)
    assert issubclass(NotANumber, Refused) and issubclass(Refused, ValueError)
    assert loads(b"[1.5, 1e300, -0.0]") == [1.5, 1e300, -0.0]
