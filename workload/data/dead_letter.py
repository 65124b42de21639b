"""Send malformed records, with why they were refused, to a dead-letter topic.

Each record keeps its original key and value; the reason (one of
`decode.BAD_REASONS`) travels in the `streamtrain.reason` header and the
topic it came from in `streamtrain.source`, so a person or a repair job can
find, fix and replay it. Writing is at-least-once: a run that restarts may
send the same bad record again.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from workload.kafka_connection import KafkaConnection

REASON_HEADER = "streamtrain.reason"
"""Header with the reason a record was refused."""

SOURCE_HEADER = "streamtrain.source"
"""Header with the topic the record was read from."""

SEND_TIMEOUT_S = 30.0
"""Seconds to wait for the broker to acknowledge a dead letter."""

DeadLetter = tuple[bytes, bytes, str]
"""A refused record: (key, value, reason)."""


def send_dead_letters(
    connection: KafkaConnection, topic: str, source_topic: str, records: Iterable[DeadLetter]
) -> int:
    """Write `records` to `topic` (created if missing) and wait until the broker has them all.

    Returns how many were sent; raises the producer's error if any was refused. An empty
    key is sent as no key (the readers cannot tell the two apart).
    """
    batch = list(records)
    if not batch:
        return 0
    ensure_topic(connection, topic)
    producer = KafkaProducer(**connection.kafka_python_settings(), acks="all", linger_ms=20)
    try:
        futures = [
            producer.send(topic, key=key or None, value=value, headers=[
                (REASON_HEADER, reason.encode()),
                (SOURCE_HEADER, source_topic.encode()),
            ])
            for key, value, reason in batch
        ]
        producer.flush()
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_S)
    finally:
        producer.close()
    return len(batch)


def ensure_topic(connection: KafkaConnection, topic: str) -> None:
    """Create the dead-letter topic with one partition unless it exists."""
    admin = KafkaAdminClient(**connection.kafka_python_settings())
    try:
        if topic not in admin.list_topics():
            admin.create_topics([NewTopic(topic, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
