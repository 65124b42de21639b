"""Wrong TLS credentials fail at once, naming the address and what to check, never the key.

A client certificate the broker does not trust, a key that does not match its
certificate, a cluster CA that does not verify the broker, a SCRAM user on the
mutual-TLS listener: each comes back from `connection_refusal` as a message at
once. Every call gets a generous `timeout_s`; a refusal is the answer the broker
gives, not the end of waiting. A broker that is down or silent is reported as
unreachable once the timeout passes, never blamed on the credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from tests.security import tls_broker
from tests.security.conftest import TlsKafka
from workload.artifacts import Artifacts
from workload.contract import JOB_NAME_ENV, JOB_SPEC_ENV, PERMANENT, TERMINATION_LOG_ENV
from workload.kafka.connection import (
    CLUSTER_CA_ENV,
    CREDENTIALS_ENV,
    SASL_USERNAME_ENV,
    KafkaConnection,
    connection_for,
)
from workload.kafka.probe import connection_refusal, decisive, explain_refusal
from workload.runner import run_mode
from workload.spec import KafkaSpec, dump_spec, parse_spec
from workload.status import PodReport

PATIENT_S = 30.0
"""A timeout no refusal needs: the answer must be the broker's, not the end of waiting."""

POD_TIMEOUT_S = 60.0
USER_HINT = "check the KafkaUser named in spec.kafka.userRef and its Secret's user.crt/user.key"


