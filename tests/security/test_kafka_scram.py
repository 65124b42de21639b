"""SCRAM-SHA-512 against a real broker: a KafkaUser Secret's password logs in; a wrong one is
refused at once with a message that names the user and never the password.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.security.conftest import TRAIN_ROWS, ScramKafka
from workload.kafka.bounds import partition_bounds
from workload.kafka.connection import (
    CREDENTIALS_ENV,
    SASL_USERNAME_ENV,
    KafkaConnection,
    connection_for,
)
from workload.kafka.probe import connection_refusal
from workload.kafka.ranges import read_ranges
from workload.spec import KafkaSpec

REFUSAL_BOUND_S = 5.0
"""A refused login must be reported this fast (a client left to itself retries forever)."""


def scram_connection(kafka: ScramKafka, folder: Path, password: str) -> KafkaConnection:
    """What a pod builds from its environment with the KafkaUser Secret mounted at `folder`."""
    spec = KafkaSpec.model_validate({"bootstrapServers": kafka.broker.scram_servers})
    environ = {CREDENTIALS_ENV: str(kafka.secret_folder(folder, password)),
               SASL_USERNAME_ENV: kafka.username}
    return connection_for(spec, environ)


def test_kafka_user_secret_becomes_scram_settings_that_read_the_topic(
        scram_kafka: ScramKafka, tmp_path: Path) -> None:
    connection = scram_connection(scram_kafka, tmp_path / "user", scram_kafka.password)
    assert connection.settings == {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": scram_kafka.username, "sasl.password": scram_kafka.password}
    assert connection_refusal(connection) is None
    bounds = partition_bounds(connection, scram_kafka.train_topic)
    assert bounds == {0: (0, TRAIN_ROWS)}
    assert sum(len(batch) for batch in read_ranges(connection, scram_kafka.train_topic,
                                                   bounds)) == TRAIN_ROWS


def test_wrong_password_is_refused_at_once_naming_the_user_not_the_password(
        scram_kafka: ScramKafka, tmp_path: Path) -> None:
    connection = scram_connection(scram_kafka, tmp_path / "user", scram_kafka.wrong_password)
    started = time.monotonic()
    refusal = connection_refusal(connection)
    assert time.monotonic() - started < REFUSAL_BOUND_S
    assert refusal is not None
    assert "refused the SCRAM-SHA-512 login of user 'trainer'" in refusal
    assert scram_kafka.broker.scram_servers in refusal
    assert scram_kafka.wrong_password not in refusal and scram_kafka.password not in refusal


def test_scram_listener_refuses_an_unknown_user(scram_kafka: ScramKafka) -> None:
    anonymous = KafkaConnection(scram_kafka.broker.scram_servers, {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "nobody", "sasl.password": "guess"})
    refusal = connection_refusal(anonymous)
    assert refusal is not None and "user 'nobody'" in refusal
