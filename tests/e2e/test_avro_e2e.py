"""End to end: the Avro example's job on the real control plane trains and evaluates from Avro
topics through a schema registry that requires a login, which the pods take from a Secret the
operator mounted; the password shows nowhere in the job's pods, status or events."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from localparts import registry
from tests.conftest import KafkaHandle, Kube
from tests.e2e.harness import REPO
from tests.e2e.kubelet_agent import KubeletAgent
from tests.e2e.test_operator_e2e import (  # noqa: F401 (`cluster` is a fixture)
    TEST_ROWS,
    TRAIN_ROWS,
    OperatorProcess,
    _apply,
    _diagnosis,
    _succeeded,
    cluster,
)
from workload.data.schema_registry import RegistryAccess, SchemaRegistry
from workload.datagen.avro_records import schema_text
from workload.datagen.records import encode
from workload.datagen.synthetic import generate
from workload.datagen.table import split
from workload.kafka.admin import ensure_topic
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.spec import DataSpec

EXAMPLE = REPO / "examples" / "12-avro-schema-registry" / "job.yaml"
PASSWORD = "avro-e2e-Secret-42"


def test_avro_example_trains_and_evaluates_through_a_registry_with_a_mounted_login(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent],  # noqa: F811
        tmp_path: Path) -> None:
    started = registry.start(tmp_path / "registry", properties=registry.basic_auth({"trainer": PASSWORD}))
    try:
        manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
        spec = manifest["spec"]
        suffix = uuid.uuid4().hex[:8]
        train_topic, test_topic = f"avro-train-{suffix}", f"avro-test-{suffix}"
        spec["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
        spec["data"]["schemaRegistry"]["url"] = started.url
        spec["train"].update({"topic": train_topic, "epochs": 2})
        spec["evaluate"].update({"topic": test_topic, "streamTimeoutMs": 3000})
        data = DataSpec.model_validate(spec["data"])
        writer = SchemaRegistry(RegistryAccess(started.url, "trainer", PASSWORD))
        connection = KafkaConnection(kafka.bootstrap_servers)
        rows = generate(TRAIN_ROWS + TEST_ROWS, seed=19)
        for topic, part in zip((train_topic, test_topic), split(rows, TRAIN_ROWS), strict=True):
            ensure_topic(connection, topic, 1)
            schema_id = writer.register(f"{topic}-value", schema_text(data))
            produce_messages(connection, topic, encode(part, data, schema_id))
        core: Any = kubernetes.client.CoreV1Api(kube.cluster.api)
        core.create_namespaced_secret(kube.namespace, {
            "metadata": {"name": "registry-user"},
            "stringData": {"username": "trainer", "password": PASSWORD}})

        jobs = _apply(kube, manifest)
        name = manifest["metadata"]["name"]
        status = _succeeded(jobs, name, _diagnosis(jobs, name, cluster))

        assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
        assert 0.6 < status["metrics"]["evalAccuracy"] <= 1.0
        seen = [str(status), str(core.list_namespaced_event(kube.namespace).items)]
        for pod in core.list_namespaced_pod(kube.namespace).items:
            seen.append(str(pod.spec.containers[0].env))
        assert all(PASSWORD not in text for text in seen)
    finally:
        started.stop()
