"""``strict_json.loads``: JSON whose strings no database can store, or whose nesting no stack
can hold, is a ``ValueError`` of its own; everything else parses as ``json.loads`` does."""

from __future__ import annotations

import pytest

from rolecall.strict_json import NotANumber, Refused, TooDeep, UnpairedSurrogate, loads


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


def test_nesting_past_the_stack_is_refused_and_deep_nesting_within_it_parses():
    with pytest.raises(TooDeep):
        loads(b"[" * 100_000)
    assert loads(b"[" * 200 + b"1" + b"]" * 200) is not None


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
