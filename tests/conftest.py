"""Fixtures that start and stop the real parts: a Kafka broker and a Kubernetes control plane.

Servers are session-scoped (started once, stopped at the end); what a test
touches (topics, namespaces) is fresh per test so tests never see each
other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from localparts import kafka as local_kafka


@dataclass
class KafkaHandle:
    """A running broker for tests: its address, an admin client and topic helpers."""

    bootstrap_servers: str
    admin: KafkaAdminClient
    broker: local_kafka.KafkaBroker
    created: list[str] = field(default_factory=list)

    def create_topic(self, prefix: str = "t", partitions: int = 1) -> str:
        """A new topic with a unique name; deleted at the end of the session."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.admin.create_topics([NewTopic(name, partitions, 1)])
        self.created.append(name)
        return name

    def producer(self, **settings: object) -> KafkaProducer:
        """A producer bound to the broker."""
        return KafkaProducer(bootstrap_servers=self.bootstrap_servers, **settings)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition's end offset (the count of records written to it)."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers)
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
        finally:
            consumer.close()

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """A consumer group's committed offsets, by (topic, partition)."""
        offsets = self.admin.list_consumer_group_offsets(group)
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.KafkaBroker]:
    """A real Apache Kafka broker (KRaft, one node) on 127.0.0.1, for the whole session."""
    broker = local_kafka.start(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka(kafka_broker: local_kafka.KafkaBroker) -> Iterator[KafkaHandle]:
    """The session's broker with an admin client and topic helpers."""
    if not kafka_broker.process.alive():
        pytest.fail(f"the Kafka broker died; log tail:\n{kafka_broker.process.log()}")
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    handle = KafkaHandle(kafka_broker.bootstrap_servers, admin, kafka_broker)
    yield handle
    admin.close()


@pytest.fixture(autouse=True)
def _broker_alive_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that used the broker fails with the broker's log tail if the broker crashed."""
    yield
    if "kafka" in request.fixturenames or "kafka_broker" in request.fixturenames:
        broker: local_kafka.KafkaBroker = request.getfixturevalue("kafka_broker")
        if not broker.process.alive():
            pytest.fail(f"the Kafka broker crashed; log tail:\n{broker.process.log()}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder."""
    return Path(__file__).resolve().parent.parent


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
