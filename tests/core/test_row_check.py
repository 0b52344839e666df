"""The sink's row check against ClickHouse column types: what the store would refuse is named, what it takes passes."""

from __future__ import annotations

import datetime

import pytest

from vigil.store.row_check import RowCheck, check_for

UTC = datetime.timezone.utc


@pytest.mark.parametrize("type_name, value", [
    ("UInt16", 65535), ("UInt8", 0), ("Int8", -128), ("Int64", -(2**63)), ("Float32", 1), ("Float64", float("nan")),
    ("String", "x"), ("LowCardinality(String)", "car"), ("Nullable(Float64)", None), ("Bool", True),
    ("DateTime64(3, 'UTC')", datetime.datetime(2026, 1, 1, tzinfo=UTC)), ("Array(Float32)", [0.5, 1]),
    ("Array(String)", []), ("Map(LowCardinality(String), String)", {"a": "b"}), ("Map(String, UInt32)", {"a": 3}),
    ("Tuple(String, UInt32, Float64)", ("a", 1, 2.0)), ("Tuple(a String, b UInt8)", ["x", 3]),
    ("IPv4", "anything the server decides"),
])
def test_values_the_store_takes_pass(type_name, value):
    assert check_for(type_name)(value) is None


@pytest.mark.parametrize("type_name, value, words", [
    ("UInt16", -1, "out of UInt16's range 0..65535"), ("UInt8", 256, "out of UInt8's range"),
    ("Int32", 2**31, "out of Int32's range"), ("UInt32", 1.5, "not an integer"), ("Float32", "1", "not a number"),
    ("String", 3, "not text"), ("Nullable(UInt8)", -1, "out of UInt8's range"),
    ("DateTime64(3, 'UTC')", datetime.datetime(2400, 1, 1, tzinfo=UTC), "outside"),
    ("Array(UInt16)", [1, -2], "element 1: -2 is out of UInt16's range"), ("Array(Float32)", 3.0, "not an array"),
    ("Map(String, UInt32)", {"a": -1}, "entry 'a'"), ("Tuple(String, UInt32)", ("a",), "not a 2-tuple"),
    ("Bool", 2, "not a Bool"),
])
def test_values_the_store_refuses_are_named(type_name, value, words):
    assert words in check_for(type_name)(value)


def test_a_row_of_the_wrong_width_or_a_bad_value_says_which_column():
    check = RowCheck("frames", ["frame_id", "width"], {"frame_id": "String", "width": "UInt16", "extra": "String"})
    assert check.why(["f", 768]) is None
    assert check.why(["f"]) == "the row has 1 values for 2 columns of frames"
    assert check.why(["f", -1]) == "frames.width: -1 is out of UInt16's range 0..65535"


def test_a_table_behind_the_code_is_a_clear_error():
    with pytest.raises(ValueError, match=r"table frames has no columns \['width'\]"):
        RowCheck("frames", ["frame_id", "width"], {"frame_id": "String"})
