"""The Avro decoder: records written by fastavro decode into the same numbers, bad ones by reason,
and writer schemas resolve to the reader's (a registry stand-in; the real one in integration)."""

from __future__ import annotations

import math
import random
import struct
import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.avro_support import StaticRegistry, read_back, wire
from workload.data import avro_decode
from workload.data.avro_decode import AvroDecoder
from workload.data.avro_schema import SchemaError
from workload.data.decode import BAD_REASONS, for_topic
from workload.spec import DataSpec

KIN = {"type": "record", "name": "Kin", "fields": [
    {"name": "pt", "type": "float"},
    {"name": "eta", "type": ["null", "double"]},
    {"name": "n", "type": "long"}]}

EVENT = {"type": "record", "name": "Event", "namespace": "hep", "fields": [
    {"name": "id", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "kin", "type": KIN},
    {"name": "extra", "type": {"type": "map", "values": ["null", "int", "Kin"]}},
    {"name": "flag", "type": "boolean"},
    {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["R", "G", "B"]}},
    {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
    {"name": "w", "type": ["double", "null", "string"]},
    {"name": "label", "type": "int"}]}

EVENT_COLUMNS = ["kin.pt", "kin.eta", "kin.n", "flag", "w", "label"]

SUSY = {"type": "record", "name": "Susy", "fields": [
    *({"name": f"f{i}", "type": "double"} for i in range(18)), {"name": "label", "type": "int"}]}


def avro_data(columns: list[str], label: str = "label", **extra: Any) -> DataSpec:
    return DataSpec.model_validate({"format": "avro", "columns": columns, "label": label,
                                    "schemaRegistry": {"url": "http://registry:8080"}, **extra})


def decoder(columns: list[str], schemas: dict[int, dict[str, Any]], label: str = "label",
            versions: list[int] | None = None, **extra: Any) -> tuple[AvroDecoder, StaticRegistry]:
    registry = StaticRegistry(schemas, versions)
    topic = f"events-{uuid.uuid4().hex}"  # records are counted per subject and process
    made = AvroDecoder(for_topic(avro_data(columns, label, **extra), topic),
                       registry=registry)  # type: ignore[arg-type]
    return made, registry


def random_event(rng: random.Random) -> dict[str, Any]:
    def kin() -> dict[str, Any]:
        return {"pt": rng.uniform(-1e3, 1e3), "eta": None if rng.random() < 0.1 else rng.gauss(0, 2),
                "n": rng.choice([0, -1, 63, -64, 64, 2**40, -(2**52)])}
    return {
        "id": "é" * rng.randrange(0, 40),
        "tags": [str(rng.random()) for _ in range(rng.randrange(0, 4))],
        "kin": kin(),
        "extra": {f"k{i}": rng.choice([None, rng.randrange(-10**6, 10**6), kin()])
                  for i in range(rng.randrange(0, 3))},
        "flag": rng.random() < 0.5,
        "color": rng.choice("RGB"),
        "digest": bytes(rng.randrange(256) for _ in range(4)),
        "w": rng.choice([rng.uniform(-5, 5), rng.uniform(-5, 5), None, "text"]),
        "label": rng.choice([0, 1, 1, 0, 2]),
    }


def test_records_decode_to_the_numbers_fastavro_reads() -> None:
    rng = random.Random(7)
    events = [random_event(rng) for _ in range(3000)]
    values = [wire(3, EVENT, event) for event in events]
    decode, _ = decoder(EVENT_COLUMNS, {3: EVENT})
    decoded = decode([b""] * len(values), values)
    expected_rows, expected_labels, expected_reasons = [], [], []
    for value, event in zip(values, events, strict=True):
        seen = read_back(value, EVENT)  # the oracle agrees with what was written
        kin = seen["kin"]
        if kin["eta"] is None or not isinstance(seen["w"], float):
            expected_reasons.append("non_numeric")
        elif seen["label"] not in (0, 1):
            expected_reasons.append("bad_key")
        else:
            expected_reasons.append("")
            expected_rows.append([kin["pt"], kin["eta"], kin["n"], float(seen["flag"]), seen["w"]])
            expected_labels.append(seen["label"])
        assert seen["kin"]["n"] == event["kin"]["n"]
    got = ["" if code == 0 else BAD_REASONS[code - 1] for code in decoded.reasons]
    assert got == expected_reasons
    np.testing.assert_array_equal(decoded.features, np.array(expected_rows, np.float32))
    np.testing.assert_array_equal(decoded.labels, np.array(expected_labels, np.float32))
    assert 0 < len(expected_rows) < len(values)


