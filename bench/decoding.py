"""Decoding throughput: JSON against CSV, from Kafka and in memory, and the JSON parsers compared.

Registers figures with the benchmark harness (imported by
`bench.input_pipeline`), over the benchmark's training rows:
- `json_input_rps`: the rows as JSON objects (`{"f0": ..., "f17": ...,
  "label": 0|1}`, a one-partition topic on the Kafka 4 broker) through train
  mode's reader and decoder, measured as `input_rps` is for CSV;
  `reader_rps`: train mode's reader alone on the CSV topic (no decoding),
  what bounds both;
- `csv_decode_rps`, `json_decode_rps`: the decoder alone on in-memory batches
  of 8,192 records; `*_junk_decode_rps` the same with 1% of the records
  malformed (every reason in turn, so nearly every batch holds one);
- `orjson_junk_decode_rps`, `pyarrow_junk_decode_rps`: the JSON parsers this
  project did not choose, on the same junk batches: orjson per record into a
  float32 table (`itemgetter`, type check), and pyarrow's JSON reader on the
  newline-joined batch, falling back to orjson per record when the batch
  holds a bad line. Both only separate good from bad records (no reasons), so
  their figures are an upper bound of what they would do here;
- `pyarrow_csv_decode_rps`, `pyarrow_csv_junk_decode_rps`: pyarrow's CSV
  reader on the newline-joined batch in place of the TensorFlow decoder,
  which it falls back to for a batch the reader refuses (so that reasons stay
  exact). It does not check what the decoder refuses and the reader takes
  (`nan`, `inf`, quoted numbers), so its figures are an upper bound too.

`python -m bench.decoding` measures these figures alone, beside `input_rps`
(the CSV rows through the same reader and decoder, in the same run: the
baseline of `json_input_rps`), on a local Kafka 4 broker it starts and stops.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.harness import (
    TARGETS,
    BenchContext,
    Measurement,
    Target,
    best_rate,
    broker,
    measurement,
    report,
)
from workload.data.decode import make_decoder
from workload.datagen.records import corrupt, encode
from workload.datagen.synthetic import generate
from workload.kafka.bounds import partition_bounds
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.modes.train_data import decoded_batches, record_batches
from workload.spec import DataSpec

BATCH_RECORDS = 8192
"""Records per in-memory batch (what the Kafka reader hands over)."""

JUNK = 0.01
"""Share of malformed records in the `*_junk_*` figures."""

CSV = DataSpec()
JSON = DataSpec.model_validate({
    "format": "json", "columns": [*(f"f{i}" for i in range(18)), "label"], "label": "label"})

TARGETS.extend([
    Target("json_input_rps", "input_rps", 0.5),
    Target("json_input_rps", None, 72_000),  # 30 x the 2.4k of the regular-expression decoder
])

Batches = list[tuple[list[bytes], list[bytes]]]


def in_memory(context: BenchContext, data: DataSpec, junk: float) -> Batches:
    """The training rows laid out as `data` says, `junk` of them malformed, in batches."""
    messages, _ = corrupt(encode(context.data, data), junk, context.seed, data)
    keys = [message.key or b"" for message in messages]
    values = [message.value for message in messages]
    return [(keys[i:i + BATCH_RECORDS], values[i:i + BATCH_RECORDS])
            for i in range(0, len(values), BATCH_RECORDS)]


def decode_rate(decode: Callable[[list[bytes], list[bytes]], Any], batches: Batches) -> float:
    """Records per second of `decode` over every batch (the better of two passes)."""
    def count() -> int:
        for keys, values in batches:
            decode(keys, values)
        return sum(len(values) for _, values in batches)

    return best_rate(count)


@measurement("JSON through train mode's reader and decoder")
def json_input(context: BenchContext) -> dict[str, float]:
    topic = f"{context.topic}-json"
    produce_messages(context.connection, topic, encode(context.data, JSON))
    offsets = partition_bounds(context.connection, topic)

    def decoded() -> int:
        return sum(len(batch.labels) for _, _, batch in
                   decoded_batches(context.connection, topic, offsets, JSON))

    def read() -> int:
        return sum(len(values) for _, values in record_batches(
            context.connection, context.topic, partition_bounds(context.connection, context.topic)))

    return {"json_input_rps": best_rate(decoded), "reader_rps": best_rate(read)}


@measurement("the decoders on in-memory batches")
def in_memory_decoding(context: BenchContext) -> dict[str, float]:
    figures = {}
    for name, data in (("csv", CSV), ("json", JSON)):
        decoder = make_decoder(data)
        figures[f"{name}_decode_rps"] = decode_rate(decoder, in_memory(context, data, 0.0))
        figures[f"{name}_junk_decode_rps"] = decode_rate(decoder, in_memory(context, data, JUNK))
    return figures


@measurement("parsers not chosen: orjson, pyarrow (JSON and CSV)")
def other_parsers(context: BenchContext) -> dict[str, float]:
    batches = in_memory(context, JSON, JUNK)
    csv_reader = pyarrow_csv(CSV)
    return {"orjson_junk_decode_rps": decode_rate(orjson_table(JSON.record_columns), batches),
            "pyarrow_junk_decode_rps": decode_rate(pyarrow_table(JSON.record_columns), batches),
            "pyarrow_csv_decode_rps": decode_rate(csv_reader, in_memory(context, CSV, 0.0)),
            "pyarrow_csv_junk_decode_rps": decode_rate(csv_reader, in_memory(context, CSV, JUNK))}


def orjson_table(columns: Sequence[str]) -> Callable[[list[bytes], list[bytes]], Any]:
    """orjson per record into a float32 table: the whole batch at once, or record by record
    when it holds a bad one."""
    import orjson

    getter = itemgetter(*columns)
    numbers = {int, float}

    def one(value: bytes) -> tuple[Any, ...] | None:
        try:
            row = getter(orjson.loads(value))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        return row if set(map(type, row)) <= numbers else None

    def decode(_keys: list[bytes], values: list[bytes]) -> Any:
        try:
            rows = list(map(getter, map(orjson.loads, values)))
            if not set(map(type, chain.from_iterable(rows))) <= numbers:
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            rows = [row for row in map(one, values) if row is not None]
        table = np.fromiter(chain.from_iterable(rows), np.float64, len(rows) * len(columns))
        return table.reshape(-1, len(columns)).astype(np.float32)

    return decode


def pyarrow_table(columns: Sequence[str]) -> Callable[[list[bytes], list[bytes]], Any]:
    """pyarrow's JSON reader on the newline-joined batch; orjson per record when it fails."""
    import pyarrow as pa
    import pyarrow.json as pa_json

    options = pa_json.ParseOptions(
        explicit_schema=pa.schema([(name, pa.float64()) for name in columns]),
        unexpected_field_behavior="ignore")
    fallback = orjson_table(columns)

    def decode(keys: list[bytes], values: list[bytes]) -> Any:
        joined = b"\n".join(values)
        if joined.count(b"\n") == len(values) - 1 and all(values):
            try:
                table = pa_json.read_json(io.BytesIO(joined), parse_options=options)
                if table.num_rows == len(values) and not any(c.null_count for c in table.columns):
                    return np.stack([c.to_numpy() for c in table.columns], axis=1).astype(
                        np.float32)
            except pa.ArrowInvalid:
                pass
        return fallback(keys, values)

    return decode


