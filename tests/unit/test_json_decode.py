"""The JSON decoder against the standard library's `json`, record by record.

Hypothesis writes JSON text itself (so numbers come in every form JSON
allows: exponents, huge integers, `-0`) for objects with and without the
columns, nested objects where a path expects them or not, values of every
type, unicode and escaped keys, and junk; `expected` reads each record with
`json.loads` (strict: UTF-8, no `NaN`) and says what the decoder must give:
the exact reason (and the first missing column), or the exact float32 values.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workload.data.decode import BAD_REASONS, Decoded, make_decoder
from workload.spec import DataSpec

NESTED_LABEL = DataSpec.model_validate({
    "format": "json", "columns": ["a", "n.x", "n.é", "y"], "label": "y", "maxRecordBytes": 400})
KEY_LABEL = DataSpec.model_validate({
    "format": "json", "columns": ["n.x", "b"], "maxRecordBytes": 400})

Expected = tuple[str, str | None] | tuple[float, list[np.float32]]
"""A bad record's (reason, first missing column), or a good one's (label, features)."""


def _refuse(name: str) -> Any:
    raise ValueError(name)


def expected(key: bytes, value: bytes, data: DataSpec) -> Expected:
    """What the decoder must make of one record, as `json.loads` reads it."""
    if not value.strip(b" \t\n\r"):
        return "empty", None
    if len(value) > data.max_record_bytes:
        return "oversized", None
    try:
        record = json.loads(value.decode("utf-8"), parse_constant=_refuse)
    except (ValueError, RecursionError):
        return "invalid_json", None
    if not isinstance(record, dict):
        return "invalid_json", None
    found: dict[str, Any] = {}
    for column in data.record_columns:
        node: Any = record
        for step in column.split("."):
            if not isinstance(node, dict) or step not in node:
                return "missing_field", column
            node = node[step]
        found[column] = node
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in found.values()):
        return "non_numeric", None
    try:
        with np.errstate(over="ignore"):
            numbers = {column: np.float32(float(v)) for column, v in found.items()}
    except OverflowError:
        return "non_numeric", None
    if not all(np.isfinite(v) for v in numbers.values()):
        return "non_numeric", None
    if data.label == "key":
        if not re.fullmatch(rb"[ \t\n\r]*[01](\.0*)?[ \t\n\r]*", key):
            return "bad_key", None
        label = float(key)
    else:
        label = float(numbers[data.label])
        if label not in (0.0, 1.0):
            return "bad_key", None
    return label, [numbers[name] for name in data.feature_names]


def numbers() -> st.SearchStrategy[str]:
    """JSON number literals of every form, and (rarely) numbers JSON does not allow."""
    valid = st.one_of(
        st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,12})?([eE][+-]?[0-9]{1,3})?",
                      fullmatch=True),
        st.floats(width=32, allow_nan=False, allow_infinity=False).map(repr),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["0", "1", "1.0", "-0", "0.0", "1e0", "10e-1", "2", "1e400", "-1e400",
                         "3.4028236e38", "3.4028235e38", "1" + "0" * 40]),
    )
    invalid = st.sampled_from(["NaN", "-Infinity", "01", "1.", ".5", "+1", "0x10"])
    return st.one_of(*[valid] * 30, invalid)


def keys_text(key: str) -> st.SearchStrategy[str]:
    """A key as JSON text, written plainly or with every non-ASCII character escaped."""
    return st.sampled_from([json.dumps(key, ensure_ascii=False), json.dumps(key)])


def obj(fields: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{name}: {value}" for name, value in fields) + "}"


scalars = st.one_of(numbers(), st.sampled_from(["true", "false", "null"]),
                    st.text(max_size=8).map(json.dumps))
any_json = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    st.lists(st.tuples(st.text(max_size=4).map(json.dumps), inner), max_size=3).map(obj)),
    max_leaves=6)
column_values = st.one_of(*[numbers()] * 7, any_json)


@st.composite
def field_of(draw: st.DrawFn, name: str, value: st.SearchStrategy[str]) -> list[tuple[str, str]]:
    """The field `name` with a value, or (sometimes) no such field."""
    if not draw(st.sampled_from([True] * 19 + [False])):
        return []
    return [(draw(keys_text(name)), draw(value))]


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A record for either spec: an object with (most of) the columns, or junk."""
    inner = draw(field_of("x", column_values)) + draw(field_of("é", column_values))
    nested = st.one_of(st.just(obj(inner)), any_json) if draw(st.booleans()) else st.just(
        obj(inner))
    fields = (draw(field_of("a", column_values)) + draw(field_of("n", nested))
              + draw(field_of("b", column_values))
              + draw(field_of("y", st.one_of(st.sampled_from(["0", "1", "1.0", "0e5"]),
                                              column_values)))
              + draw(st.lists(st.tuples(st.text(max_size=4).map(json.dumps), any_json),
                              max_size=2)))
    fields = draw(st.permutations(fields))
    text = draw(st.sampled_from(["", "", " ", "\n"])) + obj(fields) + draw(
        st.sampled_from([""] * 12 + [" ", "\t\r\n", " x", "}"]))
    value = text.encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["object"] * 15 + ["bytes", "cut", "not utf-8", "other",
                                                  "not utf-8 in a string"]))
    bad_utf8 = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"]))
    if kind == "not utf-8 in a string":  # JSON text must be UTF-8, also where nobody reads
        marked = obj([*fields, ('"z"', '"\x00"')]).encode("utf-8", "surrogatepass")
        return marked.replace(b"\x00", bad_utf8)
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind == "cut":
        return value[:draw(st.integers(0, len(value)))]
    if kind == "not utf-8":
        at = draw(st.integers(0, len(value)))
        return value[:at] + bad_utf8 + value[at:]
    if kind == "other":
        return draw(st.sampled_from([b"[1, 2, 3]", b"1", b'"x"', b"null", b"  ", b"", b"{}"]))
    return value