def test_a_fixed_layout_decodes_every_record_and_counts_schema_ids() -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(500, 18))
    labels = rng.integers(0, 2, 500)
    values = [wire(9, SUSY, {**{f"f{i}": x for i, x in enumerate(row)}, "label": int(label)})
              for row, label in zip(rows.tolist(), labels.tolist(), strict=True)]
    decode, registry = decoder([f"f{i}" for i in range(18)] + ["label"], {9: SUSY})
    for _ in range(2):
        decoded = decode([b""] * 500, values)
        np.testing.assert_array_equal(decoded.features, rows.astype(np.float32))
        np.testing.assert_array_equal(decoded.labels, labels.astype(np.float32))
    assert registry.asked == [9]  # fetched once per id
    assert decode.schema_ids == {9: 1000}


def test_labels_come_from_the_message_key_as_for_json() -> None:
    values = [wire(9, SUSY, {**{f"f{i}": float(i) for i in range(18)}, "label": 5})] * 3
    decode, _ = decoder([f"f{i}" for i in range(18)], {9: SUSY}, label="key")
    decoded = decode([b"1", b"0", b"x"], values)
    assert decoded.labels.tolist() == [1.0, 0.0]
    assert decoded.counts() == {"bad_key": 1}


GOOD = wire(9, SUSY, {**{f"f{i}": 0.5 for i in range(18)}, "label": 1})


@pytest.mark.parametrize(("value", "reason"), [
    (b"", "empty"),
    (b"\x01" + GOOD[1:], "invalid_avro"),           # not the wire format's magic byte
    (GOOD[:4], "invalid_avro"),                      # shorter than the header
    (GOOD[:40], "invalid_avro"),                     # truncated body
    (GOOD[:-1], "invalid_avro"),                     # the label's byte cut off
    (GOOD + b"\0", "invalid_avro"),                  # bytes after the record
    (GOOD[:-1] + b"\x80", "invalid_avro"),           # a varint that never ends
    (b"\0\0\0\0\x63" + GOOD[5:], "unknown_schema"),  # id 99: not in the registry
    (GOOD[:-1] + b"\x04", "bad_key"),                # label 2
    (GOOD[:5] + struct.pack("<d", math.nan) + GOOD[13:], "non_numeric"),
    (GOOD[:5] + struct.pack("<d", 1e300) + GOOD[13:], "non_numeric"),  # beyond float32
    (b"\0" + b"x" * 70000, "oversized"),
])
def test_a_bad_record_is_set_aside_with_its_reason(value: bytes, reason: str) -> None:
    decode, _ = decoder([f"f{i}" for i in range(18)] + ["label"], {9: SUSY})
    decoded = decode([b""] * 3, [GOOD, value, GOOD])
    assert decoded.counts() == {reason: 1}
    assert len(decoded.labels) == 2
    assert [bad.reason for bad in decoded.bad_records([b""] * 3, [GOOD, value, GOOD])] == [reason]


