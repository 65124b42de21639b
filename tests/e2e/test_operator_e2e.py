"""End to end: apply the minimal example -> Jobs -> pods -> the workload trains on the real local
Kafka -> the StreamingTrainingJob reaches Succeeded with accuracy in status and `kubectl get stj`.

The operator and the pods run as local processes; `KubeletAgent` plays the kubelet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from tests.conftest import KafkaHandle, Kube
from tests.e2e import scram_broker
from tests.e2e.harness import (
    REPO,
    Jobs,
    OperatorProcess,
    eventually,
    install_streamtrain_crd,
    install_strimzi_crds,
    remove_strimzi_crds,
)
from tests.e2e.kubelet_agent import KubeletAgent
from workload.data.producer import produce_split
from workload.data.synthetic import generate
from workload.kafka_connection import KafkaConnection

EXAMPLE = REPO / "examples" / "01-minimal" / "job.yaml"
TRAIN_ROWS, TEST_ROWS = 3000, 1000
STRIMZI_KAFKA = {
    "apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "metadata": {"name": "my-cluster"},
    "spec": {"kafka": {"listeners": [
        {"name": "plain", "port": 9092, "type": "internal", "tls": False}]}}}


@pytest.fixture
def cluster(kube: Kube, tmp_path: Path) -> Iterator[tuple[OperatorProcess, KubeletAgent]]:
    """The CRD, the operator and the kubelet agent, all serving the test's namespace."""
    install_streamtrain_crd(kube.cluster.api)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    agent = KubeletAgent(kube.cluster.api, kube.namespace, tmp_path / "pods").start()
    yield operator, agent
    agent.stop()
    operator.stop()


