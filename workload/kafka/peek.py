"""Look at the first records of a topic as a `read_committed` consumer sees them (the demo's
window on its predictions)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message, TopicPartition

from workload.kafka.admin import topic_partitions
from workload.kafka.connection import KafkaConnection


def first_committed(connection: KafkaConnection, topic: str, count: int,
                    timeout_s: float = 10.0) -> list[Message]:
    """Up to `count` committed records from the start of `topic`, partition 0 first (fewer when
    the topic holds fewer, or `timeout_s` passes)."""
    consumer = Consumer(connection.librdkafka_config(
        {"group.id": f"streamtrain-peek-{uuid.uuid4().hex}", "enable.auto.commit": False,
         "isolation.level": "read_committed"}))
    try:
        consumer.assign([TopicPartition(topic, partition, 0)
                         for partition in topic_partitions(connection, topic)[:1]])
        found: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            found += [message for message in consumer.consume(count - len(found), 0.5)
                      if message.error() is None]
        return found
    finally:
        consumer.close()