def test_union_branches_and_enum_indexes_out_of_range_are_invalid() -> None:
    kin = wire(1, KIN, {"pt": 1.0, "eta": 2.0, "n": 3})
    wrong_branch = kin[:9] + b"\x06" + kin[10:]  # eta's branch index 3 of 2
    decode, _ = decoder(["pt", "eta", "n"], {1: KIN}, label="key")
    assert decode([b"1", b"1"], [kin, wrong_branch]).counts() == {"invalid_avro": 1}
    color = {"type": "record", "name": "C", "fields": [
        {"name": "c", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
        {"name": "x", "type": "double"}]}
    decode, _ = decoder(["x"], {1: color}, label="key")
    good = wire(1, color, {"c": "A", "x": 1.0})
    assert decode([b"1", b"1"], [good, good[:5] + b"\x02" + good[6:]]).counts() == {
        "invalid_avro": 1}


def test_an_array_block_with_a_byte_size_is_skipped_whole() -> None:
    schema = {"type": "record", "name": "A", "fields": [
        {"name": "xs", "type": {"type": "array", "items": "long"}}, {"name": "y", "type": "double"}]}
    body = b"\x03" + b"\x06" + b"\x02\x04\x06" + b"\x00" + struct.pack("<d", 2.5)  # count -2, 3 bytes
    decode, _ = decoder(["y"], {1: schema}, label="key")
    decoded = decode([b"1"], [b"\0\0\0\0\x01" + body])
    assert decoded.features.tolist() == [[2.5]]


V1 = {"type": "record", "name": "Reading", "fields": [
    {"name": "pt_old", "type": "int"}, {"name": "label", "type": "int"}]}
V2 = {"type": "record", "name": "Reading", "fields": [
    {"name": "pt", "type": "double", "aliases": ["pt_old"]},
    {"name": "met", "type": "double", "default": 7.5},
    {"name": "label", "type": "int"}]}
V3_NO_DEFAULT = {"type": "record", "name": "Reading", "fields": [
    {"name": "pt", "type": "double", "aliases": ["pt_old"]},
    {"name": "met", "type": "double", "default": 7.5},
    {"name": "eta", "type": "double"},
    {"name": "label", "type": "int"}]}


def test_an_old_record_reads_through_the_readers_schema_with_its_defaults() -> None:
    decode, _ = decoder(["pt", "met", "label"], {1: V1, 2: V2})
    old = wire(1, V1, {"pt_old": 3, "label": 1})
    new = wire(2, V2, {"pt": 4.5, "met": 1.25, "label": 0})
    decoded = decode([b""] * 2, [old, new])
    assert decoded.features.tolist() == [[3.0, 7.5], [4.5, 1.25]]
    assert decoded.labels.tolist() == [1.0, 0.0]
    assert decode.schema_ids == {1: 1, 2: 1}


def test_a_record_whose_schema_lacks_a_needed_field_is_missing_that_field() -> None:
    decode, _ = decoder(["pt", "eta", "label"], {1: V1, 2: V2, 3: V3_NO_DEFAULT})
    records = [wire(1, V1, {"pt_old": 3, "label": 1}),
               wire(2, V2, {"pt": 1.0, "met": 2.0, "label": 1}),
               wire(3, V3_NO_DEFAULT, {"pt": 1.0, "met": 2.0, "eta": -0.5, "label": 1})]
    decoded = decode([b""] * 3, records)
    assert decoded.counts() == {"missing_field": 2}
    assert [bad.field for bad in decoded.bad_records([b""] * 3, records)] == ["eta", "eta"]
    assert decoded.features.tolist() == [[1.0, -0.5]]


def test_the_reader_schema_is_the_pinned_version_and_must_hold_every_column() -> None:
    decode, _ = decoder(["pt", "label"], {1: V1, 2: V2}, schemaVersion=2)
    assert (decode.reader_id, decode.reader_version) == (2, 2)
    with pytest.raises(SchemaError, match=r"version 1: the reader's schema has no field pt"):
        decoder(["pt", "label"], {1: V1, 2: V2}, schemaVersion=1)


def test_an_unreachable_registry_sets_records_aside_and_is_asked_again_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decode, registry = decoder(["pt", "met", "label"], {1: V1, 2: V2})
    old = wire(1, V1, {"pt_old": 3, "label": 1})
    registry.down = True
    assert decode([b""], [old]).counts() == {"registry_unreachable": 1}
    assert decode([b""], [old]).counts() == {"registry_unreachable": 1}
    assert registry.asked == [1]  # not asked again within RETRY_AFTER_S
    monkeypatch.setattr(avro_decode, "RETRY_AFTER_S", 0.0)
    registry.down = False
    assert decode([b""], [old]).counts() == {}


RECURSIVE = {"type": "record", "name": "Node", "fields": [
    {"name": "value", "type": "double"},
    {"name": "next", "type": ["null", "Node"]},
    {"name": "children", "type": {"type": "array", "items": "Node"}},
    {"name": "label", "type": "int"}]}


def test_a_recursive_schema_decodes_as_deep_as_the_record_goes() -> None:
    leaf = {"value": 3.0, "next": None, "children": [], "label": 0}
    record = {"value": 1.5, "next": {"value": 2.0, "next": leaf, "children": [leaf, leaf],
                                     "label": 1}, "children": [leaf], "label": 1}
    decode, _ = decoder(["value", "label"], {5: RECURSIVE})
    decoded = decode([b""], [wire(5, RECURSIVE, record)])
    assert decoded.features.tolist() == [[1.5]] and decoded.labels.tolist() == [1.0]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2000), st.binary(max_size=40)), min_size=1,
                max_size=20))
def test_any_bytes_after_a_valid_header_decode_or_are_set_aside_never_raise(
        cuts: list[tuple[int, bytes]]) -> None:
    rng = random.Random(len(cuts))
    values = []
    for cut, tail in cuts:
        good = wire(3, EVENT, random_event(rng))
        values.append(good[:5 + cut % max(1, len(good) - 5)] + tail)
    for name, schema in (("event", EVENT), ("node", RECURSIVE)):
        columns = EVENT_COLUMNS if name == "event" else ["value", "label"]
        decode, _ = decoder(columns, {3: schema})
        decoded = decode([b""] * len(values), values)
        assert len(decoded.reasons) == len(values)
        assert set(decoded.counts()) <= {"invalid_avro", "non_numeric", "bad_key"}
        assert len(decoded.labels) == int((decoded.reasons == 0).sum())


