"""A pod's output never holds the Kafka password: not its logs, termination message or files.

`streamtrain run-mode train` runs as a pod would (spec in the environment, the
KafkaUser Secret as a mounted folder, the termination log a file), once with
the right password and once with a wrong one, in child processes (in parallel:
each pays TensorFlow's start-up). The right one trains through librdkafka
over SCRAM; the wrong one fails at once with a message naming the login.
Every byte they leave behind is then searched for both passwords.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.security.conftest import ScramKafka
from workload.artifacts import Artifacts
from workload.contract import (
    CREDENTIALS_ENV,
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    PERMANENT,
    SASL_USERNAME_ENV,
    TERMINATION_LOG_ENV,
)
from workload.kafka.connection import KafkaConnection
from workload.spec import dump_spec, parse_spec
from workload.status import PodReport

RUN_TIMEOUT_S = 150.0


@dataclass(frozen=True)
class PodRun:
    """What one `run-mode` process left: exit code, output, termination message, files."""

    returncode: int
    stdout: str
    stderr: str
    termination_message: str
    output_dir: Path

    def everything(self) -> bytes:
        """All the run's traces, for a search."""
        files = b"".join(path.read_bytes() for path in sorted(self.output_dir.rglob("*"))
                         if path.is_file())
        return b"\n".join([self.stdout.encode(), self.stderr.encode(),
                           self.termination_message.encode(), files])


def _start(kafka: ScramKafka, folder: Path, password: str) -> subprocess.Popen[str]:
    spec = parse_spec({"kafka": {"bootstrapServers": kafka.broker.scram_servers},
                       "train": {"topic": kafka.train_topic, "epochs": 1},
                       "model": {"output": {"path": str(folder / "model")}}})
    env = {**os.environ,
           JOB_SPEC_ENV: json.dumps(dump_spec(spec)), JOB_NAME_ENV: "scram",
           CREDENTIALS_ENV: str(kafka.secret_folder(folder / "kafka-user", password)),
           SASL_USERNAME_ENV: kafka.username,
           TERMINATION_LOG_ENV: str(folder / "termination-log"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "workload.cli", "run-mode", "train",
         "--output-dir", str(folder / "output")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str], folder: Path) -> PodRun:
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"run-mode did not finish in {RUN_TIMEOUT_S} s:\n{stderr[-3000:]}")
    log = folder / "termination-log"
    return PodRun(process.returncode, stdout, stderr,
                  log.read_text() if log.exists() else "", folder / "output")


@pytest.fixture(scope="module")
def pod_runs(scram_kafka: ScramKafka,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PodRun]]:
    """`run-mode train` with the right and with a wrong password, run side by side."""
    folders = {kind: tmp_path_factory.mktemp(f"pod-{kind}") for kind in ("right", "wrong")}
    processes = {"right": _start(scram_kafka, folders["right"], scram_kafka.password),
                 "wrong": _start(scram_kafka, folders["wrong"], scram_kafka.wrong_password)}
    yield {kind: _finish(process, folders[kind]) for kind, process in processes.items()}


def _report(run: PodRun) -> PodReport:
    report = PodReport.from_message(run.termination_message)
    assert report is not None, f"no report in the termination message:\n{run.stderr[-3000:]}"
    return report


def test_right_password_trains_through_librdkafka_over_scram(
        pod_runs: dict[str, PodRun]) -> None:
    run = pod_runs["right"]
    report = _report(run)
    assert run.returncode == 0 and report.ok, run.stderr[-3000:]
    assert report.epoch == 1 and report.metrics.train_accuracy is not None
    results = json.loads(Artifacts(run.output_dir).results("train").read_text())
    assert results["report"]["ok"] is True  # the results file is among the searched traces


def test_wrong_password_fails_the_pod_at_once_with_a_clear_message(
        pod_runs: dict[str, PodRun]) -> None:
    run = pod_runs["wrong"]
    report = _report(run)
    assert run.returncode == PERMANENT["KafkaLoginRefused"].exit_code and not report.ok  # no retry
    assert report.reason == "KafkaLoginRefused"
    assert "refused the SCRAM-SHA-512 login of user 'trainer'" in report.message
    assert "spec.kafka.userRef" in report.message


@pytest.mark.parametrize("kind", ["right", "wrong"])
def test_no_password_in_logs_termination_message_or_files(
        pod_runs: dict[str, PodRun], scram_kafka: ScramKafka, kind: str) -> None:
    traces = pod_runs[kind].everything()
    assert traces, "nothing to search"
    for password in (scram_kafka.password, scram_kafka.wrong_password):
        assert password.encode() not in traces, f"the {kind} run leaked a password"


def test_connection_logs_and_prints_with_secrets_masked() -> None:
    connection = KafkaConnection("kafka:9093", {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "trainer", "sasl.password": "p4ss-word",
        "ssl.key.password": "k3y-pass", "ssl.key.pem": "-----BEGIN PRIVATE KEY-----",
        "ssl.ca.location": "/var/run/ca.crt"})
    redacted = connection.redacted()
    assert redacted["sasl.password"] == redacted["ssl.key.password"] == "***"
    assert redacted["ssl.key.pem"] == "***"
    assert redacted["sasl.username"] == "trainer"
    assert redacted["ssl.ca.location"] == "/var/run/ca.crt"
    for shown in (repr(connection), str(connection), f"{connection}"):
        assert "p4ss-word" not in shown and "k3y-pass" not in shown and "PRIVATE" not in shown
    assert connection.kafka_python_settings()["sasl_plain_password"] == "p4ss-word"
