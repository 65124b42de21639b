"""Topic administration: create a topic in the layout a job expects, delete one, list partitions.

Through librdkafka's admin client (confluent-kafka). Creating is idempotent:
an existing topic is accepted when its partition count matches, and refused
otherwise, since rows would then land in partitions nobody reads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from workload.kafka.connection import KafkaConnection
from workload.permanent import PermanentError

METADATA_TIMEOUT_S = 30.0
"""Seconds to wait for the cluster's metadata (a new topic's partitions, a deleted one's absence)."""

REQUEST_TIMEOUT_S = 30.0
"""Seconds an admin request (create, delete) may take."""


class TopicMissing(LookupError, PermanentError):
    """The topic does not exist (or has no partitions) on the cluster."""

    reason = "TopicNotFound"


class TopicLayoutError(ValueError):
    """A topic exists with a different number of partitions than requested."""


def admin_client(connection: KafkaConnection) -> AdminClient:
    """An admin client for `connection` (librdkafka; closed when garbage-collected)."""
    return AdminClient(connection.librdkafka_config())


def partition_count(admin: AdminClient, topic: str, timeout_s: float = METADATA_TIMEOUT_S) -> int | None:
    """The topic's partition count, or None when the cluster does not know it."""
    metadata = admin.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        return None
    return len(metadata.partitions)


def topic_partitions(connection: KafkaConnection, topic: str,
                     timeout_s: float = METADATA_TIMEOUT_S) -> list[int]:
    """The topic's partition ids, sorted; `TopicMissing` when it does not exist."""
    metadata = admin_client(connection).list_topics(topic=topic, timeout=timeout_s)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise TopicMissing(f"topic {topic!r} does not exist on {connection.bootstrap_servers}")
    return sorted(found.partitions)


def ensure_topic(connection: KafkaConnection, topic: str, partitions: int,
                 replication_factor: int = -1) -> bool:
    """Create `topic` with `partitions` partitions unless it exists; True when it was created.

    An existing topic with another partition count raises `TopicLayoutError`.
    `replication_factor` -1 uses the broker's default.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    admin = admin_client(connection)
    future = admin.create_topics([NewTopic(topic, partitions, replication_factor)],
                                 request_timeout=REQUEST_TIMEOUT_S)[topic]
    try:
        future.result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        existing = partition_count(admin, topic)
        if existing is not None and existing != partitions:
            raise TopicLayoutError(
                f"topic {topic!r} already exists with {existing} partition(s), but "
                f"{partitions} were requested; use {existing} or delete the topic first"
            ) from None
        return False
    _wait_until(lambda: partition_count(admin, topic) == partitions,
                f"topic {topic!r} to show its {partitions} partition(s)")
    return True


def topic_with_partitions(connection: KafkaConnection, topic: str, partitions: int) -> int:
    """The partition count of `topic`, created with `partitions` partitions if it is missing
    (an existing topic keeps the count it has)."""
    with contextlib.suppress(TopicLayoutError):
        ensure_topic(connection, topic, partitions)
    count = partition_count(admin_client(connection), topic)
    if count is None:
        raise TopicMissing(f"topic {topic!r} does not exist on {connection.bootstrap_servers}")
    return count


def delete_topic(connection: KafkaConnection, topic: str) -> bool:
    """Delete `topic` and wait until the cluster no longer knows it; True if it existed."""
    admin = admin_client(connection)
    future = admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT_S)[topic]
    try:
        future.result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as error:
        if error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return False
        raise
    _wait_until(lambda: partition_count(admin, topic) is None, f"topic {topic!r} to be deleted")
    return True


def _wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {METADATA_TIMEOUT_S:.0f} s for {what}")
        time.sleep(0.1)
