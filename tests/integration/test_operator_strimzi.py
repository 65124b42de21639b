"""Strimzi references on the real API server, with Strimzi's CRDs (1.2.0: v1, 0.45.0: v1beta2).

No Strimzi operator runs: the test writes the status Strimzi would write and
checks that the operator waits with a reason until it can resolve the
address, then runs pods with the listener's address and the user's Secret.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from tests.conftest import Kube, KubeCluster
from tests.e2e.harness import (
    STRIMZI_GROUP,
    Jobs,
    OperatorProcess,
    StrimziObjects,
    eventually,
    install_streamtrain_crd,
    install_strimzi_crds,
    remove_strimzi_crds,
)
from workload.contract import BOOTSTRAP_ENV, CREDENTIALS_PATH, JOB_SPEC_ENV, SASL_USERNAME_ENV

LISTENER_ADDRESS = "127.0.0.1:9092"


def _kafka(name: str, version: str) -> dict[str, Any]:
    return {"apiVersion": f"{STRIMZI_GROUP}/{version}", "kind": "Kafka", "metadata": {"name": name},
            "spec": {"kafka": {"listeners": [
                {"name": "plain", "port": 9092, "type": "internal", "tls": False},
                {"name": "tls", "port": 9093, "type": "internal", "tls": True}]}}}


def _ready(listeners: list[dict[str, str]]) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "listeners": listeners}}


@pytest.fixture(scope="module", params=["1.2.0", "0.45.0"])
def strimzi(request: pytest.FixtureRequest, kube_cluster: KubeCluster) -> Iterator[str]:
    """Strimzi's CRDs of one release installed; yields the API version they serve."""
    install_streamtrain_crd(kube_cluster.api)
    yield install_strimzi_crds(kube_cluster.api, request.param)
    if request.param == "0.45.0":
        remove_strimzi_crds(kube_cluster.api)


@pytest.fixture
def operator(kube: Kube, strimzi: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                              tmp_path / "operator.log").start()
    yield process
    process.stop()


def test_cluster_ref_waits_with_reasons_then_runs_with_listener_address_and_user_secret(
        kube: Kube, strimzi: str, operator: OperatorProcess) -> None:
    jobs = Jobs(kube.cluster.api, kube.namespace)
    custom: Any = kubernetes.client.CustomObjectsApi(kube.cluster.api)
    ns = kube.namespace

    def waits_for(reason: str) -> None:
        eventually(lambda: (jobs.condition("susy", "KafkaReady") or {}).get("reason") == reason,
                   30, f"KafkaReady reason {reason}",
                   lambda: f"{jobs.status('susy')}\n{operator.tail()}")
        assert jobs.condition("susy", "KafkaReady")["status"] == "False"  # type: ignore[index]
        assert jobs.phase("susy") == "Pending" and jobs.child_jobs() == []

    jobs.create("susy", {"kafka": {"clusterRef": {"name": "my-cluster", "listener": "plain"},
                                   "userRef": {"name": "trainer"}, "manageTopics": True},
                         "train": {"topic": "susy-train"}, "evaluate": {"topic": "susy-test"},
                         "model": {"output": {"volumeClaim": "models"}}})
    waits_for("KafkaNotFound")

    custom.create_namespaced_custom_object(STRIMZI_GROUP, strimzi, ns, "kafkas",
                                           _kafka("my-cluster", strimzi))
    waits_for("KafkaNotReady")

    custom.patch_namespaced_custom_object_status(STRIMZI_GROUP, strimzi, ns, "kafkas", "my-cluster",
                                                 _ready([{"name": "tls",
                                                          "bootstrapServers": "x:9093"}]))
    waits_for("ListenerNotFound")
    assert "has: tls" in jobs.condition("susy", "KafkaReady")["message"]  # type: ignore[index]

    custom.patch_namespaced_custom_object_status(
        STRIMZI_GROUP, strimzi, ns, "kafkas", "my-cluster",
        _ready([{"name": "plain", "bootstrapServers": LISTENER_ADDRESS}]))
    waits_for("KafkaUserNotFound")

    StrimziObjects(kube.cluster.api, ns, strimzi).scram_user("trainer", "trainer")

    eventually(lambda: jobs.phase("susy") == "Training", 30, "Training", operator.tail)
    status = jobs.status("susy")
    assert status["bootstrapServers"] == LISTENER_ADDRESS
    pod = jobs.batch.read_namespaced_job("susy-train", ns).spec.template.spec
    env = {item.name: item.value for item in pod.containers[0].env}
    assert env[BOOTSTRAP_ENV] == LISTENER_ADDRESS and env[SASL_USERNAME_ENV] == "trainer"
    assert json.loads(env[JOB_SPEC_ENV])["kafka"]["clusterRef"]["name"] == "my-cluster"
    secrets = [volume.secret.secret_name for volume in pod.volumes if volume.secret]
    assert secrets == ["trainer"]  # a plain listener: no cluster CA mounted
    assert CREDENTIALS_PATH in {mount.mount_path for mount in pod.containers[0].volume_mounts}
    topics = custom.list_namespaced_custom_object(STRIMZI_GROUP, strimzi, ns, "kafkatopics")["items"]
    assert {(t["spec"]["topicName"], t["spec"]["partitions"]) for t in topics} == {
        ("susy-train", 1), ("susy-test", 2)}
    assert all(t["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster" for t in topics)


def test_tls_listener_mounts_the_cluster_ca_secret_in_the_pods(kube: Kube, strimzi: str,
                                             operator: OperatorProcess) -> None:
    jobs = Jobs(kube.cluster.api, kube.namespace)
    custom: Any = kubernetes.client.CustomObjectsApi(kube.cluster.api)
    custom.create_namespaced_custom_object(STRIMZI_GROUP, strimzi, kube.namespace, "kafkas",
                                           _kafka("secure", strimzi))
    custom.patch_namespaced_custom_object_status(
        STRIMZI_GROUP, strimzi, kube.namespace, "kafkas", "secure",
        _ready([{"name": "tls", "bootstrapServers": "secure-kafka-bootstrap:9093"}]))
    jobs.create("tls", {"kafka": {"clusterRef": {"name": "secure", "listener": "tls"}},
                        "train": {"topic": "susy-train"}})
    eventually(lambda: jobs.phase("tls") == "Training", 30, "Training", operator.tail)
    pod = jobs.batch.read_namespaced_job("tls-train", kube.namespace).spec.template.spec
    secrets = [volume.secret.secret_name for volume in pod.volumes if volume.secret]
    assert secrets == ["secure-cluster-ca-cert"]
