"""tensorflow-io's Kafka datasets, for `client: tensorflow-io` (Kafka 3.x) and the tutorial's path.

tensorflow-io 0.37.1 is its last release and bundles librdkafka 1.5.0, which
cannot read Kafka 4 (KIP-896 removed protocol versions it needs): the default
client is librdkafka 2.x (`workload.kafka.ranges`, `group_reader`); these
readers serve clusters still on Kafka 3.x, and the tutorial's own reader is
kept as the benchmark's baseline.

Training replays every partition of a topic between the offsets captured at
start. TensorFlow's Kafka tutorial reads partition 0 only, one record per
dataset element, and decodes record by record; here each partition is read
sequentially by its own consumer, 1,024 records per tensorflow-io op (so
records arrive already batched, ready for the batch decoder), partitions one
after another (the same order as the librdkafka reader), and the next
batches are prefetched.

tensorflow-io traps this module avoids (tensorflow-io 0.37.1):
- `IODataset.from_kafka(topic, partition, start, stop, ...)` ignores `start`:
  it always reads from offset 0 (its index range is `range(0, stop, 1024)`),
  and it swallows unknown keyword arguments (the tutorial's `offset=0`).
- Its read op (`io_kafka_readable_read`) seeks before every chunk, which
  throws away librdkafka's prefetched records and waits for a new fetch; it
  also returns nothing for a one-record range. So ranges are read with the
  sequential op (`io_kafka_readable_next`, no seek) from a consumer assigned
  at the range's start, and the last batch is cut at the range's end.
- Every reader op without a distinct `shared_name` returns one cached
  resource, re-initialised by each use: two partitions (or two datasets)
  would read each other's records. Each partition's reader gets its own name,
  and is re-created at the start of every iteration (an epoch without cache).
- A read that returns fewer records than its offset range holds (broker gone,
  records deleted by retention) would silently shorten the epoch: each batch's
  size is checked, and a short batch fails the pipeline with the partition and
  offsets named.
- The consumer-group datasets return 0 records without an error when a poll
  times out before the group join completes: `message_poll_timeout_ms` below
  is chosen longer than a join can take.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_io as tfio
from tensorflow_io.python.ops import core_ops

from workload.kafka.connection import KafkaConnection
from workload.kafka.ranges import KafkaReadError
from workload.spec import FOREVER

NEXT_RECORDS = 1024
"""Records one `io_kafka_readable_next` op returns (fixed by tensorflow-io) unless at the end."""

DEFAULT_READ_BATCH = 8192
"""Records per batch handed to decoding (a multiple of `NEXT_RECORDS`)."""

REPLAY_SETTINGS = {"fetch.wait.max.ms": "10"}
"""librdkafka settings for replays, unless the job sets them: the broker answers a fetch
after at most 10 ms instead of librdkafka's 100 ms (measured: 60,000 records in 1.3 s with
the default, 0.55 s with 10 ms)."""

DEFAULT_SESSION_TIMEOUT_MS = 10_000
"""librdkafka 1.5's `session.timeout.ms` default (the client tensorflow-io bundles)."""

JOIN_MARGIN_MS = 2_000
"""Added to the session timeout: a join waits up to one session timeout for a departed member."""





def replay_dataset(
    connection: KafkaConnection,
    topic: str,
    offsets: Mapping[int, tuple[int, int]],
    read_batch: int = DEFAULT_READ_BATCH,
) -> tf.data.Dataset:
    """Raw `(keys, values)` batches (1-D strings, ≤ `read_batch` each) of every partition's range.

    Partitions are read one after another, in id order: every run of the
    same ranges yields the same records in the same order (as the librdkafka
    reader does), which lets a resumed trainer skip exactly the batches it
    has trained. Every iteration (epoch)
    reads anew. Raises `KafkaReadError` now when the ranges hold no record,
    and the dataset fails with `tf.errors.InvalidArgumentError` when a read
    comes back short.
    """
    ranges = sorted((p, start, stop) for p, (start, stop) in offsets.items() if stop > start)
    if not ranges:
        raise KafkaReadError(f"topic {topic!r} has no records in offsets {dict(offsets)}")
    configuration = _replay_configuration(connection)
    readers = [
        _partition_batches(topic, partition, start, stop, configuration)
        for partition, start, stop in ranges
    ]
    merged = readers[0]
    for reader in readers[1:]:
        merged = merged.concatenate(reader)
    if read_batch != NEXT_RECORDS:
        merged = merged.rebatch(read_batch)
    return merged.prefetch(tf.data.AUTOTUNE)


def _replay_configuration(connection: KafkaConnection) -> list[str]:
    """librdkafka settings of a range reader: the job's, over `REPLAY_SETTINGS`."""
    settings = {**REPLAY_SETTINGS, **connection.settings}
    return [
        *KafkaConnection(connection.bootstrap_servers, settings).librdkafka_pairs(),
        f"bootstrap.servers={connection.bootstrap_servers}",
    ]