@pytest.fixture(scope="module")
def foreign(tls_kafka: TlsKafka, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user Secret for the same user, signed by a CA the broker does not trust."""
    return tls_broker.foreign_user(tmp_path_factory.mktemp("foreign") / "user", tls_kafka.username)


def mounted(kafka: TlsKafka, servers: str, credentials: Path,
            cluster_ca: Path | None = None) -> KafkaConnection:
    """The connection a pod builds with these Secrets mounted."""
    spec = KafkaSpec.model_validate({"bootstrapServers": servers})
    return connection_for(spec, {
        CREDENTIALS_ENV: str(credentials), SASL_USERNAME_ENV: kafka.username,
        CLUSTER_CA_ENV: str(cluster_ca or kafka.broker.cluster_ca)})


SEARCHED_LINE_CHARS = 16
"""Shorter PEM lines (a body's last few characters) could turn up in any text by chance."""


def secret_texts(*folders: Path) -> list[str]:
    """The base64 lines of the certificates and keys in the folders, as they would leak."""
    lines = [line.strip() for folder in folders for name in ("user.crt", "user.key")
             for line in (folder / name).read_text().splitlines()]
    return [line for line in lines if len(line) >= SEARCHED_LINE_CHARS and "-----" not in line]


def assert_no_key_material(message: str, *folders: Path) -> None:
    assert "-----BEGIN" not in message
    for line in secret_texts(*folders):
        assert line not in message


def test_a_client_certificate_from_another_ca_is_refused_naming_the_address_and_user(
        tls_kafka: TlsKafka, foreign: Path) -> None:
    connection = mounted(tls_kafka, tls_kafka.broker.mtls_servers, foreign)
    refusal = connection_refusal(connection, timeout_s=PATIENT_S)
    assert refusal is not None
    assert f"Kafka at {tls_kafka.broker.mtls_servers} rejected the TLS client certificate" in refusal
    assert "TLS alert: bad certificate" in refusal
    assert USER_HINT in refusal
    assert_no_key_material(refusal, foreign, tls_kafka.broker.user)


def test_the_right_client_certificate_is_accepted(tls_kafka: TlsKafka) -> None:
    connection = mounted(tls_kafka, tls_kafka.broker.mtls_servers, tls_kafka.broker.user)
    assert connection_refusal(connection, timeout_s=PATIENT_S) is None


def test_a_key_that_does_not_match_the_certificate_is_named_as_such(
        tls_kafka: TlsKafka, foreign: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "user"
    mixed.mkdir()
    shutil.copy(tls_kafka.broker.user / "user.crt", mixed / "user.crt")
    shutil.copy(foreign / "user.key", mixed / "user.key")
    refusal = connection_refusal(mounted(tls_kafka, tls_kafka.broker.mtls_servers, mixed),
                            timeout_s=PATIENT_S)
    assert refusal is not None
    assert "the TLS client certificate and key cannot be used (KEY_VALUES_MISMATCH)" in refusal
    assert tls_kafka.broker.mtls_servers in refusal and USER_HINT in refusal
    assert_no_key_material(refusal, foreign, tls_kafka.broker.user)


@pytest.mark.parametrize("listener", ["mtls", "scram"])
def test_a_cluster_ca_that_does_not_verify_the_broker_is_refused_naming_the_ca_secret(
        tls_kafka: TlsKafka, foreign: Path, tmp_path: Path, listener: str) -> None:
    if listener == "mtls":
        servers, credentials = tls_kafka.broker.mtls_servers, tls_kafka.broker.user
    else:
        servers, credentials = tls_kafka.broker.scram_tls_servers, tmp_path / "user"
        credentials.mkdir()
        (credentials / "password").write_text(tls_kafka.password)
    refusal = connection_refusal(mounted(tls_kafka, servers, credentials, cluster_ca=foreign),
                            timeout_s=PATIENT_S)
    assert refusal is not None
    assert f"Kafka at {servers} presented a certificate the configured cluster CA" in refusal
    assert "broker certificate could not be verified" in refusal
    assert "cluster CA Secret (ca.crt)" in refusal
    assert tls_kafka.password not in refusal


def test_a_scram_user_on_the_mutual_tls_listener_is_told_a_certificate_is_required(
        tls_kafka: TlsKafka, tmp_path: Path) -> None:
    credentials = tmp_path / "user"
    credentials.mkdir()
    (credentials / "password").write_text(tls_kafka.password)
    connection = mounted(tls_kafka, tls_kafka.broker.mtls_servers, credentials)
    assert connection.settings["security.protocol"] == "SASL_SSL"
    refusal = connection_refusal(connection, timeout_s=PATIENT_S)
    assert refusal is not None
    assert "requires a TLS client certificate and the connection sends none" in refusal
    assert "KafkaUser of type tls" in refusal and tls_kafka.password not in refusal


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """An address that accepts connections and never says a word (a hung broker)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


def unused_address() -> str:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return f"127.0.0.1:{server.getsockname()[1]}"


def test_a_down_or_silent_broker_is_unreachable_not_a_credentials_problem(
        tls_kafka: TlsKafka, silent_listener: str) -> None:
    for servers in (unused_address(), silent_listener):
        connection = mounted(tls_kafka, servers, tls_kafka.broker.user)
        assert connection.settings["security.protocol"] == "SSL"
        refusal = connection_refusal(connection, timeout_s=2.0)
        assert refusal is not None and refusal.startswith(f"cannot reach Kafka at {servers}")
        assert "certificate" not in refusal and "KafkaUser" not in refusal


def test_run_mode_reports_a_foreign_certificate_as_a_failed_phase(
        tls_kafka: TlsKafka, foreign: Path, tmp_path: Path) -> None:
    spec = parse_spec({"kafka": {"bootstrapServers": tls_kafka.broker.mtls_servers},
                       "train": {"topic": tls_kafka.topic, "epochs": 1},
                       "model": {"output": {"path": str(tmp_path / "model")}}})
    connection = mounted(tls_kafka, tls_kafka.broker.mtls_servers, foreign)
    report = run_mode("train", "tls", spec, connection, Artifacts(tmp_path / "output"),
                      progress=False)
    assert report.mode == "train" and not report.ok
    assert "rejected the TLS client certificate" in report.message
    assert "spec.kafka.userRef" in report.message


def test_a_pod_with_a_foreign_certificate_fails_with_its_termination_message_and_no_key(
        tls_kafka: TlsKafka, foreign: Path, tmp_path: Path) -> None:
    spec = parse_spec({"kafka": {"bootstrapServers": tls_kafka.broker.mtls_servers},
                       "train": {"topic": tls_kafka.topic, "epochs": 1},
                       "model": {"output": {"path": str(tmp_path / "model")}}})
    log = tmp_path / "termination-log"
    env = {**os.environ, JOB_SPEC_ENV: json.dumps(dump_spec(spec)), JOB_NAME_ENV: "tls",
           CREDENTIALS_ENV: str(foreign), SASL_USERNAME_ENV: tls_kafka.username,
           CLUSTER_CA_ENV: str(tls_kafka.broker.cluster_ca), TERMINATION_LOG_ENV: str(log)}
    pod = subprocess.run(
        [sys.executable, "-m", "workload.cli", "run-mode", "train",
         "--output-dir", str(tmp_path / "output")],
        env=env, capture_output=True, text=True, timeout=POD_TIMEOUT_S)
    report = PodReport.from_message(log.read_text())
    assert pod.returncode == PERMANENT["KafkaLoginRefused"].exit_code, pod.stderr[-3000:]  # no retry
    assert report is not None and not report.ok and report.reason == "KafkaLoginRefused"
    assert "rejected the TLS client certificate" in report.message
    traces = "\n".join([pod.stdout, pod.stderr, log.read_text(),
                        *(path.read_text() for path in (tmp_path / "output").rglob("*.json"))])
    assert_no_key_material(traces, foreign)


MTLS_SETTINGS = {"security.protocol": "SSL", "ssl.certificate.location": "/user/user.crt",
                 "ssl.key.location": "/user/user.key"}


def test_a_handshake_alert_not_about_certificates_is_not_blamed_on_the_certificate() -> None:
    error = KafkaError(KafkaError._TRANSPORT, "ssl://kafka:9093/bootstrap: Receive failed: "
                       "error:0A000410:SSL routines::sslv3 alert handshake failure: SSL alert "
                       "number 40 (after 3ms in state APIVERSION_QUERY)")
    assert decisive(error)
    refusal = explain_refusal(KafkaConnection("kafka:9093", MTLS_SETTINGS), error)
    assert refusal.startswith("Kafka at kafka:9093: TLS handshake failed (Receive failed:")
    assert "rejected the TLS client certificate" not in refusal and "after 3ms" not in refusal


def test_a_refused_connection_is_not_decisive() -> None:
    error = KafkaError(KafkaError._TRANSPORT, "kafka:9093/bootstrap: Connect to ipv4#10.0.0.1:9093 "
                       "failed: Connection refused (after 0ms in state CONNECT)")
    assert not decisive(error)