def pyarrow_csv(data: DataSpec) -> Callable[[list[bytes], list[bytes]], Any]:
    """pyarrow's CSV reader on the newline-joined batch; the TensorFlow decoder when it fails."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [f"c{i}" for i in range(len(data.record_columns))]
    read = pa_csv.ReadOptions(column_names=names, use_threads=False)
    parse = pa_csv.ParseOptions(quote_char=False)
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float32()))
    fallback = make_decoder(data)

    def decode(keys: list[bytes], values: list[bytes]) -> Any:
        joined = b"\n".join(values)
        if joined.count(b"\n") == len(values) - 1 and all(values) and set(keys) <= {b"0", b"1"}:
            try:
                table = pa_csv.read_csv(io.BytesIO(joined), read_options=read,
                                        parse_options=parse, convert_options=convert)
                if table.num_rows == len(values):
                    return np.stack([c.to_numpy() for c in table.columns], axis=1)
            except pa.ArrowInvalid:
                pass
        return fallback(keys, values)

    return decode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000, help="training records")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--output", type=Path, default=Path("bench-decoding.json"),
                        help="where to write the JSON figures")
    arguments = parser.parse_args(argv)
    from bench.input_pipeline import fast_input  # the CSV baseline, measured alike

    console = Console()
    with broker(None) as bootstrap:
        connection = KafkaConnection(bootstrap)
        rows = generate(arguments.rows, seed=arguments.seed)
        topic = f"bench-decoding-{arguments.seed}"
        messages = encode(rows)
        produce_messages(connection, topic, messages)
        # Only the Kafka 4 broker and the training topic are used here.
        context = BenchContext(connection, connection, rows, messages, topic, topic, 0,
                               arguments.seed, sys.executable)
        rows_measured: list[Measurement] = [fast_input, json_input, in_memory_decoding,
                                            other_parsers]
        for function in rows_measured:
            figures = function(context)
            context.figures.update(figures)
            for key, value in figures.items():
                console.print(f"  {key} = {value:,.0f}")
    console.print(str(report(context, console, arguments.output).resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
