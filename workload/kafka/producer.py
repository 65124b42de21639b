"""Write messages into a topic fast, and prove the topic holds exactly what was sent.

Through librdkafka's producer (confluent-kafka): messages are handed over a
partition's share of a chunk at a time (`produce_batch`, one call for
thousands of messages), batched on the wire (`PRODUCER_SETTINGS`) and sent
by librdkafka's own threads, so the Python side only queues. Idempotence is
on, so a retried batch is never written twice, and only failed deliveries
call back into Python. Messages may come in chunks made while the previous
chunk is sent (`produce_chunks`).

Partitions are assigned explicitly, round-robin by message index: the key of
a tutorial record is its label, so Kafka's key hashing would put every
signal row in one partition and every background row in another. After the
final flush each partition's end offset must have grown by exactly the
records sent to it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from workload.kafka.admin import ensure_topic
from workload.kafka.bounds import end_offsets
from workload.kafka.connection import KafkaConnection

PRODUCER_SETTINGS: dict[str, Any] = {
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1 << 20,
    "queue.buffering.max.messages": 1_000_000,
    "compression.type": "lz4",
    "acks": "all",
    "enable.idempotence": True,
    "delivery.report.only.error": True,
}
"""librdkafka producer settings: batches of up to 10,000 messages or 1 MiB, 20 ms to fill one,
lz4 (cheap on CPU, read by every librdkafka and by Kafka itself), every replica acknowledges,
no duplicates on retry, and delivery reports only for failures (no Python call per message)."""

FLUSH_TIMEOUT_S = 60.0
"""Seconds the final flush may take before the run fails."""


class ProduceError(RuntimeError):
    """Records could not be written, or the topic does not hold what was sent."""


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
    seconds: float = 0.0
    """Wall time of sending and flushing."""


class BatchProducer:
    """A librdkafka producer that remembers the first failed delivery."""

    def __init__(self, connection: KafkaConnection,
                 settings: dict[str, Any] | None = None) -> None:
        self.failures: list[str] = []
        self._producer = Producer(connection.librdkafka_config(
            owned={"on_delivery": self._delivered}, defaults={**PRODUCER_SETTINGS,
                                                               **(settings or {})}))

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failures.append(f"{message.topic()}[{message.partition()}]: {error.str()}")

    def send(self, topic: str, key: bytes | None, value: bytes, partition: int = -1,
             headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
        """Queue one message; waits for room when librdkafka's queue is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, partition=partition,
                                       headers=headers)
                return
            except BufferError:
                self._producer.poll(0.05)

    def send_batch(self, topic: str, partition: int,
                   messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Queue `messages` (key, value) for one partition in one call; waits for room."""
        pending = [{"key": key, "value": value} for key, value in messages]
        while pending:
            queued = self._producer.produce_batch(topic, pending, partition=partition)
            if queued == len(pending):
                return
            pending = [message for message in pending if "_error" in message]
            for message in pending:
                del message["_error"]
            self._producer.poll(0.05)

    def serve(self) -> None:
        """Run pending delivery callbacks without waiting."""
        self._producer.poll(0)

    def flush(self, what: str) -> None:
        """Wait until every queued message is acknowledged; `ProduceError` otherwise."""
        left = self._producer.flush(FLUSH_TIMEOUT_S)
        if left:
            raise ProduceError(f"{what}: {left} messages still unacknowledged after "
                               f"{FLUSH_TIMEOUT_S:.0f} s")
        if self.failures:
            raise ProduceError(f"{what}: {len(self.failures)} messages were refused, "
                               f"first: {self.failures[0]}")


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


def produce_messages(
    connection: KafkaConnection,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes]],
    partitions: int = 1,
    progress: bool = False,
) -> TopicReport:
    """Write `(key, value)` messages to `topic`, round-robin over its partitions, and verify.

    The topic is created with `partitions` partitions if missing (an existing
    one must have that many). The run fails with `ProduceError` unless each
    partition's end offset grew by exactly the records sent to it.
    """
    return produce_chunks(connection, topic, [messages], len(messages), partitions, progress)


def produce_chunks(
    connection: KafkaConnection,
    topic: str,
    chunks: Iterable[Sequence[tuple[bytes | None, bytes]]],
    total: int,
    partitions: int = 1,
    progress: bool = False,
) -> TopicReport:
    """`produce_messages` for messages that arrive in chunks (`total` in all), e.g. encoded
    while the previous chunk is sent; message `i` of the whole goes to partition
    `i % partitions`."""
    ensure_topic(connection, topic, partitions)
    before = end_offsets(connection, topic)
    producer = BatchProducer(connection)
    started = time.perf_counter()
    sent = dict.fromkeys(range(partitions), 0)
    written = value_bytes = 0
    with _progress_bar(progress) as bar:
        task = bar.add_task(topic, total=total, rate=0.0) if bar is not None else None
        for chunk in chunks:
            for partition in range(partitions):
                share = chunk[(partition - written) % partitions::partitions]
                producer.send_batch(topic, partition, share)
                sent[partition] += len(share)
            written += len(chunk)
            value_bytes += sum(len(value) for _, value in chunk)
            producer.serve()
            if bar is not None and task is not None:
                rate = written / max(time.perf_counter() - started, 1e-9)
                bar.update(task, completed=written, rate=rate)
        producer.flush(f"topic {topic!r}")
        seconds = time.perf_counter() - started
    if written != total:
        raise ProduceError(f"topic {topic!r}: {written} messages were given, {total} expected")
    after = end_offsets(connection, topic)
    grown = {p: after.get(p, 0) - before.get(p, 0) for p in range(partitions)}
    if grown != sent:
        raise ProduceError(
            f"topic {topic!r}: sent {sent} records per partition, but end offsets grew by {grown}"
        )
    return TopicReport(topic, written, sent, after, value_bytes, seconds)
