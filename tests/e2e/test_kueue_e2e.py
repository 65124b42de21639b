"""End to end with Kueue: jobs labelled for a LocalQueue train on the real local Kafka as the
ClusterQueue's quota admits them, and a preempted trainer resumes from its checkpoint.

The operator, Kueue's manager and the pods run as local processes; `KubeletAgent` plays the
kubelet (it stops a pod's process when the Job controller deletes the pod of a Job Kueue
suspended: SIGTERM, as a kubelet does).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from streamtrain_operator.kueue import PRIORITY_CLASS_LABEL, QUEUE_LABEL

from localparts.kueue import KueueManager
from tests.conftest import KafkaHandle, Kube
from tests.e2e.harness import (
    REPO,
    Jobs,
    OperatorProcess,
    eventually,
    fresh_split,
    install_streamtrain_crd,
)
from tests.e2e.kubelet_agent import KubeletAgent
from tests.e2e.queues import Queues, kueue_objects
from workload.datagen.produce import encoded_chunks
from workload.datagen.synthetic import generate
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_chunks
from workload.spec import DataSpec

EXAMPLE = REPO / "examples" / "01-minimal" / "job.yaml"
TRAIN_ROWS, TEST_ROWS = 3000, 1000
CLAIM = "kueue-models"
QUEUE = "team"
HALF_CPU = {"resources": {"requests": {"cpu": "500m"}}}
"""Each trainer and evaluator asks half a CPU: a ClusterQueue of 1 CPU admits two at a time."""

Cluster = tuple[OperatorProcess, KubeletAgent, Queues, Jobs]


@pytest.fixture
def cluster(kube: Kube, kueue: KueueManager, tmp_path: Path) -> Iterator[Cluster]:
    """The CRD, the operator, the kubelet agent and the test's Kueue objects."""
    install_streamtrain_crd(kube.cluster.api)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    agent = KubeletAgent(kube.cluster.api, kube.namespace, tmp_path / "pods").start()
    with kueue_objects(kube.cluster.api, kube.namespace) as queues:
        yield operator, agent, queues, Jobs(kube.cluster.api, kube.namespace)
    agent.stop()
    operator.stop()
    assert kueue.alive(), kueue.log()