def _partition_batches(
    topic: str, partition: int, start: int, stop: int, configuration: list[str]
) -> tf.data.Dataset:
    """`(keys, values)` batches of one partition's range, read in order by a reader of its own."""
    shared_name = f"streamtrain-replay-{uuid.uuid4().hex}"
    calls = -(-(stop - start) // NEXT_RECORDS)

    def read(_: tf.Tensor) -> tf.data.Dataset:
        # Created per iteration: the reader drops its consumer at the end of the partition.
        resource = core_ops.io_kafka_readable_init(
            topic, tf.constant(partition, tf.int32), offset=tf.constant(start, tf.int64),
            metadata=configuration, shared_name=shared_name)

        def next_batch(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            first = start + index * NEXT_RECORDS
            wanted = tf.minimum(tf.constant(NEXT_RECORDS, tf.int64), stop - first)
            batch = core_ops.io_kafka_readable_next(resource, index)
            keys, values = batch.key[:wanted], batch.message[:wanted]
            got = tf.shape(values, out_type=tf.int64)[0]
            check = tf.debugging.Assert(
                tf.equal(got, wanted),
                [f"short read from Kafka topic {topic!r} partition {partition}: from offset",
                 first, "expected", wanted, "records, read", got])
            with tf.control_dependencies([check]):
                return tf.identity(keys), tf.identity(values)

        return tf.data.Dataset.range(calls).map(next_batch)

    return tf.data.Dataset.range(1).flat_map(read)


def tutorial_dataset(connection: KafkaConnection, topic: str) -> tf.data.Dataset:
    """The tutorial's reader, for comparison: `from_kafka` on partition 0, one record a step."""
    return tfio.IODataset.from_kafka(
        topic, partition=0, servers=connection.bootstrap_servers,
        configuration=connection.librdkafka_pairs())


def poll_timeout_ms(connection: KafkaConnection) -> int:
    """A `message_poll_timeout` no group join outlasts (a shorter one reads 0 records, no error)."""
    session = int(connection.settings.get("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS))
    return session + JOIN_MARGIN_MS


def group_configuration(
    connection: KafkaConnection, extra: Mapping[str, str] | None = None
) -> list[str]:
    """librdkafka `k=v` settings for a consumer group that starts at the earliest record."""
    return connection.librdkafka_pairs({
        "auto.offset.reset": "earliest",
        **(extra or {}),
    })


NO_READ_AHEAD = tf.data.Options()
NO_READ_AHEAD.experimental_optimization.inject_prefetch = False
"""tf.data options for the consumer-group readers: tf.data would otherwise add a prefetch
after their last step, polling the next records (and letting librdkafka commit them) before
the caller has taken the current ones; a caller that stops would lose what was read ahead."""

IDLE_FOREVER_MS = 2**31 - 1
"""What `-1` (forever) becomes for tensorflow-io's group readers: they turn -1 into
`sys.maxsize` and then end at once with 0 records, so "forever" is 24.8 days without a record."""


def _group_reader(
    reader: Any,
    connection: KafkaConnection,
    topic: str,
    group: str,
    stream_timeout_ms: int,
    message_poll_timeout_ms: int | None,
    extra: Mapping[str, str] | None,
) -> tf.data.Dataset:
    if stream_timeout_ms < FOREVER:
        raise ValueError(f"stream_timeout_ms must be -1 (forever) or ≥ 0, got {stream_timeout_ms}")
    dataset: tf.data.Dataset = reader(
        topics=[topic],
        group_id=group,
        servers=connection.bootstrap_servers,
        stream_timeout=IDLE_FOREVER_MS if stream_timeout_ms == FOREVER else stream_timeout_ms,
        message_poll_timeout=message_poll_timeout_ms or poll_timeout_ms(connection),
        configuration=group_configuration(connection, extra),
    )
    return dataset.with_options(NO_READ_AHEAD)


def batch_stream(
    connection: KafkaConnection,
    topic: str,
    group: str,
    stream_timeout_ms: int,
    message_poll_timeout_ms: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> tf.data.Dataset:
    """`KafkaBatchIODataset`: one small dataset of `(message, key)` records per poll.

    `stream_timeout_ms` is how long to wait for new records before ending
    (`-1` = forever). Use each element as `mini.batch(n)` to get raw batches
    for the batch decoder (`workload.data.decode`).
    """
    return _group_reader(tfio.experimental.streaming.KafkaBatchIODataset, connection, topic,
                         group, stream_timeout_ms, message_poll_timeout_ms, extra)


def group_stream(
    connection: KafkaConnection,
    topic: str,
    group: str,
    stream_timeout_ms: int,
    message_poll_timeout_ms: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> tf.data.Dataset:
    """`KafkaGroupIODataset`: `(message, key)` records of a consumer group, one per element.

    Ends `stream_timeout_ms` after the last record (`-1` = never).
    """
    return _group_reader(tfio.experimental.streaming.KafkaGroupIODataset, connection, topic,
                         group, stream_timeout_ms, message_poll_timeout_ms, extra)
