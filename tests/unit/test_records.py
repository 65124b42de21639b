"""Encoding rows as Kafka messages (CSV and JSON) and the malformed-record injector.

A plain-Python reference parser reads the messages back: it is the
specification the encoder must satisfy, independent of the TensorFlow decoder.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from workload.data.decode import FORMAT_REASONS
from workload.datagen import synthetic
from workload.datagen.records import (
    Message,
    applicable_reasons,
    corrupt,
    encode,
)
from workload.datagen.table import SUSY_COLUMNS, SUSY_LABEL, SusyData
from workload.spec import DataSpec

Parsed = tuple[int | None, list[float]]


def reference_parse(message: Message, spec: DataSpec) -> Parsed | str:
    """(label, features) of a good message, or the reason it is malformed (first one wins)."""
    key, value = message
    if not value.strip():
        return "empty"
    if len(value) > spec.max_record_bytes:
        return "oversized"
    columns = spec.record_columns
    if spec.format == "csv":
        fields: list[object] = list(value.decode().split(","))
        if len(fields) != len(columns):
            return "field_count"
        by_name = dict(zip(columns, fields, strict=True))
    else:
        try:
            record = json.loads(value)
        except ValueError:
            return "invalid_json"
        if not isinstance(record, dict):
            return "invalid_json"
        by_name = {}
        for name in columns:
            node = record
            for step in name.split("."):
                if not isinstance(node, dict) or step not in node:
                    return "missing_field"
                node = node[step]
            by_name[name] = node
    numbers: dict[str, float] = {}
    for name in columns:
        raw = by_name[name]
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            return "non_numeric"
        try:
            numbers[name] = float(raw)
        except ValueError:
            return "non_numeric"
    label_text = key if spec.label == "key" else numbers[spec.label]
    if label_text not in (b"0", b"1", 0.0, 1.0):
        return "bad_key"
    label = int(label_text) if isinstance(label_text, float) else int(label_text or b"")
    return label, [numbers[name] for name in spec.feature_names]


def assert_round_trip(data: SusyData, spec: DataSpec) -> None:
    messages = encode(data, spec)
    assert len(messages) == data.rows
    for row, message in enumerate(messages):
        parsed = reference_parse(message, spec)
        assert not isinstance(parsed, str), f"row {row} parsed as {parsed}: {message!r}"
        label, features = parsed
        assert label == data.labels[row]
        assert np.array_equal(np.asarray(features, dtype=np.float32), data.features[row])


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def tables(draw: st.DrawFn, columns: int = 18) -> SusyData:
    rows = draw(st.integers(1, 20))
    features = draw(hnp.arrays(np.float32, (rows, columns), elements=float32s))
    labels = draw(hnp.arrays(np.int64, rows, elements=st.integers(0, 1)))
    names = tuple(f"c{index}" for index in range(columns))
    return SusyData(features, labels, names)


@settings(max_examples=60, deadline=None)
@given(tables())
def test_csv_with_label_key_round_trips_exact_float32(data: SusyData) -> None:
    assert_round_trip(data, DataSpec())


@settings(max_examples=40, deadline=None)
@given(tables(columns=3), st.integers(0, 3), st.sampled_from(["csv", "json"]))
def test_label_as_a_column_round_trips_in_csv_and_json(
    data: SusyData, label_at: int, layout: Literal["csv", "json"]
) -> None:
    names = ["x", "y é", 'z"q']
    names.insert(label_at, "target")
    spec = DataSpec(format=layout, columns=names, label="target")
    assert_round_trip(data, spec)
    assert all(message.key is None for message in encode(data, spec))


@settings(max_examples=30, deadline=None)
@given(tables())
def test_json_with_label_key_round_trips(data: SusyData) -> None:
    spec = DataSpec(format="json", columns=list(SUSY_COLUMNS))
    assert_round_trip(data, spec)
    assert {message.key for message in encode(data, spec)} <= {b"0", b"1"}


def test_csv_matches_the_tutorial_layout() -> None:
    data = SusyData(np.array([[0.5, -1.25, 1e-05]], np.float32), np.array([1]), ("a", "b", "c"))
    assert encode(data, DataSpec(features=3)) == [Message(b"1", b"0.5,-1.25,0.00001")]


def test_json_names_every_column_including_the_label_field() -> None:
    data = synthetic.generate(3, seed=1)
    spec = DataSpec(format="json", columns=[*SUSY_COLUMNS, SUSY_LABEL], label=SUSY_LABEL)
    record = json.loads(encode(data, spec)[0].value)
    assert list(record) == [*SUSY_COLUMNS, SUSY_LABEL]
    assert record[SUSY_LABEL] == data.labels[0]


def test_dotted_columns_are_written_as_nested_objects() -> None:
    data = SusyData(np.array([[0.5, -1.25, 3.0]], np.float32), np.array([1]), ("a", "b", "c"))
    spec = DataSpec(format="json", columns=["e.p.x", "y", "e.q", "e.p.z"], label="y")
    value = encode(data, spec)[0].value
    assert json.loads(value) == {"e": {"p": {"x": 0.5, "z": 3.0}, "q": -1.25}, "y": 1}
    assert reference_parse(Message(None, value), spec) == (1, [0.5, -1.25, 3.0])


def test_a_spec_of_the_wrong_width_is_refused_naming_the_field() -> None:
    data = synthetic.generate(2, seed=1)
    with pytest.raises(ValueError, match=r"spec.data.features: describes 17 numeric features"):
        encode(data, DataSpec(features=17))
    with pytest.raises(ValueError, match=r"spec.data.columns"):
        encode(data, DataSpec(columns=["a", "b"]))


LAYOUTS = [
    DataSpec(max_record_bytes=512),
    DataSpec(format="json", columns=list(SUSY_COLUMNS), max_record_bytes=1024),
    DataSpec(columns=[SUSY_LABEL, *SUSY_COLUMNS], label=SUSY_LABEL, max_record_bytes=512),
    DataSpec(format="json", columns=[*SUSY_COLUMNS, SUSY_LABEL], label=SUSY_LABEL),
    DataSpec(format="json", columns=[f"event.{name}" for name in SUSY_COLUMNS] + [SUSY_LABEL],
             label=SUSY_LABEL),
]


@pytest.mark.parametrize("spec", LAYOUTS,
                         ids=["csv-key", "json-key", "csv-column", "json-column", "json-nested"])
def test_corrupt_makes_each_reason_once_per_message_and_counts_it(spec: DataSpec) -> None:
    data = synthetic.generate(500, seed=2)
    good = encode(data, spec)
    messages, expected = corrupt(good, fraction=0.2, seed=5, spec=spec)
    assert set(expected) == set(applicable_reasons(spec))
    assert all(count == 100 // len(expected) or count == 100 // len(expected) + 1
               for count in expected.values())
    seen: Counter[str] = Counter()
    for original, message in zip(good, messages, strict=True):
        parsed = reference_parse(message, spec)
        if isinstance(parsed, str):
            seen[parsed] += 1
            assert message != original
        else:
            assert message == original
    assert dict(seen) == expected
    assert sum(expected.values()) == 100


def test_bad_key_means_a_label_other_than_0_or_1_in_the_key_or_the_label_column() -> None:
    data = synthetic.generate(30, seed=6)
    for spec in (DataSpec(), DataSpec(columns=[SUSY_LABEL, *SUSY_COLUMNS], label=SUSY_LABEL)):
        assert applicable_reasons(spec) == tuple(
            reason for reason in FORMAT_REASONS["csv"]
            if reason not in ("non_categorical", "unknown_class"))
        messages, counts = corrupt(encode(data, spec), 1.0, seed=2, spec=spec)
        labels = [
            message.key if spec.label == "key" else message.value.split(b",")[0]
            for message in messages if reference_parse(message, spec) == "bad_key"
        ]
        assert len(labels) == counts["bad_key"] == 6
        assert not set(labels) & {b"0", b"1"}


def test_oversized_records_are_otherwise_valid_and_the_same_numbers() -> None:
    spec = DataSpec(max_record_bytes=400)
    data = synthetic.generate(50, seed=3)
    data.features[:, 0] *= -1  # signed first fields must stay numbers when padded
    good = encode(data, spec)
    messages, expected = corrupt(good, fraction=1.0, seed=1, spec=spec)
    relaxed = DataSpec(max_record_bytes=1 << 20)
    oversized = [
        (before, after) for before, after in zip(good, messages, strict=True)
        if reference_parse(after, spec) == "oversized"
    ]
    assert len(oversized) == expected["oversized"] > 0
    for before, after in oversized:
        assert len(after.value) > spec.max_record_bytes
        assert reference_parse(after, relaxed) == reference_parse(before, relaxed)


def test_corrupt_is_seeded_and_rejects_a_fraction_outside_zero_to_one() -> None:
    good = encode(synthetic.generate(100, seed=4))
    assert corrupt(good, 0.3, seed=9) == corrupt(good, 0.3, seed=9)
    assert corrupt(good, 0.0, seed=9)[0] == good
    with pytest.raises(ValueError, match="fraction"):
        corrupt(good, 1.5, seed=9)
