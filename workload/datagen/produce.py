"""Write a data set into a train topic and a test topic: what `streamtrain produce` does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from workload.datagen.records import Message, encode
from workload.datagen.table import SusyData, split
from workload.kafka.admin import delete_topic, ensure_topic
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import TopicReport, produce_chunks
from workload.spec import DataSpec

CHUNK_ROWS = 20_000
"""Rows encoded and handed to the producer at a time."""


@dataclass(frozen=True)
class ProduceReport:
    """What `produce_split` wrote, and how fast."""

    train: TopicReport
    test: TopicReport
    seconds: float
    """Wall time from the first encoded row to the verified end offsets."""

    @property
    def records(self) -> int:
        """Records written to both topics."""
        return self.train.records + self.test.records

    @property
    def records_per_second(self) -> float:
        """Records written per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


def produce_split(
    connection: KafkaConnection,
    train_topic: str,
    test_topic: str,
    data: SusyData,
    *,
    train_rows: int = 60_000,
    train_partitions: int = 1,
    test_partitions: int = 2,
    data_spec: DataSpec | None = None,
    progress: bool = True,
    recreate: bool = False,
) -> ProduceReport:
    """Write the first `train_rows` rows to `train_topic` and the rest to `test_topic`.

    Defaults follow TensorFlow's Kafka tutorial: CSV values with the label as
    the key, 1 train partition, 2 test partitions. Both topics are created if
    missing; an existing topic with another partition count raises
    `TopicLayoutError` before anything is written. Rows are appended to
    whatever the topics already hold, unless `recreate` deletes both topics
    first (so a re-run leaves exactly this split, in the requested layout).
    """
    spec = data_spec or DataSpec()
    train, test = split(data, train_rows)
    started = time.perf_counter()
    if recreate:
        delete_topic(connection, train_topic)
        delete_topic(connection, test_topic)
    ensure_topic(connection, train_topic, train_partitions)
    ensure_topic(connection, test_topic, test_partitions)
    train_id, test_id = (register_schemas(spec, train_topic, test_topic)
                         if spec.format == "avro" else (None, None))
    train_report = produce_chunks(connection, train_topic, encoded_chunks(train, spec,
                                                                          schema_id=train_id),
                                  train.rows, train_partitions, progress)
    test_report = produce_chunks(connection, test_topic, encoded_chunks(test, spec,
                                                                        schema_id=test_id),
                                 test.rows, test_partitions, progress)
    return ProduceReport(train_report, test_report, time.perf_counter() - started)


def register_schemas(spec: DataSpec, *topics: str) -> tuple[int, ...]:
    """Register the layout's Avro schema under each topic's subject (`<topic>-value`); the ids
    its values carry, in the same order."""
    from workload.data.schema_registry import SchemaRegistry, registry_access
    from workload.datagen.avro_records import schema_text

    assert spec.schema_registry is not None
    registry = SchemaRegistry(registry_access(spec.schema_registry))
    text = schema_text(spec)
    return tuple(registry.register(f"{topic}-value", text) for topic in topics)


def encoded_chunks(data: SusyData, spec: DataSpec, rows: int = CHUNK_ROWS,
                   schema_id: int | None = None) -> Iterator[list[Message]]:
    """`data` as messages, `rows` at a time; the next chunk is encoded (in a thread: Arrow's
    kernels and numpy release the GIL) while the caller sends the current one."""
    starts = range(0, data.rows, rows)
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = [pool.submit(encode, data.slice(start, min(start + rows, data.rows)), spec,
                                schema_id) for start in starts[:2]]
        for index in range(len(starts)):
            chunk = upcoming.pop(0).result()
            if index + 2 < len(starts):
                start = starts[index + 2]
                upcoming.append(pool.submit(encode, data.slice(start, min(start + rows,
                                                                          data.rows)), spec,
                                            schema_id))
            yield chunk
