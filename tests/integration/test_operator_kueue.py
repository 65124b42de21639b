"""The operator with Kueue v0.17.0 on the real control plane: queued child Jobs, admission
against a ClusterQueue's quota, the `Queued` phase with Kueue's message, user suspend.

No kubelet runs here: an admitted Job's pods are created and stay Pending, which is all these
tests need. Training through admission and preemption is in tests/e2e/test_kueue_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from streamtrain_operator.kueue import QUEUE_LABEL

from localparts.kueue import KueueManager
from tests.conftest import Kube
from tests.e2e.harness import Jobs, OperatorProcess, eventually, install_streamtrain_crd
from tests.e2e.queues import Queues, admitted, kueue_objects

SPEC: dict[str, Any] = {
    "kafka": {"bootstrapServers": "127.0.0.1:9092"},
    "train": {"topic": "susy-train"},
    "trainer": {"resources": {"requests": {"cpu": "600m"}}},
    "model": {"output": {"path": "/models/susy", "volumeClaim": "models"}},
}
QUEUE = "team"


@pytest.fixture
def queued(kube: Kube, kueue: KueueManager,
           tmp_path: Path) -> Iterator[tuple[Jobs, Queues, OperatorProcess]]:
    """The operator watching the test's namespace, Kueue, and a LocalQueue `team` whose
    ClusterQueue has 1 CPU of quota."""
    install_streamtrain_crd(kube.cluster.api)
    operator = OperatorProcess(kube.cluster.kubeconfig, kube.namespace,
                               tmp_path / "operator.log").start()
    with kueue_objects(kube.cluster.api, kube.namespace) as queues:
        queues.local_queue(QUEUE, queues.cluster_queue("1"))
        yield Jobs(kube.cluster.api, kube.namespace), queues, operator
    operator.stop()
    assert kueue.alive(), kueue.log()


def _diagnosis(jobs: Jobs, queues: Queues, operator: OperatorProcess, kueue: KueueManager,
               name: str) -> Any:
    return lambda: (f"status: {jobs.status(name)}\nworkloads: "
                    f"{[w.get('status') for w in queues.workloads()]}\n--- operator\n"
                    f"{operator.tail()}\n--- kueue\n{kueue.log()}")


def _child(jobs: Jobs, name: str) -> Any:
    found = [job for job in jobs.child_jobs() if job.metadata.name == name]
    return found[0] if found else None


def test_a_group_too_big_for_the_quota_waits_queued_with_kueues_message_and_no_pod(
        queued: tuple[Jobs, Queues, OperatorProcess], kueue: KueueManager, kube: Kube) -> None:
    jobs, queues, operator = queued
    spec = {**SPEC, "trainer": {"replicas": 2, "resources": {"requests": {"cpu": "600m"}}}}
    jobs.create("group", spec, labels={QUEUE_LABEL: QUEUE})
    diagnose = _diagnosis(jobs, queues, operator, kueue, "group")

    def kueues_word() -> bool:
        condition = jobs.condition("group", "Queued") or {}
        return "couldn't assign flavors" in condition.get("message", "")
    eventually(kueues_word, 60, "Kueue's message on the Queued condition", diagnose)
    # Both replicas' requests together, in Kueue's own words.
    assert "current podset request (1200m)" in (jobs.condition("group", "Queued") or {})[
        "message"]
    status = jobs.status("group")
    assert (status["phase"], status["reason"]) == ("Queued", "WaitingForAdmission")
    child = _child(jobs, "group-train")
    assert child.spec.suspend is True and child.metadata.labels[QUEUE_LABEL] == QUEUE
    assert jobs.pods("group-train") == []  # 1.2 CPU asked, 1 CPU of quota: no pod at all
    assert len(queues.workloads()) == 1  # one Indexed Job, one Workload for both replicas
    row = kube.cluster.kubectl("get", "stj", "group", "-n", kube.namespace).stdout
    assert row.splitlines()[1].split()[1:3] == ["Queued", "WaitingForAdmission"]

    queues.set_cpu_quota(f"{jobs.namespace}-cq", "2")
    eventually(lambda: jobs.phase("group") == "Training", 60, "admission of the whole group",
               diagnose)
    eventually(lambda: len(jobs.pods("group-train")) == 2, 60, "both workers' pods", diagnose)
    assert _child(jobs, "group-train").spec.suspend is False
    assert admitted(queues.workloads()[0])
    assert jobs.status("group").get("reason") is None


def test_kueue_resumes_an_admitted_job_that_is_suspended_so_a_user_suspend_deletes_it(
        queued: tuple[Jobs, Queues, OperatorProcess], kueue: KueueManager,
        kube: Kube) -> None:
    jobs, queues, operator = queued
    # What the operator must not do: a suspended admitted Job is resumed by Kueue at once.
    batch: Any = kubernetes.client.BatchV1Api(kube.cluster.api)
    batch.create_namespaced_job(kube.namespace, {
        "metadata": {"name": "plain", "labels": {QUEUE_LABEL: QUEUE}},
        "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}})
    eventually(lambda: _child(jobs, "plain").spec.suspend is False, 60, "Kueue admitting it")
    batch.patch_namespaced_job("plain", kube.namespace, {"spec": {"suspend": True}})
    eventually(lambda: _child(jobs, "plain").spec.suspend is False, 60,
               "Kueue resuming the Job it admitted")
    batch.delete_namespaced_job("plain", kube.namespace, propagation_policy="Background")

    jobs.create("held", SPEC, labels={QUEUE_LABEL: QUEUE})
    diagnose = _diagnosis(jobs, queues, operator, kueue, "held")
    eventually(lambda: jobs.phase("held") == "Training", 60, "admission", diagnose)
    first = _child(jobs, "held-train").metadata.uid
    jobs.patch_spec("held", {"runPolicy": {"suspend": True}})
    eventually(lambda: jobs.phase("held") == "Suspended" and _child(jobs, "held-train") is None,
               60, "Suspended, its Job deleted", diagnose)
    eventually(lambda: not jobs.pods("held-train"), 60, "its pod deleted", diagnose)

    jobs.patch_spec("held", {"runPolicy": {"suspend": False}})
    eventually(lambda: jobs.phase("held") == "Training", 60, "admission again", diagnose)
    again = _child(jobs, "held-train")
    assert again.metadata.uid != first and again.metadata.labels[QUEUE_LABEL] == QUEUE
    # The old Job's Workload went before the new Job came (foreground deletion): Kueue, which
    # finds a Job's Workload by the Job's name, admitted the new one on a Workload of its own.
    held = [(workload["metadata"]["labels"].get("kueue.x-k8s.io/job-uid"), admitted(workload))
            for workload in queues.workloads()
            if workload["metadata"]["ownerReferences"][0]["name"] == "held-train"]
    assert held == [(again.metadata.uid, True)]


def test_a_job_without_a_queue_label_is_left_to_the_operator_as_before(
        queued: tuple[Jobs, Queues, OperatorProcess], kueue: KueueManager) -> None:
    jobs, queues, operator = queued
    spec = {**SPEC, "trainer": {"resources": {"requests": {"cpu": "5"}}}}  # past any quota
    jobs.create("free", spec)
    eventually(lambda: jobs.phase("free") == "Training", 60, "Training",
               _diagnosis(jobs, queues, operator, kueue, "free"))
    child = _child(jobs, "free-train")
    assert child.spec.suspend is False
    assert not any(key.startswith("kueue.x-k8s.io/") for key in child.metadata.labels)
    assert queues.workloads() == []
