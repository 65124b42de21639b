"""Labels per task and categorical fields, in CSV and JSON: what each decodes to, and each reason."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from workload.data.decode import BAD_REASONS, DECODERS, Decoded, LabelRule, make_decoder  # noqa: E402
from workload.data.decoded import class_order  # noqa: E402
from workload.spec import DataSpec  # noqa: E402

CSV = DataSpec.model_validate({"columns": ["a", "country", "b", "y"], "label": "y",
                               "categorical": ["country"]})
JSON = DataSpec.model_validate({"format": "json", "columns": ["a", "where.country", "b", "y"],
                                "label": "y", "categorical": ["where.country"]})
KEY_CSV = DataSpec.model_validate({"features": 2})
KEY_JSON = DataSpec.model_validate({"format": "json", "columns": ["a", "b"]})


def names(decoded: Decoded) -> list[str]:
    """Each record's reason as text (`""` for a good record)."""
    return [BAD_REASONS[code - 1] if code else "" for code in decoded.reasons.tolist()]


def json_record(a: object, country: object, b: object, y: object) -> bytes:
    import json

    return json.dumps({"a": a, "where": {"country": country}, "b": b, "y": y}).encode()


def test_every_format_has_a_registered_decoder_that_reads_every_task() -> None:
    assert set(DECODERS) == {"csv", "json", "avro"}  # Avro's are in test_avro_decode.py
    for data in (CSV, JSON):
        for task in ("binary", "multiclass", "regression"):
            make_decoder(data, LabelRule(task))  # type: ignore[arg-type]


def test_csv_multiclass_labels_become_class_indices_and_others_unknown_class() -> None:
    decode = make_decoder(CSV, LabelRule("multiclass", ("low", "mid", "high")))
    decoded = decode([b""] * 5, [b"1,fr,2,high", b"3, de ,4,low", b"5,fr,6,tiny",
                                 b"7,it,8,", b'9,"x",1,mid'])
    assert names(decoded) == ["", "", "unknown_class", "unknown_class", "non_categorical"]
    np.testing.assert_array_equal(decoded.labels, [2, 0])
    np.testing.assert_allclose(decoded.features, [[1, 2], [3, 4]])
    assert decoded.categories is not None
    assert decoded.categories.tolist() == [["fr"], ["de"]]


def test_json_multiclass_labels_are_names_or_integers_read_as_text() -> None:
    decode = make_decoder(JSON, LabelRule("multiclass", ("0", "1", "2", "spam")))
    values = [json_record(1, "fr", 2, 2), json_record(3, "de", 4, "spam"),
              json_record(5, "fr", 6, 2.0), json_record(7, "it", 8, 7),
              json_record(9, "it", 1, None), json_record(1, "it", 1, "1")]
    decoded = decode([b""] * len(values), values)
    assert names(decoded) == ["", "", "", "unknown_class", "unknown_class", ""]
    np.testing.assert_array_equal(decoded.labels, [2, 3, 2, 1])


def test_learning_the_classes_keeps_every_label_as_text() -> None:
    decode = make_decoder(CSV, LabelRule("multiclass", None))
    decoded = decode([b""] * 3, [b"1,fr,2,b", b"3,de,4,a", b"5,fr,6,"])
    assert names(decoded) == ["", "", "unknown_class"]
    assert decoded.tokens is not None and decoded.tokens.tolist() == ["b", "a"]
    assert decoded.with_classes(("a", "b")).labels.tolist() == [1, 0]


def test_classes_are_ordered_as_numbers_when_all_are_integers() -> None:
    assert class_order(["10", "9", "2", "10"]) == ("2", "9", "10")
    assert class_order(["b", "a", "10"]) == ("10", "a", "b")


@pytest.mark.parametrize("data", [CSV, JSON], ids=["csv", "json"])
def test_regression_labels_are_numbers_and_a_non_numeric_label_is_set_aside(
        data: DataSpec) -> None:
    decode = make_decoder(data, LabelRule("regression"))
    if data.format == "csv":
        values = [b"1,fr,2,3.5", b"1,fr,2,-1e3", b"1,fr,2,abc", b"1,fr,2,1e60"]
    else:
        values = [json_record(1, "fr", 2, 3.5), json_record(1, "fr", 2, -1000),
                  json_record(1, "fr", 2, "abc"), json_record(1, "fr", 2, 1e60)]
    decoded = decode([b""] * 4, values)
    assert names(decoded) == ["", "", "non_numeric", "non_numeric"]
    np.testing.assert_allclose(decoded.labels, [3.5, -1000.0])


@pytest.mark.parametrize("data", [KEY_CSV, KEY_JSON], ids=["csv", "json"])
def test_labels_in_the_message_key_follow_the_task(data: DataSpec) -> None:
    value = b"1,2" if data.format == "csv" else b'{"a": 1, "b": 2}'
    regression = make_decoder(data, LabelRule("regression"))([b"2.5", b" -3 ", b"x"], [value] * 3)
    assert names(regression) == ["", "", "non_numeric"]
    np.testing.assert_allclose(regression.labels, [2.5, -3.0])
    multiclass = make_decoder(data, LabelRule("multiclass", ("cat", "dog")))(
        [b"dog", b" cat ", b"cow"], [value] * 3)
    assert names(multiclass) == ["", "", "unknown_class"]
    np.testing.assert_array_equal(multiclass.labels, [1, 0])
    binary = make_decoder(data, LabelRule("binary"))([b"1", b"2"], [value] * 2)
    assert names(binary) == ["", "bad_key"]


@pytest.mark.parametrize(("country", "text"), [
    ("fr", "fr"), (7, "7"), (True, "true"), (3.0, "3"), (2.5, None), (None, None),
    ({"name": "fr"}, None), (["fr"], None)])
def test_json_categorical_values_are_text_and_objects_or_arrays_are_set_aside(
        country: object, text: str | None) -> None:
    decoded = make_decoder(JSON)([b""] * 2, [json_record(1, "de", 2, 1),
                                            json_record(1, country, 2, 0)])
    assert names(decoded) == ["", "" if text is not None else "non_categorical"]
    assert decoded.categories is not None
    assert decoded.categories[:, 0].tolist() == ["de", *([text] if text is not None else [])]


def test_a_json_record_missing_its_categorical_field_is_missing_field() -> None:
    decoded = make_decoder(JSON)([b""], [b'{"a": 1, "where": {}, "b": 2, "y": 1}'])
    assert names(decoded) == ["missing_field"] and decoded.missing == {0: "where.country"}


def test_a_wide_csv_record_of_mixed_columns_is_checked_field_by_field() -> None:
    columns = [f"x{index}" for index in range(300)] + ["kind", "y"]
    data = DataSpec.model_validate({"columns": columns, "label": "y", "categorical": ["kind"]})
    good = ",".join(["1"] * 300 + ["red", "1"]).encode()
    quoted = ",".join(["1"] * 300 + ['"red"', "1"]).encode()
    wordy = ",".join(["1"] * 299 + ["x", "red", "1"]).encode()
    decoded = make_decoder(data)([b""] * 3, [good, quoted, wordy])
    assert names(decoded) == ["", "non_categorical", "non_numeric"]
    assert decoded.features.shape == (1, 300)