def test_a_chain_nested_deeper_than_the_recursion_limit_is_invalid_alone() -> None:
    chain = {"type": "record", "name": "Link", "fields": [
        {"name": "next", "type": ["null", "Link"]}, {"name": "label", "type": "int"}]}
    deep = b"\x02" * 5000 + b"\x00" + b"\x02" * 5000  # 5,000 links, then null, then labels
    shallow = wire(4, chain, {"next": {"next": None, "label": 0}, "label": 1})
    decode, _ = decoder(["label"], {4: chain})
    decoded = decode([b""] * 3, [shallow, b"\0\0\0\0\x04" + deep, shallow])
    assert decoded.counts() == {"invalid_avro": 1}
    assert decoded.labels.tolist() == [1.0, 1.0]


TICKET = {"type": "record", "name": "Ticket", "fields": [
    {"name": "wait", "type": "double"},
    {"name": "channel", "type": ["null", "string"]},
    {"name": "account", "type": {"type": "record", "name": "Account", "fields": [
        {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["free", "pro"]}},
        {"name": "region", "type": "int"}]}},
    {"name": "size", "type": "float"},
    {"name": "queue", "type": ["null", "string", "int"]}]}

TICKET_COLUMNS = ["wait", "channel", "account.tier", "account.region", "size", "queue"]
TICKET_CATEGORICAL = ["channel", "account.tier", "account.region"]


def ticket(rng: random.Random) -> dict[str, Any]:
    return {"wait": rng.uniform(0, 100),
            "channel": None if rng.random() < 0.05 else rng.choice(["mail", "phone", "chat"]),
            "account": {"tier": rng.choice(["free", "pro"]), "region": rng.randrange(4)},
            "size": float(np.float32(rng.uniform(-5, 5))),
            "queue": rng.choice([None, "billing", "tech", "sales", "spam", 3, 7])}


def test_categorical_fields_and_class_labels_decode_as_json_decodes_them() -> None:
    """A multiclass Avro job with categorical fields (a string, an enum, an int) gets the same
    numbers, categories, class indices and reasons as the same records in JSON."""
    import json

    from workload.data.decode import LabelRule, make_decoder

    rng = random.Random(23)
    records = [ticket(rng) for _ in range(2000)]
    classes = ("3", "billing", "sales", "tech")  # `spam`, `7` and no queue: unknown_class
    extra = {"categorical": TICKET_CATEGORICAL}
    avro = AvroDecoder(for_topic(avro_data(TICKET_COLUMNS, "queue", **extra), uuid.uuid4().hex),
                       "multiclass", registry=StaticRegistry({5: TICKET}))  # type: ignore[arg-type]
    decoded = avro([b""] * len(records),
                        [wire(5, TICKET, record) for record in records]).with_classes(classes)
    as_json = DataSpec.model_validate({"format": "json", "columns": TICKET_COLUMNS,
                                       "label": "queue", **extra})
    expected = make_decoder(as_json, LabelRule("multiclass", classes))(
        [b""] * len(records), [json.dumps(record).encode() for record in records])
    assert set(decoded.counts()) == {"non_categorical", "unknown_class"}
    assert decoded.counts() == expected.counts()
    np.testing.assert_array_equal(decoded.reasons, expected.reasons)
    np.testing.assert_array_equal(decoded.features, expected.features)
    np.testing.assert_array_equal(decoded.labels, expected.labels)
    assert decoded.categories is not None and expected.categories is not None
    assert decoded.categories.tolist() == expected.categories.tolist()
    assert {row[1] for row in decoded.categories.tolist()} == {"free", "pro"}


def test_regression_labels_are_numbers_from_a_field_or_the_key() -> None:
    schema = {"type": "record", "name": "Demand", "fields": [
        {"name": "price", "type": "double"}, {"name": "region", "type": "string"},
        {"name": "demand", "type": ["null", "double"]}]}
    values = [wire(4, schema, {"price": 1.5, "region": "north", "demand": 41.25}),
              wire(4, schema, {"price": 2.0, "region": "south", "demand": None})]
    registry = StaticRegistry({4: schema})
    field_label = AvroDecoder(for_topic(avro_data(["price", "region", "demand"], "demand",
                                                  categorical=["region"]), uuid.uuid4().hex),
                              "regression", registry=registry)  # type: ignore[arg-type]
    decoded = field_label([b""] * 2, values)
    assert [BAD_REASONS[code - 1] if code else "" for code in decoded.reasons] == \
        ["", "non_numeric"]
    assert decoded.labels.tolist() == [41.25] and decoded.features.tolist() == [[1.5]]
    assert decoded.categories is not None and decoded.categories.tolist() == [["north"]]
    key_label = AvroDecoder(for_topic(avro_data(["price", "region"], "key",
                                                categorical=["region"]), uuid.uuid4().hex),
                            "regression", registry=registry)  # type: ignore[arg-type]
    by_key = key_label([b" 2.5 ", b"x"], values)
    assert by_key.labels.tolist() == [2.5] and by_key.counts() == {"non_numeric": 1}
