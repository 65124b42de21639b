"""Read exact offset ranges of Kafka partitions as (keys, values), one reader per partition.

Two tensorflow-io traps (0.37.1) shape this module:
- `IODataset.from_kafka(topic, partition, start, stop)` ignores `start` (its
  index range is `range(0, stop, 1024)`); the kernels underneath do seek, so
  `io_kafka_readable_read(resource, start, stop)` is called directly. It
  returns a whole `[start, stop)` range as one tensor. Each call seeks (about
  0.2 s), so a caller reads large ranges and splits them into batches.
- `io_kafka_readable_init` is a resource kernel that re-initialises ONE shared
  resource on every call with the same attributes: the eager kernel cache (or
  one node of a `tf.data` function) hands every partition the same consumer,
  so opening partition 1 silently turns partition 0's reader into a second
  reader of partition 1. Each reader here gets its own `shared_name`.

Readers are opened once per run and reused for every chunk (no reconnect).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import tensorflow as tf
from tensorflow_io.python.ops import core_ops

from workload.kafka.connection import KafkaConnection

READER_DEFAULTS = {"fetch.wait.max.ms": "10"}
"""librdkafka settings of the readers unless the job sets them: every read seeks, and a seek
first waits for the fetch in flight, which the broker holds up to `fetch.wait.max.ms` (librdkafka
default 500) at the end of a partition; 10 ms halves the cost of a read."""

SINGLE_RECORD_TIMEOUT_S = 30.0
"""How long a lone first record of a partition may take to arrive through the fallback consumer."""


@dataclass(frozen=True)
class PartitionReader:
    """A librdkafka reader bound to one partition of a topic."""

    topic: str
    partition: int
    resource: tf.Tensor
    connection: KafkaConnection

    @classmethod
    def open(cls, connection: KafkaConnection, topic: str, partition: int) -> PartitionReader:
        """Connect to the partition (its own resource, see the module docstring)."""
        quick = {k: v for k, v in READER_DEFAULTS.items() if k not in connection.settings}
        metadata = connection.librdkafka_pairs(
            {**quick, "bootstrap.servers": connection.bootstrap_servers})
        resource = core_ops.io_kafka_readable_init(
            topic, partition, offset=0, metadata=metadata,
            shared_name=f"streamtrain-{topic}-{partition}-{uuid.uuid4().hex}")
        return cls(topic, partition, resource, connection)

    def read(self, start: int, stop: int, first_offset: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Keys and values of offsets `[start, stop)` (`first_offset`: the partition's first).

        The kernel reads while `last offset + 1 < stop`, starting from
        `start`: a one-record range returns nothing. Such a range is read with
        the record before it (then dropped) or, for a partition's very first
        record, with a plain consumer.
        """
        if stop - start != 1:
            values, keys = core_ops.io_kafka_readable_read(self.resource, start=start, stop=stop)
            return keys, values
        if start > first_offset:
            values, keys = core_ops.io_kafka_readable_read(
                self.resource, start=start - 1, stop=stop)
            return keys[1:], values[1:]
        key, value = self._read_one(start)
        return tf.constant([key]), tf.constant([value])

    def _read_one(self, offset: int) -> tuple[bytes, bytes]:
        from kafka import KafkaConsumer, TopicPartition

        settings = self.connection.kafka_python_settings()
        consumer = KafkaConsumer(enable_auto_commit=False, **settings)
        try:
            where = TopicPartition(self.topic, self.partition)
            consumer.assign([where])
            consumer.seek(where, offset)
            deadline = time.monotonic() + SINGLE_RECORD_TIMEOUT_S
            while time.monotonic() < deadline:
                for record in consumer.poll(timeout_ms=500).get(where, []):
                    if record.offset == offset:
                        return record.key or b"", record.value or b""
            raise TimeoutError(f"{self.topic}/{self.partition}: offset {offset} was not readable")
        finally:
            consumer.close()


def open_readers(connection: KafkaConnection, topic: str,
                 partitions: list[int]) -> dict[int, PartitionReader]:
    """One reader per partition."""
    return {p: PartitionReader.open(connection, topic, p) for p in partitions}