def _example_for(kafka: KafkaHandle, train: str, test: str) -> dict[str, Any]:
    """The example manifest pointed at the test broker, with fresh topics and a short run."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = manifest["spec"]
    spec["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    spec["train"].update({"topic": train, "epochs": 3})
    spec["evaluate"].update({"topic": test, "consumerGroup": f"eval-{uuid.uuid4().hex[:8]}",
                             "streamTimeoutMs": 3000})
    return manifest


def test_applied_example_trains_evaluates_and_reports_accuracy(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    operator, agent = cluster
    train, test = f"susy-train-{uuid.uuid4().hex[:8]}", f"susy-test-{uuid.uuid4().hex[:8]}"
    produce_split(KafkaConnection(kafka.bootstrap_servers), train, test,
                  generate(TRAIN_ROWS + TEST_ROWS, seed=7), train_rows=TRAIN_ROWS,
                  progress=False)
    manifest = _example_for(kafka, train, test)
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    name = manifest["metadata"]["name"]
    jobs = Jobs(kube.cluster.api, kube.namespace)

    def diagnose() -> str:
        return (f"status: {jobs.status(name)}\n--- operator\n{operator.tail()}\n"
                f"--- pods\n{agent.logs()}")
    eventually(lambda: jobs.phase(name) in ("Succeeded", "Failed"), 300,
               f"{name} to finish", diagnose)
    status = jobs.status(name)
    assert status["phase"] == "Succeeded", diagnose()
    metrics = status["metrics"]
    assert metrics["recordsEvaluated"] == TEST_ROWS
    assert 0.6 < metrics["evalAccuracy"] <= 1.0
    assert 0.6 < metrics["evalAuc"] <= 1.0
    assert status["trainer"]["succeeded"] == 1 and status["evaluator"]["succeeded"] == 1
    table = kube.cluster.kubectl("get", "stj", "-n", kube.namespace).stdout
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert "Succeeded" in row and str(metrics["evalAccuracy"]) in row
    assert str(TEST_ROWS) in row


def test_trainer_failing_for_real_fails_the_job_with_the_pods_message(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    operator, agent = cluster
    empty_train = kafka.create_topic("empty-train")
    manifest = _example_for(kafka, empty_train, kafka.create_topic("empty-test"))
    manifest["spec"]["runPolicy"] = {"backoffLimit": 0}
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-",
                         stdin=yaml.safe_dump(manifest))
    jobs = Jobs(kube.cluster.api, kube.namespace)
    eventually(lambda: jobs.phase("susy") == "Failed", 120, "the job to fail",
               lambda: f"{jobs.status('susy')}\n{operator.tail()}\n{agent.logs()}")
    failed = jobs.condition("susy", "Failed")
    assert failed is not None and failed["reason"] == "Failed"
    assert "train failed (BackoffLimitExceeded)" in failed["message"]
    assert empty_train in failed["message"]  # the workload's own words, via the termination log
    assert jobs.status("susy")["trainer"]["failed"] == 1


def test_suspending_a_running_trainer_kills_its_pod_and_resume_finishes_the_job(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    operator, agent = cluster
    train, test = f"susy-train-{uuid.uuid4().hex[:8]}", f"susy-test-{uuid.uuid4().hex[:8]}"
    produce_split(KafkaConnection(kafka.bootstrap_servers), train, test,
                  generate(TRAIN_ROWS + TEST_ROWS, seed=8), train_rows=TRAIN_ROWS,
                  progress=False)
    manifest = _example_for(kafka, train, test)
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-",
                         stdin=yaml.safe_dump(manifest))
    jobs = Jobs(kube.cluster.api, kube.namespace)

    def diagnose() -> str:
        return f"{jobs.status('susy')}\n{operator.tail()}\n{agent.logs()}"
    eventually(lambda: any(p.status.phase == "Running" for p in jobs.pods("susy-train")), 60,
               "the trainer to run", diagnose)
    jobs.patch_spec("susy", {"runPolicy": {"suspend": True}})
    eventually(lambda: jobs.phase("susy") == "Suspended", 30, "Suspended", diagnose)
    eventually(lambda: not jobs.pods("susy-train"), 60, "the running pod to be removed",
               diagnose)
    assert not agent.running

    jobs.patch_spec("susy", {"runPolicy": {"suspend": False}})
    eventually(lambda: jobs.phase("susy") in ("Succeeded", "Failed"), 300, "the job to finish",
               diagnose)
    status = jobs.status("susy")
    assert status["phase"] == "Succeeded", diagnose()
    assert status["metrics"]["recordsEvaluated"] == TEST_ROWS


def test_strimzi_cluster_ref_job_trains_against_the_listener_address(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    operator, agent = cluster
    version = install_strimzi_crds(kube.cluster.api, "1.2.0")
    try:
        custom: Any = kubernetes.client.CustomObjectsApi(kube.cluster.api)
        custom.create_namespaced_custom_object("kafka.strimzi.io", version, kube.namespace,
                                               "kafkas", STRIMZI_KAFKA)
        custom.patch_namespaced_custom_object_status(
            "kafka.strimzi.io", version, kube.namespace, "kafkas", "my-cluster",
            {"status": {"conditions": [{"type": "Ready", "status": "True"}], "listeners": [
                {"name": "plain", "bootstrapServers": kafka.bootstrap_servers}]}})
        train, test = f"susy-train-{uuid.uuid4().hex[:8]}", f"susy-test-{uuid.uuid4().hex[:8]}"
        produce_split(KafkaConnection(kafka.bootstrap_servers), train, test,
                      generate(TRAIN_ROWS + TEST_ROWS, seed=9), train_rows=TRAIN_ROWS,
                      progress=False)
        manifest = _example_for(kafka, train, test)
        manifest["spec"]["kafka"] = {"clusterRef": {"name": "my-cluster", "listener": "plain"}}
        kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-",
                             stdin=yaml.safe_dump(manifest))
        jobs = Jobs(kube.cluster.api, kube.namespace)
        eventually(lambda: jobs.phase("susy") in ("Succeeded", "Failed"), 300,
                   "the job to finish",
                   lambda: f"{jobs.status('susy')}\n{operator.tail()}\n{agent.logs()}")
        status = jobs.status("susy")
        assert status["phase"] == "Succeeded", agent.logs()
        assert status["bootstrapServers"] == kafka.bootstrap_servers
        assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
    finally:
        remove_strimzi_crds(kube.cluster.api)


def test_kafka_user_job_trains_over_scram_with_the_mounted_secret(
        kube: Kube, tmp_path: Path, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    operator, agent = cluster
    broker = scram_broker.start(tmp_path / "scram-kafka", "trainer", "s3cret-pass")
    version = install_strimzi_crds(kube.cluster.api, "1.2.0")
    try:
        custom: Any = kubernetes.client.CustomObjectsApi(kube.cluster.api)
        group, ns = "kafka.strimzi.io", kube.namespace
        kafka = {**STRIMZI_KAFKA, "spec": {"kafka": {"listeners": [
            {"name": "scram", "port": 9094, "type": "internal", "tls": False,
             "authentication": {"type": "scram-sha-512"}}]}}}
        custom.create_namespaced_custom_object(group, version, ns, "kafkas", kafka)
        custom.patch_namespaced_custom_object_status(group, version, ns, "kafkas", "my-cluster", {
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "listeners": [{"name": "scram",
                                      "bootstrapServers": broker.scram_servers}]}})
        custom.create_namespaced_custom_object(group, version, ns, "kafkausers", {
            "apiVersion": f"{group}/{version}", "kind": "KafkaUser",
            "metadata": {"name": "trainer", "labels": {"strimzi.io/cluster": "my-cluster"}},
            "spec": {"authentication": {"type": "scram-sha-512"}}})
        custom.patch_namespaced_custom_object_status(group, version, ns, "kafkausers", "trainer", {
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "secret": "trainer", "username": "trainer"}})
        # What Strimzi's User Operator writes: the password under `password`.
        core: Any = kubernetes.client.CoreV1Api(kube.cluster.api)
        core.create_namespaced_secret(ns, {
            "metadata": {"name": "trainer"}, "stringData": {"password": "s3cret-pass"}})

        train, test = f"susy-train-{uuid.uuid4().hex[:8]}", f"susy-test-{uuid.uuid4().hex[:8]}"
        produce_split(KafkaConnection(broker.plain_servers), train, test,
                      generate(TRAIN_ROWS + TEST_ROWS, seed=10), train_rows=TRAIN_ROWS,
                      progress=False)
        manifest = yaml.safe_load(EXAMPLE.read_text())
        manifest["spec"]["kafka"] = {"clusterRef": {"name": "my-cluster", "listener": "scram"},
                                     "userRef": {"name": "trainer"}}
        manifest["spec"]["train"].update({"topic": train, "epochs": 2})
        manifest["spec"]["evaluate"].update({"topic": test, "streamTimeoutMs": 3000})
        kube.cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(manifest))
        jobs = Jobs(kube.cluster.api, ns)
        eventually(lambda: jobs.phase("susy") in ("Succeeded", "Failed"), 300,
                   "the job to finish",
                   lambda: f"{jobs.status('susy')}\n{operator.tail()}\n{agent.logs()}")
        status = jobs.status("susy")
        # The SCRAM listener admits only authenticated clients: success means SCRAM worked.
        assert status["phase"] == "Succeeded", agent.logs()
        assert status["bootstrapServers"] == broker.scram_servers
        assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
    finally:
        remove_strimzi_crds(kube.cluster.api)
        broker.stop()
