"""Write rows into Kafka topics: a train/test split (`streamtrain produce`) or any messages.

The key of a tutorial record is its label, so Kafka's default key hashing
would put every signal row in one partition and every background row in
another. Partitions are therefore assigned explicitly, round-robin by row
index, which keeps each partition a fair sample of the data.

Sending is batched (large batches, a short linger) and gzip-compressed, a
codec both kafka-python and the librdkafka 1.5.0 inside tensorflow-io read.
After the final flush the topics' end offsets are checked against the
number of records sent to each partition.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from workload.data.records import Message, encode
from workload.data.table import SusyData, split
from workload.kafka_connection import KafkaConnection
from workload.spec import DataSpec

PRODUCER_SETTINGS: dict[str, Any] = {
    "compression_type": "gzip",
    "batch_size": 256 << 10,
    "linger_ms": 50,
    "acks": "all",
    "max_request_size": 8 << 20,
}
"""kafka-python producer settings: 256 KiB batches, 50 ms to fill one, gzip, all replicas ack."""

METADATA_TIMEOUT_S = 30.0
"""Seconds to wait for a new topic's partitions to show up in the cluster metadata."""

PROGRESS_EVERY = 2000
"""Records between progress-bar refreshes (refreshing per record would cost more than sending)."""


class ProduceError(RuntimeError):
    """Records could not be written, or the topic does not hold what was sent."""


class TopicLayoutError(ValueError):
    """A topic exists with a different number of partitions than requested."""


@dataclass(frozen=True)
class TopicReport:
    """What one run wrote to one topic."""

    topic: str
    records: int
    """Records sent by this run."""
    per_partition: dict[int, int]
    """Records sent by this run, by partition."""
    end_offsets: dict[int, int]
    """Each partition's end offset after the run (records held, including earlier runs')."""
    value_bytes: int
    """Sum of the message values' sizes, before compression."""


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


def _admin(connection: KafkaConnection) -> KafkaAdminClient:
    return KafkaAdminClient(**connection.kafka_python_settings())


def _partition_count(admin: KafkaAdminClient, topic: str) -> int | None:
    """The topic's partition count, or None if it does not exist."""
    description = admin.describe_topics([topic])[0]
    if description.get("error_code", 0) != 0:
        return None
    return len(description["partitions"])


def ensure_topic(
    connection: KafkaConnection, topic: str, partitions: int, replication_factor: int = -1
) -> bool:
    """Create `topic` with `partitions` partitions unless it exists; True when it was created.

    An existing topic with another partition count raises `TopicLayoutError`,
    since rows would then land in partitions nobody reads (or skew them).
    `replication_factor` -1 uses the broker's default.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    admin = _admin(connection)
    try:
        try:
            admin.create_topics([NewTopic(topic, partitions, replication_factor)])
            return True
        except TopicAlreadyExistsError:
            existing = _partition_count(admin, topic)
            if existing is not None and existing != partitions:
                raise TopicLayoutError(
                    f"topic {topic!r} already exists with {existing} partition(s), but "
                    f"{partitions} were requested; use {existing} or delete the topic first"
                ) from None
            return False
    finally:
        admin.close()


def delete_topic(connection: KafkaConnection, topic: str) -> bool:
    """Delete `topic` and wait until the cluster no longer knows it; True if it existed."""
    admin = _admin(connection)
    try:
        try:
            admin.delete_topics([topic])
        except UnknownTopicOrPartitionError:
            return False
        deadline = time.monotonic() + METADATA_TIMEOUT_S
        while _partition_count(admin, topic) is not None:
            if time.monotonic() > deadline:
                raise ProduceError(f"topic {topic!r} still exists {METADATA_TIMEOUT_S:.0f} s "
                                   "after it was deleted")
            time.sleep(0.1)
        return True
    finally:
        admin.close()


def end_offsets(connection: KafkaConnection, topic: str) -> dict[int, int]:
    """Each partition's end offset: the records it holds (no retention or compaction assumed)."""
    consumer = KafkaConsumer(**connection.kafka_python_settings())
    try:
        ids = consumer.partitions_for_topic(topic) or set()
        offsets = consumer.end_offsets([TopicPartition(topic, p) for p in ids])
        return {tp.partition: int(offset) for tp, offset in offsets.items()}
    finally:
        consumer.close()


def _wait_for_partitions(producer: KafkaProducer, topic: str, expected: int) -> None:
    """Block until the producer's metadata knows all `expected` partitions of a topic."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while True:
        known = producer.partitions_for(topic) or set()
        if len(known) >= expected:
            return
        if time.monotonic() > deadline:
            raise ProduceError(f"topic {topic!r}: {len(known)} of {expected} partitions visible")
        time.sleep(0.1)


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TextColumn("{task.fields[rate]:>9,.0f} records/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield progress


def _send_all(
    connection: KafkaConnection,
    topic: str,
    messages: Sequence[Message],
    partitions: int,
    progress: Progress | None,
) -> dict[int, int]:
    """Send round-robin over `partitions`, flush, and return the count sent per partition."""
    failures: list[BaseException] = []
    producer = KafkaProducer(**connection.kafka_python_settings(), **PRODUCER_SETTINGS)
    task = progress.add_task(topic, total=len(messages), rate=0.0) if progress else None
    started = time.perf_counter()
    try:
        _wait_for_partitions(producer, topic, partitions)
        for index, (key, value) in enumerate(messages):
            future = producer.send(topic, value=value, key=key, partition=index % partitions)
            future.add_errback(failures.append)
            if index % PROGRESS_EVERY == 0 and progress is not None and task is not None:
                rate = index / max(time.perf_counter() - started, 1e-9)
                progress.update(task, completed=index, rate=rate)
        producer.flush()
    finally:
        producer.close()
    if progress is not None and task is not None:
        rate = len(messages) / max(time.perf_counter() - started, 1e-9)
        progress.update(task, completed=len(messages), rate=rate)
    if failures:
        raise ProduceError(f"topic {topic!r}: sending failed: {failures[0]}")
    return {p: len(range(p, len(messages), partitions)) for p in range(partitions)}


def produce_messages(
    connection: KafkaConnection,
    topic: str,
    messages: Sequence[Message],
    partitions: int = 1,
    progress: bool = False,
) -> TopicReport:
    """Write `(key, value)` messages to `topic`, round-robin over its partitions, and verify.

    The topic is created with `partitions` partitions if missing (an existing
    one must have that many). The run fails with `ProduceError` unless each
    partition's end offset grew by exactly the records sent to it.
    """
    ensure_topic(connection, topic, partitions)
    before = end_offsets(connection, topic)
    with _progress_bar(progress) as bar:
        sent = _send_all(connection, topic, messages, partitions, bar)
    after = end_offsets(connection, topic)
    grown = {p: after.get(p, 0) - before.get(p, 0) for p in range(partitions)}
    if grown != sent:
        raise ProduceError(
            f"topic {topic!r}: sent {sent} records per partition, but end offsets grew by {grown}"
        )
    return TopicReport(topic, len(messages), sent, after, sum(len(m.value) for m in messages))


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
    train_report = produce_messages(
        connection, train_topic, encode(train, spec), train_partitions, progress)
    test_report = produce_messages(
        connection, test_topic, encode(test, spec), test_partitions, progress)
    return ProduceReport(train_report, test_report, time.perf_counter() - started)
