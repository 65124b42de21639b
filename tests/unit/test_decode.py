"""Batch decoding of raw Kafka records: every layout, every bad-record reason, never a crash.

JSON decoding is checked record by record against the standard library's `json` in
`test_json_decode.py`.
"""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workload.data.decode import (  # noqa: E402
    BAD_REASONS,
    FORMAT_REASONS,
    Decoded,
    make_decoder,
)
from workload.spec import DataSpec  # noqa: E402

KEY_CSV = DataSpec.model_validate({"features": 3, "max_record_bytes": 40})
LABEL_COLUMN_CSV = DataSpec.model_validate({"columns": ["y", "a", "b"], "label": "y"})
JSON_WITH_LABEL = DataSpec.model_validate(
    {"format": "json", "columns": ["a", "b", "y"], "label": "y", "max_record_bytes": 80})


Array = npt.NDArray[np.float32]


def names(decoded: Decoded) -> list[str]:
    """Each record's reason as text (`""` for a good record)."""
    return [BAD_REASONS[code - 1] if code else "" for code in decoded.reasons.tolist()]


def decode(keys: list[bytes], values: list[bytes], data: DataSpec = KEY_CSV) -> tuple[
        Array, Array, list[str]]:
    """Decode and return numpy features, labels and the reasons as text."""
    decoded = make_decoder(data)(keys, values)
    return decoded.features, decoded.labels, names(decoded)


def test_tutorial_layout_decodes_label_from_key_and_features_from_csv() -> None:
    features, labels, reasons = decode([b"0", b"1"], [b"1,2,3", b" 1.5 , -2e3,.5"])
    assert reasons == ["", ""]
    np.testing.assert_allclose(features, [[1.0, 2.0, 3.0], [1.5, -2000.0, 0.5]])
    np.testing.assert_array_equal(labels, [0, 1])
    assert features.dtype == np.float32 and labels.dtype == np.float32


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"1", b"1,2", "field_count"),
        (b"1", b"1,2,3,4", "field_count"),
        (b"1", b"hello", "field_count"),
        (b"1", b"a,b,c", "non_numeric"),
        (b"1", b"1,nan,3", "non_numeric"),
        (b"1", b"1,inf,3", "non_numeric"),
        (b"1", b"1e50,2,3", "non_numeric"),
        (b"1", b'"1",2,3', "non_numeric"),
        (b"1", b"", "empty"),
        (b"1", b"   ", "empty"),
        (b"1", b"1,2," + b"3" * 60, "oversized"),
        (b"2", b"1,2,3", "bad_key"),
        (b"", b"1,2,3", "bad_key"),
        (b"yes", b"1,2,3", "bad_key"),
    ],
)
def test_malformed_csv_record_is_set_aside_with_its_reason(
        key: bytes, value: bytes, reason: str) -> None:
    features, labels, reasons = decode([b"0", key, b"1"], [b"7,8,9", value, b"4,5,6"])
    assert reasons == ["", reason, ""]
    np.testing.assert_allclose(features, [[7, 8, 9], [4, 5, 6]])
    np.testing.assert_array_equal(labels, [0, 1])


def test_empty_outranks_a_bad_key_and_value_problems_outrank_the_key() -> None:
    _, _, reasons = decode([b"x", b"x", b"x"], [b"", b"1,2", b"1,2,3"])
    assert reasons == ["empty", "field_count", "bad_key"]


def test_label_column_is_split_from_the_features() -> None:
    features, labels, reasons = decode(
        [b"", b"", b""], [b"1,2,3", b"0,5,6", b"3,1,1"], LABEL_COLUMN_CSV)
    assert reasons == ["", "", "bad_key"]
    np.testing.assert_allclose(features, [[2, 3], [5, 6]])
    np.testing.assert_array_equal(labels, [1, 0])


def test_json_records_are_read_by_field_name_in_any_order() -> None:
    values = [b'{"a": 1, "b": 2.5, "y": 1}', b'{"y":0, "b":3,"a":4, "note":"x, y"}']
    features, labels, reasons = decode([b"", b""], values, JSON_WITH_LABEL)
    assert reasons == ["", ""]
    np.testing.assert_allclose(features, [[1.0, 2.5], [4.0, 3.0]])
    np.testing.assert_array_equal(labels, [1, 0])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"a": 1, "y": 1}', "missing_field"),
        (b"not json", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"[1, 2, 3]", "invalid_json"),
        (b'{"a": 1, "b": 2, "y": 1} x', "invalid_json"),
        (b'{"a": NaN, "b": 2, "y": 1}', "invalid_json"),
        (b'{"a": {"nested": 1}, "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": "x", "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": "1", "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": true, "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": null, "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": 1e39, "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": 1e400, "b": 2, "y": 1}', "non_numeric"),
        (b'{"a": 1, "b": 2, "y": 2}', "bad_key"),
        (b'{"a": 1, "b": 2, "y": true}', "non_numeric"),
        (b"", "empty"),
        (b" \n ", "empty"),
        (b'{"a": 1, "b": 2, "y": 1, "pad": "' + b"x" * 80 + b'"}', "oversized"),
        (b'{"a": 1, "b": 2, "y": 1, "z": "\xff"}', "invalid_json"),
    ],
)
def test_malformed_json_record_is_set_aside_with_its_reason(value: bytes, reason: str) -> None:
    good = b'{"a": 1, "b": 2, "y": 1}'
    _, labels, reasons = decode([b"", b"", b""], [good, value, good], JSON_WITH_LABEL)
    assert reasons == ["", reason, ""]
    assert labels.shape == (2,)


