"""End to end: the team's own model (`examples/11-own-model`) on the real control plane.

The factory job is applied as the example writes it (pointed at the test broker, short runs):
the operator runs its trainer, evaluator and online learner; the kubelet agent runs each pod as
a local process with the example's folder on its Python path, which stands in for the team's
image (the workload image plus `team_models.py`; no image is built here). The job trains,
evaluates every test record exactly once (the consumer group's committed offsets are the end
offsets), learns online, and reports its multiclass figures and classes in status and
`kubectl get stj`. The same job starting from a `.keras` file on a claim trains end to end
too, and one whose file does not fit fails at once with `ShapeMismatch` naming both shapes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import pytest
import yaml

from tests.conftest import KafkaHandle, Kube
from tests.e2e.harness import REPO, Jobs, OperatorProcess, eventually, install_streamtrain_crd
from tests.e2e.kubelet_agent import KubeletAgent
from workload.datagen.records import encode
from workload.datagen.task_families import TICKETS
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.model.user import prepared_width

EXAMPLE = REPO / "examples" / "11-own-model"
TRAIN_ROWS, TEST_ROWS, ONLINE_ROWS = 3000, 1000, 600


@pytest.fixture
def cluster(kube: Kube, tmp_path: Path) -> Iterator[tuple[OperatorProcess, KubeletAgent]]:
    """The CRD, the operator, and a kubelet agent whose pods import the team's module."""
    install_streamtrain_crd(kube.cluster.api)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    agent = KubeletAgent(kube.cluster.api, kube.namespace, tmp_path / "pods",
                         extra_env={"PYTHONPATH": str(EXAMPLE)}).start()
    yield operator, agent
    agent.stop()
    operator.stop()


def _topics(kafka: KafkaHandle) -> dict[str, str]:
    """Train, test and online topics of ticket records (1, 2 and 1 partitions)."""
    rows = TICKETS.generate(TRAIN_ROWS + TEST_ROWS + ONLINE_ROWS, seed=41)
    parts = {"train": rows.slice(0, TRAIN_ROWS),
             "evaluate": rows.slice(TRAIN_ROWS, TRAIN_ROWS + TEST_ROWS),
             "online": rows.slice(TRAIN_ROWS + TEST_ROWS, rows.rows)}
    topics = {}
    for mode, part in parts.items():
        partitions = 2 if mode == "evaluate" else 1
        topics[mode] = kafka.create_topic(f"own-{mode}", partitions)
        produce_messages(KafkaConnection(kafka.bootstrap_servers), topics[mode],
                         encode(part, TICKETS.data_spec()), partitions)
    return topics


def _manifest(kafka: KafkaHandle, topics: dict[str, str], name: str) -> dict[str, Any]:
    """The example's job pointed at the test broker and topics, with short phases."""
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLE / "job.yaml").read_text())
    manifest["metadata"]["name"] = name
    spec = manifest["spec"]
    spec["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    spec["train"].update(topic=topics["train"], epochs=3)
    spec["evaluate"].update(topic=topics["evaluate"], streamTimeoutMs=3000,
                            consumerGroup=f"eval-{uuid.uuid4().hex[:8]}")
    spec["online"].update(topic=topics["online"], streamTimeoutMs=4000,
                          consumerGroup=f"online-{uuid.uuid4().hex[:8]}")
    return manifest


def _apply(kube: Kube, manifest: dict[str, Any]) -> Jobs:
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-", stdin=yaml.safe_dump(manifest))
    return Jobs(kube.cluster.api, kube.namespace)


def _finished(jobs: Jobs, name: str, cluster: tuple[OperatorProcess, KubeletAgent]
              ) -> tuple[dict[str, Any], str]:
    """Wait for the job to end; its status, and what to show when an assertion fails."""
    operator, agent = cluster

    def diagnose() -> str:
        return (f"status: {jobs.status(name)}\n--- operator\n{operator.tail()}\n"
                f"--- pods\n{agent.logs()}")

    eventually(lambda: jobs.phase(name) in ("Succeeded", "Failed"), 600, f"{name} to finish",
               diagnose)
    return jobs.status(name), diagnose()


def test_the_teams_factory_job_trains_evaluates_exactly_once_and_learns_online(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    topics = _topics(kafka)
    manifest = _manifest(kafka, topics, "router")
    jobs = _apply(kube, manifest)

    status, diagnosis = _finished(jobs, "router", cluster)

    assert status["phase"] == "Succeeded", diagnosis
    metrics = status["metrics"]
    assert metrics["recordsEvaluated"] == TEST_ROWS
    group = manifest["spec"]["evaluate"]["consumerGroup"]
    assert kafka.committed(group) == {(topics["evaluate"], p): end for p, end
                                      in kafka.end_offsets(topics["evaluate"]).items()}
    assert metrics["evalMetric"] == "accuracy" and 0.4 < metrics["evalValue"] <= 1.0
    assert metrics["evalMacroF1"] > 0 and metrics["recordsOnline"] == ONLINE_ROWS
    assert metrics["onlineAccuracy"] > 0.3
    assert status["model"]["classes"] == sorted(TICKETS.classes)
    table = kube.cluster.kubectl("get", "stj", "router", "-n", kube.namespace).stdout
    row = next(line for line in table.splitlines() if line.startswith("router"))
    assert "Succeeded" in row and "accuracy" in row and str(metrics["evalValue"]) in row
    _, agent = cluster
    folder = (agent.claim_folder("susy-models") / kube.namespace / "router" /
              jobs.get("router")["metadata"]["uid"])
    assert "team_router" in (folder / "results-train.json").read_text()


def test_a_job_starting_from_a_keras_file_trains_and_a_misfit_fails_naming_both_shapes(
        kube: Kube, kafka: KafkaHandle, cluster: tuple[OperatorProcess, KubeletAgent]) -> None:
    _, agent = cluster
    topics = _topics(kafka)
    width = prepared_width(TICKETS.data_spec())
    routers = agent.claim_folder("team-models") / "routers"
    routers.mkdir(parents=True, exist_ok=True)
    for name, takes in (("v2.keras", width), ("old.keras", width - 5)):
        keras.Sequential([keras.Input(shape=(takes,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(6, activation="softmax")]).save(routers / name)
    jobs = None
    for name, file in (("from-file", "routers/v2.keras"), ("misfit", "routers/old.keras")):
        manifest = _manifest(kafka, topics, name)
        del manifest["spec"]["model"]["factory"], manifest["spec"]["online"]
        manifest["spec"]["model"]["file"] = {"volumeClaim": "team-models", "path": file}
        jobs = _apply(kube, manifest)
    assert jobs is not None

    status, diagnosis = _finished(jobs, "from-file", cluster)
    assert status["phase"] == "Succeeded", diagnosis
    assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
    assert status["metrics"]["evalMetric"] == "accuracy"

    status, diagnosis = _finished(jobs, "misfit", cluster)
    assert status["phase"] == "Failed" and status["reason"] == "ShapeMismatch", diagnosis
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (f"the model in 'routers/old.keras' takes inputs of shape (batch, {width - 5}), but "
            f"the prepared features of this job have shape (batch, {width})") in failed["message"]
    assert status["trainer"]["failed"] == 1  # not retried
