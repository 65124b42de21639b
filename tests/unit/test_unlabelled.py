"""Serving decodes features without needing a label, with the decoders' own reasons."""

from __future__ import annotations

import numpy as np

from workload.data.decode import REASON_CODES
from workload.data.unlabelled import features_decoder
from workload.spec import DataSpec


def test_the_message_key_is_not_needed_when_it_is_the_label() -> None:
    decode = features_decoder(DataSpec(features=2))
    decoded = decode([b"7", b"", b"1"], [b"1.5,2", b"3,4", b"x,1"])
    assert decoded.good.tolist() == [True, True, False]
    assert decoded.reasons[2] == REASON_CODES["non_numeric"]
    np.testing.assert_array_equal(decoded.features, [[1.5, 2.0], [3.0, 4.0]])


def test_a_json_label_field_may_be_left_out() -> None:
    data = DataSpec(format="json", columns=["a", "b", "y"], label="y")
    decoded = features_decoder(data)([b"", b""], [b'{"a": 1, "b": 2}', b'{"a": 1}'])
    assert decoded.good.tolist() == [True, False]
    assert decoded.missing == {1: "b"}
    np.testing.assert_array_equal(decoded.features, [[1.0, 2.0]])


def test_a_csv_label_column_keeps_its_place_and_any_number_or_class_is_accepted() -> None:
    data = DataSpec(columns=["a", "y", "b"], label="y")
    decoded = features_decoder(data)([b"", b"", b""], [b"1,7,2", b"1,2", b"3,billing,4"])
    assert decoded.good.tolist() == [True, False, True]
    assert decoded.reasons[1] == REASON_CODES["field_count"]
    np.testing.assert_array_equal(decoded.features, [[1.0, 2.0], [3.0, 4.0]])
    assert decoded.categories is None


def test_csv_categories_are_kept_without_the_label_column() -> None:
    data = DataSpec(columns=["channel", "a", "queue", "product"], label="queue",
                    categorical=["channel", "product"])
    decoded = features_decoder(data)([b""] * 4, [b"email,1,billing, p7 ", b"chat,2,,p1",
                                                  b'"web",3,bug,p2', b"web,x,bug,p2"])
    assert decoded.good.tolist() == [True, True, False, False]
    assert decoded.reasons[2:].tolist() == [REASON_CODES["non_categorical"],
                                            REASON_CODES["non_numeric"]]
    np.testing.assert_array_equal(decoded.features, [[1.0], [2.0]])
    assert decoded.category_table.tolist() == [["email", "p7"], ["chat", "p1"]]


def test_json_categories_are_kept_and_a_missing_one_is_named() -> None:
    data = DataSpec(format="json", columns=["a", "channel", "queue"], label="queue",
                    categorical=["channel"])
    decoded = features_decoder(data)([b""] * 3, [b'{"a": 1, "channel": "email"}',
                                                 b'{"a": 2, "channel": 3, "queue": "bug"}',
                                                 b'{"a": 3}'])
    assert decoded.good.tolist() == [True, True, False]
    assert decoded.reasons[2] == REASON_CODES["missing_field"] and decoded.missing == {2: "channel"}
    np.testing.assert_array_equal(decoded.features, [[1.0], [2.0]])
    assert decoded.category_table.tolist() == [["email"], ["3"]]
