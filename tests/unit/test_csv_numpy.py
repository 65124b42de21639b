"""The CSV decoder without TensorFlow gives what the TensorFlow one gives, record for record."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import numpy as np  # noqa: E402
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from workload.data.csv_decode import CsvDecoder  # noqa: E402
from workload.data.csv_numpy import NumpyCsvDecoder  # noqa: E402
from workload.data.decoded import REASON_CODES  # noqa: E402
from workload.spec import DataSpec  # noqa: E402

LAYOUTS = [DataSpec.model_validate({"features": 3, "max_record_bytes": 40}),
           DataSpec.model_validate({"columns": ["y", "a", "b"], "label": "y"}),
           DataSpec.model_validate({"columns": ["a", "c", "b"], "categorical": ["c"],
                                    "max_record_bytes": 40}),
           DataSpec.model_validate({"columns": ["c", "y", "d", "a"], "label": "y",
                                    "categorical": ["c", "d"]}),
           DataSpec.model_validate({"columns": ["c"], "categorical": ["c"]})]
"""Numbers only (label key, label column), and categorical columns among them or alone."""

DECODERS = {id(data): (CsvDecoder(data), NumpyCsvDecoder(data)) for data in LAYOUTS}
"""Each layout's two decoders, made once (the TensorFlow one traces its function)."""

FIELDS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["1", "-2.5", "x", "", " ", "1e", ".", "+", "1e-3", " 7 ", "\t3", "0",
                     "1.0", "2", "1e39", "-1e400", "nan", "inf", "0x1", "1_000", "٣", " web ",
                     "é", '"q"', "a\x0b", "\x00", "\x0c b", "x y"]),
)
RECORDS = st.one_of(st.lists(FIELDS, max_size=5).map(lambda fields: ",".join(fields).encode()),
                    st.binary(max_size=40),
                    st.sampled_from([b"\x0b1,2,3", b"1,2,3\x0b", b"\x001,2,3", b"1,2,\xff3",
                                     b"1,\xff\xfe,3", b"\xc3\xa9", b" \t ", b"1,\"a\",2",
                                     b"x,1,y,2", b"x,1,\"y\",2"]))
KEYS = st.one_of(st.sampled_from([b"0", b"1", b" 1 ", b"1.0", b"2", b"", b"x"]),
                 st.binary(max_size=3))


@example([(b"0", b"1.401298464324817e-45,0.0,0.0")], LAYOUTS[1])  # a subnormal label is 0
@example([(b"0", b""), (b"1", b" \t")], LAYOUTS[4])  # one text column: blank is empty
@example([(b"2", b'"\x80'), (b"0", b'a\x80"')], LAYOUTS[4])  # a quote beside invalid UTF-8
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(KEYS, RECORDS), max_size=16), st.sampled_from(LAYOUTS))
def test_the_numpy_csv_decoder_agrees_with_the_tensorflow_one(
        records: list[tuple[bytes, bytes]], data: DataSpec) -> None:
    keys = [key for key, _ in records]
    values = [value for _, value in records]
    tensorflow, numpy = DECODERS[id(data)]
    expected, found = tensorflow(keys, values), numpy(keys, values)
    np.testing.assert_array_equal(found.reasons, expected.reasons)
    # TensorFlow shapes an empty table of no column [1, 0]; the good records are the rows.
    np.testing.assert_array_equal(found.features.reshape(-1), expected.features.reshape(-1))
    np.testing.assert_array_equal(found.labels, expected.labels)
    assert found.features.dtype == np.float32
    assert found.features.shape == (int(found.good.sum()), len(data.numeric_names))
    assert found.category_table.tolist() == expected.category_table.tolist()


NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
                    st.sampled_from(["1", "-2.5", " 7 ", "\t3", "+.5", "1.e5", "5.", "1E-3",
                                     "\n1", "1e39", "0"]))
CLEAN = st.lists(NUMBERS, min_size=3, max_size=3).map(lambda fields: ",".join(fields).encode())
"""Records of three numbers, as a clean batch holds them (parsed whole, in one conversion)."""
ALMOST = st.sampled_from([b"1,2,1e", b"1,2,nan", b"1,2,1_0", b"1,2,\x0b3", b"1,,3", b" , , ",
                          b"1,2", b"1,2,3,4", b"-,1,2", b"1 2,3,4"])
"""Records a clean-looking batch may hide, that the whole-batch conversion must not accept."""


@settings(max_examples=150, deadline=None)
@given(st.lists(CLEAN, min_size=1, max_size=16), st.lists(ALMOST, max_size=1),
       st.sampled_from([b"0", b"1"]))
def test_a_batch_parsed_whole_agrees_with_the_tensorflow_decoder_too(
        clean: list[bytes], almost: list[bytes], key: bytes) -> None:
    values = [*clean, *almost]
    keys = [key] * len(values)
    tensorflow, numpy = DECODERS[id(LAYOUTS[0])]
    expected, found = tensorflow(keys, values), numpy(keys, values)
    np.testing.assert_array_equal(found.reasons, expected.reasons)
    np.testing.assert_array_equal(found.features, expected.features)
    np.testing.assert_array_equal(found.labels, expected.labels)


def test_a_clean_batch_is_parsed_whole() -> None:
    decoded = NumpyCsvDecoder(LAYOUTS[0])([b"0", b"1"], [b"1,2,3", b" 1.5 , -2e3,.5"])
    np.testing.assert_array_equal(decoded.features, [[1, 2, 3], [1.5, -2000, 0.5]])
    np.testing.assert_array_equal(decoded.labels, [0, 1])


def test_categories_are_kept_as_stripped_text_beside_the_numbers() -> None:
    data = DataSpec.model_validate({"columns": ["a", "channel", "b"], "categorical": ["channel"]})
    decoded = NumpyCsvDecoder(data)([b"1", b"0", b"1", b"0"],
                                    [b"1, web ,2", b'3,"x",4', b"5,caf\xc3\xa9,x", b"7,,8"])
    assert decoded.reasons.tolist() == [0, REASON_CODES["non_categorical"],
                                        REASON_CODES["non_numeric"], 0]
    np.testing.assert_array_equal(decoded.features, [[1, 2], [7, 8]])
    assert decoded.category_table.tolist() == [["web"], [""]]
