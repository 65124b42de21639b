"""Read exact offset ranges of Kafka partitions as batches of (keys, values), one reader per partition.

Two tensorflow-io traps (0.37.1) shape this module:
- `IODataset.from_kafka(topic, partition, start, stop)` ignores `start` (its
  index range is `range(0, stop, 1024)`); the kernels underneath do seek, so
  `io_kafka_readable_read(resource, start, stop)` is called directly. It
  returns a whole `[start, stop)` range as one batch: the fast path.
- `io_kafka_readable_init` is a resource kernel that re-initialises ONE shared
  resource on every call with the same attributes: the eager kernel cache (or
  one node of a `tf.data` function) hands every partition the same consumer,
  so opening partition 1 silently turns partition 0's reader into a second
  reader of partition 1. Each reader here gets its own `shared_name`.

Readers are opened once per run and reused for every chunk (no reconnect).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import tensorflow as tf
from tensorflow_io.python.ops import core_ops

from workload.kafka_connection import KafkaConnection


@dataclass(frozen=True)
class PartitionReader:
    """A librdkafka reader bound to one partition of a topic."""

    topic: str
    partition: int
    resource: tf.Tensor

    @classmethod
    def open(cls, connection: KafkaConnection, topic: str, partition: int) -> PartitionReader:
        """Connect to the partition (its own resource, see the module docstring)."""
        metadata = connection.librdkafka_pairs({"bootstrap.servers": connection.bootstrap_servers})
        resource = core_ops.io_kafka_readable_init(
            topic, partition, offset=0, metadata=metadata,
            shared_name=f"streamtrain-{topic}-{partition}-{uuid.uuid4().hex}")
        # Resolves the partition's watermarks inside the reader (needed before reads).
        core_ops.io_kafka_readable_spec(resource, 0, -1)
        return cls(topic, partition, resource)

    def batches(self, start: int, stop: int, batch_size: int) -> tf.data.Dataset:
        """Batches of (keys, values) string tensors covering offsets `[start, stop)` in order."""
        resource = self.resource

        def read(first: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            last = tf.minimum(first + batch_size, stop)
            values, keys = core_ops.io_kafka_readable_read(resource, start=first, stop=last)
            return keys, values

        return tf.data.Dataset.range(start, stop, batch_size).map(read)


def open_readers(connection: KafkaConnection, topic: str,
                 partitions: list[int]) -> dict[int, PartitionReader]:
    """One reader per partition."""
    return {p: PartitionReader.open(connection, topic, p) for p in partitions}


def ranges_dataset(readers: dict[int, PartitionReader], ranges: dict[int, tuple[int, int]],
                   batch_size: int) -> tf.data.Dataset:
    """(keys, values) batches of every partition's `[start, stop)` range, partition by partition."""
    datasets = [readers[p].batches(start, stop, batch_size)
                for p, (start, stop) in sorted(ranges.items()) if stop > start]
    if not datasets:
        empty = tf.constant([], tf.string)
        return tf.data.Dataset.from_tensors((empty, empty)).take(0)
    combined = datasets[0]
    for dataset in datasets[1:]:
        combined = combined.concatenate(dataset)
    return combined