def test_json_numbers_json_allows_and_fast_parsers_may_not_are_read_as_json_reads_them() -> None:
    values = [b'{"a": 100000000000000000000000, "b": 2.5E-3, "y": 1, "s": "\\ud800"}',
              b'{"a": -0, "b": 1e-400, "y": 0.0, "a": 7}']
    features, labels, reasons = decode([b"", b""], values, JSON_WITH_LABEL)
    assert reasons == ["", ""]
    np.testing.assert_array_equal(features, np.array([[1e23, 2.5e-3], [7, 0]], np.float32))
    np.testing.assert_array_equal(labels, [1, 0])


def test_nested_columns_are_paths_and_the_first_missing_one_is_named() -> None:
    data = DataSpec.model_validate({"format": "json", "label": "y",
                                    "columns": ["e.p.x", "y", "e.q", "e.p.z"]})
    values = [b'{"y": 1, "e": {"q": 2, "p": {"z": 3, "x": 1}}}',
              b'{"y": 1, "e": {"q": 2, "p": {"x": 1}}}',
              b'{"y": 1, "e": {"q": 2, "p": 5}}',
              b'{"y": 1, "e": null}',
              b'{"y": 1, "e": {"q": 2, "p": {"z": 3, "x": [1]}}}']
    decoded = make_decoder(data)([b""] * len(values), values)
    assert names(decoded) == ["", "missing_field", "missing_field", "missing_field", "non_numeric"]
    assert decoded.missing == {1: "e.p.z", 2: "e.p.x", 3: "e.p.x"}
    np.testing.assert_array_equal(decoded.features, [[1, 2, 3]])
    bad = list(decoded.bad_records([b"k"] * len(values), values))
    assert [(record.value, record.reason, record.field) for record in bad[:2]] == [
        (values[1], "missing_field", "e.p.z"), (values[2], "missing_field", "e.p.x")]
    assert bad[-1].field is None and bad[-1].key == b"k"


def test_json_with_label_in_the_key() -> None:
    data = DataSpec.model_validate({"format": "json", "columns": ["a", "b"]})
    features, labels, reasons = decode([b"1", b"7"], [b'{"a":1,"b":2}', b'{"a":1,"b":2}'], data)
    assert reasons == ["", "bad_key"]
    np.testing.assert_allclose(features, [[1, 2]])
    np.testing.assert_array_equal(labels, [1])


def test_wide_records_are_checked_field_by_field() -> None:
    data = DataSpec.model_validate({"features": 300})
    row = b",".join([b"1.5"] * 300)
    broken = b",".join([b"1.5"] * 299 + [b"x"])
    features, _, reasons = decode([b"1", b"0", b"1"], [row, broken, row[:-4]], data)
    assert reasons == ["", "non_numeric", "field_count"]
    assert features.shape == (1, 300)


def test_an_empty_batch_gives_empty_tensors_of_the_right_shape() -> None:
    features, labels, reasons = decode([], [])
    assert features.shape == (0, 3) and labels.shape == (0,) and reasons == []


def test_counts_name_each_reason_and_leave_good_records_out() -> None:
    decoded = Decoded(np.zeros((2, 3), np.float32), np.zeros(2, np.float32),
                      np.array([0, 4, 5, 4, 0, 6, 1], np.uint8))
    assert decoded.counts() == {BAD_REASONS[3]: 2, BAD_REASONS[4]: 1, BAD_REASONS[5]: 1,
                                BAD_REASONS[0]: 1}


def test_every_reason_is_one_of_the_bad_reasons_and_each_format_gives_its_own() -> None:
    assert set(BAD_REASONS) == set().union(*FORMAT_REASONS.values())
    assert "field_count" not in FORMAT_REASONS["json"]
    assert {"invalid_json", "missing_field"}.isdisjoint(FORMAT_REASONS["csv"])
    assert {"invalid_avro", "unknown_schema", "registry_unreachable"}.isdisjoint(
        set(FORMAT_REASONS["csv"]) | set(FORMAT_REASONS["json"]))


record_bytes = st.one_of(
    st.binary(max_size=60),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=5)
    .map(lambda xs: ",".join(repr(x) for x in xs).encode()),
    st.lists(st.sampled_from(["1", "-2.5", "x", "", " ", "1e", ".", "+", "1e-3"]), max_size=5)
    .map(lambda xs: ",".join(xs).encode()),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=3), record_bytes), max_size=12))
def test_decode_never_raises_and_accounts_for_every_record(
        records: list[tuple[bytes, bytes]]) -> None:
    keys = [key for key, _ in records]
    values = [value for _, value in records]
    decoded = make_decoder(KEY_CSV)(keys, values)
    good = int(decoded.good.sum())
    assert good + sum(decoded.counts().values()) == len(records)
    assert decoded.features.shape == (good, 3) and decoded.labels.shape == (good,)
    assert np.isfinite(decoded.features).all()
    assert set(decoded.counts()) <= set(FORMAT_REASONS["csv"])