def _manifest(name: str, servers: str, train: str, test: str, epochs: int,
              labels: dict[str, str], resources: dict[str, Any]) -> dict[str, Any]:
    """The minimal example as job `name`: fresh topics, `epochs` epochs without early stopping,
    its own folder on the shared claim, Kueue's `labels`, `resources` for trainer and
    evaluator."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    manifest["metadata"] = {"name": name, "labels": labels}
    spec = manifest["spec"]
    spec["kafka"]["bootstrapServers"] = servers
    spec["train"].update(topic=train, epochs=epochs, earlyStopping={"patience": 0})
    spec["evaluate"].update(topic=test, consumerGroup=f"eval-{uuid.uuid4().hex[:8]}",
                            streamTimeoutMs=3000)
    spec["model"]["output"] = {"path": f"/models/{name}", "volumeClaim": CLAIM}
    spec.update(trainer=resources, evaluator=resources)
    return manifest


def _apply(kube: Kube, manifest: dict[str, Any]) -> None:
    kube.cluster.kubectl("apply", "-n", kube.namespace, "-f", "-", stdin=yaml.safe_dump(manifest))


def _diagnosis(cluster: Cluster, kueue: KueueManager, names: list[str]) -> Callable[[], str]:
    operator, agent, queues, jobs = cluster
    return lambda: ("\n".join(f"{name}: {jobs.status(name)}" for name in names) +
                    f"\nworkloads: {[w.get('status') for w in queues.workloads()]}"
                    f"\n--- operator\n{operator.tail()}\n--- kueue\n{kueue.log()}"
                    f"\n--- pods\n{agent.logs()}")


def _succeeded(jobs: Jobs, name: str, diagnose: Callable[[], str]) -> dict[str, Any]:
    """Wait for job `name` to end; its status, which must say Succeeded."""
    eventually(lambda: jobs.phase(name) in ("Succeeded", "Failed"), 600, f"{name} to finish",
               diagnose)
    status = jobs.status(name)
    assert status["phase"] == "Succeeded", diagnose()
    return status


def _folder(agent: KubeletAgent, jobs: Jobs, name: str) -> Path:
    return (agent.claim_folder(CLAIM) / jobs.namespace / name /
            jobs.get(name)["metadata"]["uid"])


def test_three_jobs_on_quota_for_two_run_two_at_a_time_and_each_succeeds_on_its_own(
        kube: Kube, kafka: KafkaHandle, kueue: KueueManager, cluster: Cluster) -> None:
    _, agent, queues, jobs = cluster
    queues.local_queue(QUEUE, queues.cluster_queue("1"))
    train, test = fresh_split(kafka.bootstrap_servers, TRAIN_ROWS, TEST_ROWS, seed=21)
    epochs = {"first": 2, "second": 3, "third": 4}
    for name, count in epochs.items():
        _apply(kube, _manifest(name, kafka.bootstrap_servers, train, test, count,
                               {QUEUE_LABEL: QUEUE}, HALF_CPU))
    names = list(epochs)
    diagnose = _diagnosis(cluster, kueue, names)

    most_running = [0]

    def two_training_one_queued() -> list[str] | None:
        most_running[0] = max(most_running[0], len(agent.running))
        phases = {name: jobs.phase(name) for name in names}
        queued = [name for name, phase in phases.items() if phase == "Queued"]
        training = [name for name, phase in phases.items() if phase == "Training"]
        return queued if len(queued) == 1 and len(training) == 2 else None
    waiting = eventually(two_training_one_queued, 120, "two jobs Training and one Queued",
                         diagnose)[0]
    assert jobs.status(waiting)["reason"] == "WaitingForAdmission"
    assert jobs.pods(f"{waiting}-train") == []

    def kueues_word() -> str:
        queued = jobs.condition(waiting, "Queued") or {}
        return str(queued.get("message", "")) if queued.get("status") == "True" else "admitted"
    # The operator looks at a queued job's Workload again 2 s after it was queued, then less
    # often: Kueue's word replaces the operator's own while the job waits.
    message = eventually(lambda: "couldn't assign" in kueues_word() and kueues_word(), 60,
                         "Kueue's message while the job waits", diagnose)
    assert "insufficient unused quota for cpu" in message, message

    def all_finished() -> bool:
        most_running[0] = max(most_running[0], len(agent.running))
        return all(jobs.phase(name) in ("Succeeded", "Failed") for name in names)
    eventually(all_finished, 600, "every job to finish", diagnose)
    assert most_running[0] <= 2, most_running  # never more pods than the quota admits

    others = [jobs.batch.read_namespaced_job(f"{name}-train", jobs.namespace).status
              for name in names if name != waiting]
    started = jobs.batch.read_namespaced_job(f"{waiting}-train", jobs.namespace).status
    # The queued trainer started only once a running one had finished.
    assert started.start_time >= min(other.completion_time for other in others)
    for name, count in epochs.items():
        status = jobs.status(name)
        assert status["phase"] == "Succeeded", diagnose()
        assert status["metrics"]["epochsTrained"] == count
        assert status["metrics"]["recordsEvaluated"] == TEST_ROWS
        uid = jobs.get(name)["metadata"]["uid"]
        assert status["model"]["uri"] == f"pvc://{CLAIM}/{jobs.namespace}/{name}/{uid}/model.keras"
        trained = json.loads((_folder(agent, jobs, name) / "results-train.json").read_text())
        assert (trained["job"], trained["epochsRun"]) == (name, count)
        assert not any(c["type"] == "Queued" and c["status"] == "True"
                       for c in status["conditions"])


MOST_OF_A_CPU = {"resources": {"requests": {"cpu": "600m"}}}
"""Two such pods never fit in the 1 CPU of a preemption test's ClusterQueue."""


def _low_and_high(queues: Queues) -> tuple[dict[str, str], dict[str, str]]:
    """A LocalQueue on 1 CPU whose ClusterQueue preempts lower priorities; the labels of a low-
    and of a high-priority job in it."""
    queue = queues.local_queue(QUEUE, queues.cluster_queue("1", preempt_lower_priority=True))
    return ({QUEUE_LABEL: queue, PRIORITY_CLASS_LABEL: queues.priority_class("low", 100)},
            {QUEUE_LABEL: queue, PRIORITY_CLASS_LABEL: queues.priority_class("high", 1000)})


def _preempted(jobs: Jobs, name: str, diagnose: Callable[[], str]) -> None:
    """Wait for job `name` to be preempted: Queued again, waiting for admission."""
    eventually(lambda: jobs.phase(name) in ("Queued", "Succeeded"), 120, f"{name} preempted",
               diagnose)
    assert jobs.phase(name) == "Queued", f"{name} finished before it was preempted"
    assert jobs.status(name)["reason"] == "WaitingForAdmission"


PREEMPTED_ROWS, PREEMPTED_EPOCHS = 6000, 30
"""The low-priority trainer's work: long enough (about half a minute here) for the preemption,
which takes a few seconds, to land while it trains."""


