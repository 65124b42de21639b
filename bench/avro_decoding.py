"""Avro input throughput, beside CSV's and JSON's, with the Avro decoders this project did not use.

Registers figures with the benchmark harness (imported by
`bench.input_pipeline`), over the benchmark's training rows written as
`streamtrain produce --format avro` writes them (18 `float` fields, the
label in the key) through a local schema registry (Apicurio Registry, started
for the measurement and stopped after it):
- `avro_input_rps`: a one-partition topic on the Kafka 4 broker through train
  mode's reader and decoder, measured as `input_rps` is for CSV (the issue's
  goal: at least `input_rps` in the same run);
- `avro_decode_rps`: the decoder alone on in-memory batches of 8,192 records;
  `avro_junk_decode_rps` the same with 1% of the values junk (a wrong magic
  byte, an id the registry never gave, a body cut short, in turn);
- the baselines, on the same clean batches, each into the same float32
  table: `fastavro_decode_rps`, fastavro's `schemaless_reader` per record
  after the 5-byte header (a dict per record, then the columns picked out),
  with the writer's schema parsed once; `confluent_avro_decode_rps`,
  confluent-kafka's `AvroDeserializer` per record (it reads the header and
  fetches the schema itself, cached after the first record).

`python -m bench.avro_decoding` measures these alone, beside `input_rps`.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.decoding import BATCH_RECORDS, Batches, decode_rate
from bench.harness import TARGETS, BenchContext, Target, best_rate, broker, measurement, report
from localparts import registry as local_registry
from workload.data.decode import make_decoder
from workload.data.schema_registry import SchemaRegistry, registry_access
from workload.datagen.avro_records import schema_text
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.kafka.bounds import partition_bounds
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.modes.train_data import decoded_batches
from workload.spec import DataSpec

JUNK_EVERY = 100
"""One value in this many is junk in `avro_junk_decode_rps` (1%)."""

TARGETS.append(Target("avro_input_rps", "input_rps", 1.0))


def avro_layout(context: BenchContext, url: str) -> DataSpec:
    """The training rows' layout as `streamtrain produce --format avro` writes it."""
    return DataSpec.model_validate({"format": "avro", "columns": list(context.data.columns),
                                    "label": "key", "schemaRegistry": {"url": url}})


@contextmanager
def running_registry() -> Iterator[local_registry.Registry]:
    """A local schema registry for one measurement."""
    started = local_registry.start(Path(tempfile.mkdtemp(prefix="streamtrain-bench-registry-")))
    try:
        yield started
    finally:
        started.stop()


@measurement("Avro through a schema registry, and the Avro decoders not chosen")
def avro_input(context: BenchContext) -> dict[str, float]:
    with running_registry() as started:
        topic = f"{context.topic}-avro"
        data = avro_layout(context, started.url)
        client = SchemaRegistry(registry_access(data.schema_registry))  # type: ignore[arg-type]
        schema_id = client.register(f"{topic}-value", schema_text(data))
        messages = encode(context.data, data, schema_id)
        produce_messages(context.connection, topic, messages)
        offsets = partition_bounds(context.connection, topic)

        def decoded() -> int:
            return sum(len(batch.labels) for _, _, batch in
                       decoded_batches(context.connection, topic, offsets, data))

        batches = [([m.key or b"" for m in messages[i:i + BATCH_RECORDS]],
                    [m.value for m in messages[i:i + BATCH_RECORDS]])
                   for i in range(0, len(messages), BATCH_RECORDS)]
        decoder = make_decoder(data, topic=topic)
        return {
            "avro_input_rps": best_rate(decoded),
            "avro_decode_rps": decode_rate(decoder, batches),
            "avro_junk_decode_rps": decode_rate(decoder, with_junk(batches)),
            "fastavro_decode_rps": decode_rate(fastavro_table(data), batches),
            "confluent_avro_decode_rps": decode_rate(confluent_table(data, started.url, topic),
                                                     batches),
        }


def with_junk(batches: Batches) -> Batches:
    """The same batches with every `JUNK_EVERY`-th value replaced by junk of the next kind."""
    junked: Batches = []
    serial = 0
    for keys, values in batches:
        changed = list(values)
        for index in range(JUNK_EVERY - 1, len(changed), JUNK_EVERY):
            value = changed[index]
            changed[index] = (b"\x01" + value[1:], b"\0\x7f\xff\xff\xff" + value[5:],
                              value[:-3])[serial % 3]
            serial += 1
        junked.append((keys, changed))
    return junked


def fastavro_table(data: DataSpec) -> Callable[[list[bytes], list[bytes]], Any]:
    """fastavro's `schemaless_reader` per record (after the header) into a float32 table."""
    import fastavro

    from workload.datagen.avro_records import schema_of

    schema = fastavro.parse_schema(schema_of(data))
    getter = itemgetter(*data.feature_names)
    reader = fastavro.schemaless_reader

    def decode(_keys: list[bytes], values: list[bytes]) -> Any:
        rows = [getter(reader(io.BytesIO(value[5:]), schema, None)) for value in values]
        return np.array(rows, np.float32)

    return decode


def confluent_table(data: DataSpec, url: str,
                    topic: str) -> Callable[[list[bytes], list[bytes]], Any]:
    """confluent-kafka's `AvroDeserializer` per record into a float32 table."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": url}))
    context = SerializationContext(topic, MessageField.VALUE)
    getter = itemgetter(*data.feature_names)

    def decode(_keys: list[bytes], values: list[bytes]) -> Any:
        return np.array([getter(deserialize(value, context)) for value in values], np.float32)

    return decode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000, help="training records")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument("--output", type=Path, default=Path("bench-avro.json"),
                        help="where to write the JSON figures")
    arguments = parser.parse_args(argv)
    from bench.input_pipeline import fast_input  # the CSV baseline, measured alike

    console = Console()
    with broker(None) as bootstrap:
        connection = KafkaConnection(bootstrap)
        rows = generate(arguments.rows, seed=arguments.seed)
        topic = f"bench-avro-{arguments.seed}"
        messages = encode(rows)
        produce_messages(connection, topic, messages)
        context = BenchContext(connection, connection, rows, messages, topic, topic, 0,
                               arguments.seed, sys.executable)
        for function in (fast_input, avro_input):
            figures = function(context)
            context.figures.update(figures)
            for key, value in figures.items():
                console.print(f"  {key} = {value:,.0f}")
    console.print(str(report(context, console, arguments.output).resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
