"""A broker with a SCRAM-SHA-512 listener for the security tests, and its known user.

One broker for the package: starting Kafka costs ~6 s. The password is random
per run, so a search for it in logs or files finds only real leaks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localparts.kafka import COMPAT_KAFKA_VERSION
from tests.e2e import scram_broker
from tests.e2e.harness import fresh_split
from tests.security import tls_broker

TRAIN_ROWS, TEST_ROWS = 800, 200


@dataclass(frozen=True)
class ScramKafka:
    """The SCRAM broker, its user, and topics with synthetic SUSY rows."""

    broker: scram_broker.ScramBroker
    username: str
    password: str
    wrong_password: str
    train_topic: str
    test_topic: str

    def secret_folder(self, folder: Path, password: str) -> Path:
        """A KafkaUser Secret as a pod sees it mounted: one file per key (`password`)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "password").write_text(password)
        return folder


@pytest.fixture(scope="package")
def scram_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramKafka]:
    """The broker, started once for the package and stopped after its last test."""
    username, password = "trainer", f"Right-{uuid.uuid4().hex}"
    broker = scram_broker.start(tmp_path_factory.mktemp("scram-kafka"), username, password)
    try:
        train, test = fresh_split(broker.plain_servers, TRAIN_ROWS, TEST_ROWS, seed=11)
        yield ScramKafka(broker, username, password, f"Wrong-{uuid.uuid4().hex}", train, test)
    finally:
        broker.stop()


@dataclass(frozen=True)
class TlsKafka:
    """The TLS broker, its SCRAM user, and a topic with synthetic SUSY rows."""

    broker: tls_broker.TlsBroker
    username: str
    password: str
    topic: str


@pytest.fixture(scope="package")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """A broker with mutual-TLS and SCRAM-over-TLS listeners, for the package."""
    username, password = "trainer", f"Right-{uuid.uuid4().hex}"
    broker = tls_broker.start(tmp_path_factory.mktemp("tls-kafka"), username, password)
    try:
        train, _ = fresh_split(broker.plain_servers, TRAIN_ROWS, TEST_ROWS, seed=12)
        yield TlsKafka(broker, username, password, train)
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def tls_kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """The same listeners on Kafka 3.9, the last Kafka that tensorflow-io's client reads."""
    username, password = "trainer", f"Right-{uuid.uuid4().hex}"
    broker = tls_broker.start(tmp_path_factory.mktemp("tls-kafka3"), username, password,
                              version=COMPAT_KAFKA_VERSION)
    try:
        train, _ = fresh_split(broker.plain_servers, TRAIN_ROWS, TEST_ROWS, seed=13)
        yield TlsKafka(broker, username, password, train)
    finally:
        broker.stop()
