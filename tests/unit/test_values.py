import math

import pytest

from agl_core.errors import InvalidArgumentError
from agl_core.types.values import check_value, from_any_value, from_value, to_any_value, to_value


def test_json_values_round_trip_with_ints_kept_as_ints() -> None:
    original = {"q": "1+1", "n": 3, "x": 0.5, "ok": True, "none": None, "items": [1, "a", [2.25]], "big": 2**53}
    assert from_value(to_value(original)) == original
    assert isinstance(from_value(to_value({"n": 3}))["n"], int)


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"x": math.nan}, "$.x"),
        ({"y": [1, math.inf]}, "$.y[1]"),
        ({1: "a"}, "key 1"),
        ({"z": object()}, "$.z"),
        ({"big": 2**60}, "$.big"),
    ],
)
def test_values_json_cannot_hold_are_refused_with_their_place(bad: object, where: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        to_value(bad)
    assert where.split()[-1] in str(info.value)


def test_wire_values_are_checked() -> None:
    from google.protobuf import struct_pb2

    value = struct_pb2.Value()
    with pytest.raises(InvalidArgumentError, match="no kind"):
        check_value(value)
    value.struct_value.fields["a"].number_value = math.nan
    with pytest.raises(InvalidArgumentError, match=r"\$\.a"):
        check_value(value)


def test_attribute_values_round_trip() -> None:
    for value in ["s", True, 7, 2.5, b"\x00\x01", [1, 2, 3], {"k": [1, "v"]}]:
        assert from_any_value(to_any_value(value)) == value