def names(decoded: Decoded) -> list[str]:
    return [BAD_REASONS[code - 1] if code else "" for code in decoded.reasons.tolist()]


def check(data: DataSpec, batch: list[tuple[bytes, bytes]]) -> None:
    keys = [key for key, _ in batch]
    values = [value for _, value in batch]
    decoded = make_decoder(data)(keys, values)
    wanted = [expected(key, value, data) for key, value in batch]
    good = [w for w in wanted if isinstance(w[0], float)]
    assert names(decoded) == [w[0] if isinstance(w[0], str) else "" for w in wanted]
    assert decoded.missing == {index: w[1] for index, w in enumerate(wanted)
                               if w[0] == "missing_field"}
    width = len(data.feature_names)
    assert decoded.features.dtype == np.float32 and decoded.labels.dtype == np.float32
    np.testing.assert_array_equal(
        decoded.features, np.array([w[1] for w in good], np.float32).reshape(-1, width))
    np.testing.assert_array_equal(decoded.labels, np.array([w[0] for w in good], np.float32))


LABEL_KEYS = st.sampled_from([b"0", b"1", b"1", b" 1 ", b"0.00", b"2", b"", b"x", b"1e0"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.just(b""), records()), max_size=12))
def test_json_with_a_label_field_decodes_as_json_reads_it(batch: list[tuple[bytes, bytes]]) -> None:
    check(NESTED_LABEL, batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(LABEL_KEYS, records()), max_size=12))
def test_json_with_the_label_in_the_key_decodes_as_json_reads_it(
        batch: list[tuple[bytes, bytes]]) -> None:
    check(KEY_LABEL, batch)


def test_a_clean_batch_and_the_same_batch_with_junk_agree_on_the_good_records() -> None:
    good = [b'{"a": %d.5, "n": {"x": 1e%d, "\\u00e9": -%d}, "y": %d}' % (i, i % 30, i, i % 2)
            for i in range(200)]
    junk = [b"{not json", b"", b'{"a": 1}']
    clean = make_decoder(NESTED_LABEL)([b""] * len(good), good)
    mixed = make_decoder(NESTED_LABEL)([b""] * (len(good) + 3), good[:100] + junk + good[100:])
    assert clean.reasons.sum() == 0
    np.testing.assert_array_equal(clean.features, mixed.features)
    np.testing.assert_array_equal(clean.labels, mixed.labels)
    assert mixed.counts() == {"invalid_json": 1, "empty": 1, "missing_field": 1}
    assert mixed.missing == {102: "n.x"}
