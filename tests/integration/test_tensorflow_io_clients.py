"""`spec.kafka.client`: on Kafka 3.x both clients run a whole job to the same figures (online
learning through tensorflow-io's group dataset at least once); on Kafka 4 the tensorflow-io client
fails at once, naming the broker version, why and the fix. Run in the tensorflow-io set's
environment (`pytest --tensorflow-io`), which holds both clients."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import pytest

from tests.conftest import KafkaHandle
from tests.integration.modes_support import fill_topic
from workload.artifacts import Artifacts
from workload.kafka.connection import KafkaConnection
from workload.kafka.probe import tensorflow_io_missing
from workload.runner import run_phases
from workload.spec import KafkaClient, parse_spec
from workload.status import PodReport

CLIENTS: tuple[KafkaClient, ...] = ("librdkafka", "tensorflow-io")
FAIL_FAST_S = 30.0
"""How soon a job whose client cannot read the broker must say so (the issue's bound)."""


def job(bootstrap: str, client: KafkaClient, topics: dict[str, str], output: Path) -> dict[str, object]:
    return {
        "kafka": {"bootstrapServers": bootstrap, "client": client},
        "train": {"topic": topics["train"], "epochs": 2, "batchSize": 64},
        "evaluate": {"topic": topics["test"], "consumerGroup": f"eval-{client}",
                     "streamTimeoutMs": 0},
        "online": {"topic": topics["online"], "consumerGroup": f"online-{client}",
                   "streamTimeoutMs": 3000, "batchSize": 64},
        "model": {"layers": [{"dense": 16}], "output": {"path": str(output)}},
    }


def run(bootstrap: str, client: KafkaClient, topics: dict[str, str],
        output: Path) -> dict[str, PodReport]:
    keras.utils.set_random_seed(7)  # the same initial weights for both clients
    spec = parse_spec(job(bootstrap, client, topics, output))
    reports = run_phases(f"clients-{client}", spec, KafkaConnection(bootstrap),
                         Artifacts(output), progress=False)
    return {report.mode: report for report in reports}


def test_both_clients_run_a_whole_job_on_kafka_3_to_the_same_figures(
        kafka3: KafkaHandle, tmp_path: Path) -> None:
    topics = {name: kafka3.create_topic(name, partitions) for name, partitions in
              (("train", 1), ("test", 2), ("online", 1))}
    for (name, topic), seed in zip(topics.items(), (41, 42, 43), strict=True):
        fill_topic(kafka3.bootstrap_servers, topic, {"train": 3000}.get(name, 1000), seed=seed,
                   partitions=2 if name == "test" else 1)

    reports = {client: run(kafka3.bootstrap_servers, client, topics, tmp_path / client)
               for client in CLIENTS}

    default, tutorial = reports["librdkafka"], reports["tensorflow-io"]
    for mode in ("train", "evaluate", "online"):
        assert default[mode].ok and tutorial[mode].ok, (default[mode], tutorial[mode])
    assert default["train"].metrics.records_trained == tutorial["train"].metrics.records_trained
    assert default["train"].metrics.train_loss == pytest.approx(
        tutorial["train"].metrics.train_loss, rel=1e-5)
    assert default["evaluate"].metrics.records_evaluated == 1000
    assert tutorial["evaluate"].metrics.records_evaluated == 1000
    assert default["evaluate"].metrics.eval_accuracy == pytest.approx(
        tutorial["evaluate"].metrics.eval_accuracy, abs=1e-9)
    assert default["evaluate"].metrics.eval_auc == pytest.approx(
        tutorial["evaluate"].metrics.eval_auc, abs=1e-6)
    assert default["online"].metrics.records_online == tutorial["online"].metrics.records_online
    assert default["online"].metrics.records_online == 1000


def test_the_tensorflow_io_client_on_kafka_4_fails_fast_naming_version_and_fix(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    topic = kafka.create_topic("clients-k4", 1)
    fill_topic(kafka.bootstrap_servers, topic, 200, seed=44, partitions=1)
    spec = parse_spec(job(kafka.bootstrap_servers, "tensorflow-io",
                          {"train": topic, "test": topic, "online": topic}, tmp_path))

    started = time.monotonic()
    reports = run_phases("k4", spec, KafkaConnection(kafka.bootstrap_servers),
                         Artifacts(tmp_path), progress=False)

    assert time.monotonic() - started < FAIL_FAST_S
    assert [report.mode for report in reports] == ["train"] and not reports[0].ok
    message = reports[0].message
    assert f"Kafka at {kafka.bootstrap_servers} is version 4.0 or newer" in message
    assert "tensorflow-io" in message and "spec.kafka.client: librdkafka" in message


def test_this_environment_holds_the_client_that_loads() -> None:
    """The tensorflow-io set's pins load together: the check a job of this client passes first."""
    assert tensorflow_io_missing() is None
