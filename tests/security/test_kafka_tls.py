"""TLS listeners, as Strimzi serves `tls: true`: the cluster CA Secret plus a tls KafkaUser's
certificate (mutual TLS), or plus a SCRAM password (SASL_SSL), let the workload read through
librdkafka 2.x (the default client) on Kafka 4 (tensorflow-io's librdkafka 1.5 reads them on
Kafka 3.9: test_tensorflow_io_tls.py; on Kafka 4 that client is refused before it starts: its
SCRAM login fails there too); a wrong password over TLS is refused clearly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.conftest import TRAIN_ROWS, TlsKafka
from workload.kafka.bounds import partition_bounds
from workload.kafka.connection import (
    CLUSTER_CA_ENV,
    CREDENTIALS_ENV,
    SASL_USERNAME_ENV,
    KafkaConnection,
    connection_for,
)
from workload.kafka.probe import connection_refusal, tensorflow_io_refusal
from workload.kafka.ranges import read_ranges
from workload.spec import KafkaSpec


def pod_environment(kafka: TlsKafka, kind: str, folder: Path, password: str) -> dict[str, str]:
    """The variables the operator sets, with the Secrets mounted as `kind` needs them."""
    if kind == "mtls":
        credentials = kafka.broker.user
    else:
        credentials = folder / "kafka-user"
        credentials.mkdir(parents=True, exist_ok=True)
        (credentials / "password").write_text(password)
    return {CREDENTIALS_ENV: str(credentials), SASL_USERNAME_ENV: kafka.username,
            CLUSTER_CA_ENV: str(kafka.broker.cluster_ca)}


def servers(kafka: TlsKafka, kind: str) -> str:
    return kafka.broker.mtls_servers if kind == "mtls" else kafka.broker.scram_tls_servers


def connection(kafka: TlsKafka, kind: str, folder: Path, password: str) -> KafkaConnection:
    spec = KafkaSpec.model_validate({"bootstrapServers": servers(kafka, kind)})
    return connection_for(spec, pod_environment(kafka, kind, folder, password))


@pytest.mark.parametrize("kind", ["mtls", "scram"])
def test_tls_user_secrets_read_the_topic_with_librdkafka(
        tls_kafka: TlsKafka, tmp_path: Path, kind: str) -> None:
    settings = connection(tls_kafka, kind, tmp_path, tls_kafka.password)
    assert settings.settings["ssl.ca.location"].endswith("ca.crt")
    assert settings.settings["security.protocol"] == ("SSL" if kind == "mtls" else "SASL_SSL")
    assert connection_refusal(settings) is None
    bounds = partition_bounds(settings, tls_kafka.topic)
    assert bounds == {0: (0, TRAIN_ROWS)}
    assert sum(len(batch) for batch in read_ranges(settings, tls_kafka.topic, bounds)) == TRAIN_ROWS


@pytest.mark.parametrize("kind", ["mtls", "scram"])
def test_tensorflow_io_over_tls_on_kafka_4_is_refused_before_it_starts(
        tls_kafka: TlsKafka, tmp_path: Path, kind: str) -> None:
    refusal = tensorflow_io_refusal(connection(tls_kafka, kind, tmp_path, tls_kafka.password))
    assert refusal is not None and "spec.kafka.client: librdkafka" in refusal
    assert tls_kafka.password not in refusal


def test_wrong_password_over_tls_is_refused_naming_the_user(
        tls_kafka: TlsKafka, tmp_path: Path) -> None:
    wrong = connection(tls_kafka, "scram", tmp_path, "not-the-password")
    refusal = connection_refusal(wrong)
    assert refusal is not None and "login of user 'trainer'" in refusal
    assert "not-the-password" not in refusal