def test_a_preempted_trainer_checkpoints_waits_queued_and_resumes_where_it_stopped(
        kube: Kube, kafka: KafkaHandle, kueue: KueueManager, cluster: Cluster) -> None:
    _, agent, queues, jobs = cluster
    low, high = _low_and_high(queues)
    servers = kafka.bootstrap_servers
    long_train, test = fresh_split(servers, PREEMPTED_ROWS, TEST_ROWS, seed=22)
    short_train, _ = fresh_split(servers, TRAIN_ROWS, TEST_ROWS, seed=23)
    _apply(kube, _manifest("patient", servers, long_train, test, PREEMPTED_EPOCHS, low,
                           MOST_OF_A_CPU))
    diagnose = _diagnosis(cluster, kueue, ["patient", "urgent"])
    eventually(lambda: jobs.phase("patient") == "Training", 120, "patient admitted", diagnose)
    state = _folder(agent, jobs, "patient") / "checkpoints" / "state.json"

    def epochs_done() -> int:
        return int(json.loads(state.read_text())["epochsDone"]) if state.exists() else 0
    eventually(lambda: epochs_done() >= 1, 120, "a first epoch checkpointed", diagnose)

    _apply(kube, _manifest("urgent", servers, short_train, test, 2, high, MOST_OF_A_CPU))
    _preempted(jobs, "patient", diagnose)
    stopped_at = epochs_done()
    assert 1 <= stopped_at < PREEMPTED_EPOCHS

    _succeeded(jobs, "urgent", diagnose)
    status = _succeeded(jobs, "patient", diagnose)
    assert status["metrics"]["epochsTrained"] == PREEMPTED_EPOCHS
    assert status["metrics"]["recordsEvaluated"] == TEST_ROWS

    trained = json.loads((_folder(agent, jobs, "patient") / "results-train.json").read_text())
    # The second pod started from the checkpoint the first wrote when it was stopped, and ran
    # only the epochs left: none twice.
    assert trained["resumedAtEpoch"] >= stopped_at
    assert trained["resumedAtEpoch"] + trained["epochsRun"] == PREEMPTED_EPOCHS
    assert all(len(values) == PREEMPTED_EPOCHS for values in trained["history"].values())
    stops = [path.read_text() for path in agent.workdir.glob("patient-train-*/termination-log")]
    assert any("stopped (SIGTERM)" in text for text in stops), stops


HALF_TEST_ROWS = 500
FOLLOW_MS = 30000
"""The preempted evaluator follows its topic until no record has come for 30 s: the second half
of its records arrives while it waits in the queue, whenever it is readmitted."""


def test_a_preempted_evaluator_resumes_from_its_ledger_and_scores_each_record_once(
        kube: Kube, kafka: KafkaHandle, kueue: KueueManager, cluster: Cluster) -> None:
    _, agent, queues, jobs = cluster
    low, high = _low_and_high(queues)
    servers = kafka.bootstrap_servers
    train, test = fresh_split(servers, TRAIN_ROWS, HALF_TEST_ROWS, seed=24)
    patient = _manifest("scorer", servers, train, test, 1, low, MOST_OF_A_CPU)
    patient["spec"]["evaluate"]["streamTimeoutMs"] = FOLLOW_MS
    group = patient["spec"]["evaluate"]["consumerGroup"]
    _apply(kube, patient)
    diagnose = _diagnosis(cluster, kueue, ["scorer", "urgent"])

    def scored() -> int:
        return sum(offset for (topic, _), offset in kafka.committed(group).items()
                   if topic == test and offset > 0)
    eventually(lambda: scored() == HALF_TEST_ROWS, 300, "the first half scored", diagnose)

    urgent = _manifest("urgent", servers, train, test, 1, high, MOST_OF_A_CPU)
    del urgent["spec"]["train"]
    urgent["spec"]["model"]["source"] = {"job": "scorer"}  # its model: no training of its own
    _apply(kube, urgent)
    _preempted(jobs, "scorer", diagnose)
    produce_chunks(KafkaConnection(servers), test, encoded_chunks(
        generate(HALF_TEST_ROWS, seed=25), DataSpec()), HALF_TEST_ROWS, 2, False)

    _succeeded(jobs, "urgent", diagnose)
    status = _succeeded(jobs, "scorer", diagnose)
    assert status["metrics"]["recordsEvaluated"] == 2 * HALF_TEST_ROWS  # each record once
    evaluated = json.loads((_folder(agent, jobs, "scorer") / "results-evaluate.json").read_text())
    assert evaluated["recordsThisRun"] == HALF_TEST_ROWS  # the rest was in the ledger
    assert scored() == 2 * HALF_TEST_ROWS
