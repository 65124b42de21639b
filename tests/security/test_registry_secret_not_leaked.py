"""A pod's output never holds the schema registry's password: not its logs, termination message
or files. `streamtrain run-mode train` runs as a pod would (spec in the environment, the
registry's Secret as a mounted folder), once with the right password and once with a wrong one,
against a real registry that asks for basic auth; every byte they leave is searched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localparts import registry
from tests.conftest import KafkaHandle
from tests.security.test_secrets_not_leaked import PodRun, _finish, _report
from workload.contract import (
    EXIT_FAILED,
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    REGISTRY_CREDENTIALS_ENV,
    TERMINATION_LOG_ENV,
)
from workload.data.schema_registry import RegistryAccess, SchemaRegistry
from workload.datagen.avro_records import schema_text
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.datagen.table import SUSY_COLUMNS
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.spec import DataSpec, dump_spec, parse_spec

PASSWORD, WRONG = "registry-Pass-8271", "not-the-Pass-1928"


def _start(spec_data: dict[str, object], kafka: KafkaHandle, topic: str, folder: Path,
           password: str) -> subprocess.Popen[str]:
    secret = folder / "registry-user"
    secret.mkdir()
    (secret / "username").write_text("trainer")
    (secret / "password").write_text(password)
    spec = parse_spec({"kafka": {"bootstrapServers": kafka.bootstrap_servers},
                       "data": spec_data, "train": {"topic": topic, "epochs": 1},
                       "model": {"output": {"path": str(folder / "model")},
                                 "layers": [{"dense": 8}]}})
    env = {**os.environ, JOB_SPEC_ENV: json.dumps(dump_spec(spec)), JOB_NAME_ENV: "avro",
           REGISTRY_CREDENTIALS_ENV: str(secret),
           TERMINATION_LOG_ENV: str(folder / "termination-log"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "workload.cli", "run-mode", "train",
         "--output-dir", str(folder / "output")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def pod_runs(kafka: KafkaHandle,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PodRun]]:
    """`run-mode train` on an Avro topic with the right and a wrong registry password."""
    started = registry.start(tmp_path_factory.mktemp("registry"),
                             properties=registry.basic_auth({"trainer": PASSWORD}))
    try:
        data = {"format": "avro", "columns": list(SUSY_COLUMNS), "label": "key",
                "schemaRegistry": {"url": started.url, "authentication": {
                    "type": "basic", "secretName": "registry-user"}}}
        topic = kafka.create_topic("avro-secret")
        layout = DataSpec.model_validate(data)
        schema_id = SchemaRegistry(RegistryAccess(started.url, "trainer", PASSWORD)).register(
            f"{topic}-value", schema_text(layout))
        produce_messages(KafkaConnection(kafka.bootstrap_servers), topic,
                         encode(generate(1000, seed=3), layout, schema_id))
        folders = {kind: tmp_path_factory.mktemp(f"avro-pod-{kind}") for kind in ("right", "wrong")}
        processes = {kind: _start(data, kafka, topic, folders[kind], password)
                     for kind, password in (("right", PASSWORD), ("wrong", WRONG))}
        yield {kind: _finish(process, folders[kind]) for kind, process in processes.items()}
    finally:
        started.stop()


def test_the_right_registry_password_trains_on_the_avro_topic(
        pod_runs: dict[str, PodRun]) -> None:
    run = pod_runs["right"]
    report = _report(run)
    assert run.returncode == 0 and report.ok, run.stderr[-3000:]
    assert report.metrics.records_trained is not None and report.metrics.records_trained > 0


def test_a_refused_registry_login_fails_the_phase_saying_so(pod_runs: dict[str, PodRun]) -> None:
    run = pod_runs["wrong"]
    report = _report(run)
    assert run.returncode == EXIT_FAILED and not report.ok
    assert "schema registry:" in report.message and "HTTP 401" in report.message


@pytest.mark.parametrize("kind", ["right", "wrong"])
def test_no_registry_password_in_logs_termination_message_or_files(
        pod_runs: dict[str, PodRun], kind: str) -> None:
    traces = pod_runs[kind].everything()
    assert traces, "nothing to search"
    for password in (PASSWORD, WRONG):
        assert password.encode() not in traces, f"the {kind} run leaked a password"
