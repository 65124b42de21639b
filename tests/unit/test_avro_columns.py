"""Avro bodies into columns: categorical columns read as text from strings, enums, integers,
booleans and integral floats, and their defaults; everything else is not categorical."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from tests.avro_support import wire
from workload.data.avro_columns import Columns, Slot, category_text
from workload.data.avro_schema import parse, record_plan, wanted

SCHEMA = {"type": "record", "name": "Visit", "fields": [
    {"name": "country", "type": "string"},
    {"name": "device", "type": {"type": "enum", "name": "Device", "symbols": ["ios", "web"]}},
    {"name": "plan", "type": ["null", "long", "string"]},
    {"name": "member", "type": "boolean"},
    {"name": "tier", "type": "double"},
    {"name": "spend", "type": "float"}]}

READER = {**SCHEMA, "fields": [*SCHEMA["fields"],
                               {"name": "region", "type": "string", "default": "eu"}]}

COLUMNS = ["country", "device", "plan", "member", "tier", "spend", "region"]
SLOTS: list[Slot] = [("text", 0), ("text", 1), ("text", 2), ("text", 3), ("text", 4),
                     ("number", 0), ("text", 5)]


def decode(records: list[dict[str, Any]]) -> Columns:
    values = [wire(1, SCHEMA, record)[5:] for record in records]
    raw = b"".join([*values, bytes(16)])
    lengths = np.array([len(value) for value in values], np.int64)
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    want = wanted(parse(json.dumps(READER)), [column.split(".") for column in COLUMNS])
    columns = Columns(raw, np.frombuffer(raw, np.uint8), start, start + lengths, SLOTS,
                      record_plan)
    columns.run(parse(json.dumps(SCHEMA)), want, np.arange(len(values)))
    columns.finish()
    return columns


def test_categorical_columns_read_as_text_and_numbers_as_numbers() -> None:
    records = [
        {"country": "Österreich", "device": "web", "plan": 42, "member": True, "tier": 3.0,
         "spend": 1.5},
        {"country": "", "device": "ios", "plan": "gold", "member": False, "tier": -2.0,
         "spend": -0.25},
        {"country": "fr", "device": "web", "plan": None, "member": True, "tier": 2.5,
         "spend": 0.0},
    ]
    got = decode(records)
    assert not got.invalid.any() and not got.not_numeric.any()
    assert got.texts[:2].tolist() == [["Österreich", "web", "42", "true", "3", "eu"],
                                      ["", "ios", "gold", "false", "-2", "eu"]]
    assert got.numbers[:, 0].tolist() == [1.5, -0.25, 0.0]
    assert got.not_categorical.tolist() == [False, False, True]  # a null plan, a 2.5 tier


def test_invalid_utf8_in_a_categorical_string_is_invalid() -> None:
    record = {"country": "ab", "device": "web", "plan": 1, "member": True, "tier": 1.0,
              "spend": 1.0}
    value = wire(1, SCHEMA, record)[5:]
    broken = value.replace(b"ab", b"\xff\xfe")
    raw = b"".join([value, broken, bytes(16)])
    start = np.array([0, len(value)], np.int64)
    want = wanted(parse(json.dumps(READER)), [column.split(".") for column in COLUMNS])
    columns = Columns(raw, np.frombuffer(raw, np.uint8), start, start + len(value), SLOTS,
                      record_plan)
    columns.run(parse(json.dumps(SCHEMA)), want, np.arange(2))
    columns.finish()
    assert columns.invalid.tolist() == [False, True]


def test_a_default_or_value_is_a_category_only_when_it_has_a_text() -> None:
    assert [category_text(value) for value in ("x", 3, True, 2.0, 2.5, None, [1])] == [
        "x", "3", "true", "2", None, None, None]
