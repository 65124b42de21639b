"""The operator against the real kube-apiserver: child Jobs, status, run policy, restarts.

No kubelet runs here: a test finishes a pod by writing its status the way a
kubelet would (phase, exit code, termination message). The end-to-end test
under tests/e2e runs the real workload instead.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamtrain_operator.builders import JOB_UID_LABEL, owner_reference
from streamtrain_operator.controller import Controller
from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.settings import OperatorSettings

from tests.conftest import Kube, KubeCluster
from tests.e2e.harness import (
    Jobs,
    OperatorProcess,
    eventually,
    finish_pod,
    install_streamtrain_crd,
)
from tests.e2e.progress_client import pod_token, post, published_ca
from workload.contract import progress_audience
from workload.status import Metrics, PodReport

SPEC: dict[str, Any] = {"kafka": {"bootstrapServers": "127.0.0.1:9092"}, "train": {"topic": "susy-train"},
    "evaluate": {"topic": "susy-test"},
                        "model": {"output": {"path": "/models/susy", "volumeClaim": "models"}},
                        "runPolicy": {"backoffLimit": 1}}
TRAINED = PodReport(mode="train", ok=True, epoch=10, model_uri="/models/model",
                    metrics=Metrics(train_loss=0.45, train_accuracy=0.78)).to_message()
EVALUATED = PodReport(mode="evaluate", ok=True, metrics=Metrics(
    eval_accuracy=0.787, eval_auc=0.861, records_evaluated=4000, bad_records=0)).to_message()


@pytest.fixture(scope="session")
def streamtrain_crd(kube_cluster: KubeCluster) -> KubeCluster:
    """The committed CRD, installed once per session."""
    install_streamtrain_crd(kube_cluster.api)
    return kube_cluster


@pytest.fixture
def operator(kube: Kube, streamtrain_crd: KubeCluster,
             tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator watching this test's namespace; its log is shown when a test fails."""
    process = OperatorProcess(streamtrain_crd.kubeconfig, kube.namespace,
                              tmp_path / "operator.log").start()
    yield process
    process.stop()


@pytest.fixture
def jobs(kube: Kube, streamtrain_crd: KubeCluster) -> Jobs:
    return Jobs(streamtrain_crd.api, kube.namespace)


PHASE_WAIT_S = 120.0
"""How long a job may take to reach a phase: a bound for a hang, not a speed target (the wait ends
as soon as the phase is there; 30 s ran out under a load average of 16-20 on 2 cores)."""


def _wait_phase(jobs: Jobs, operator: OperatorProcess, name: str, phase: str,
                timeout_s: float = PHASE_WAIT_S) -> dict[str, Any]:
    eventually(lambda: jobs.phase(name) == phase, timeout_s, f"{name} to reach {phase}",
               lambda: f"status: {jobs.status(name)}\noperator log:\n{operator.tail()}")
    return jobs.status(name)


def _pod_of(jobs: Jobs, child: str, operator: OperatorProcess) -> Any:
    return eventually(lambda: next((pod for pod in jobs.pods(child)
                                    if pod.status.phase == "Pending"), None),
                      30, f"a pending pod of {child}", operator.tail)


def _complete(jobs: Jobs, child: str, message: str, operator: OperatorProcess) -> None:
    finish_pod(jobs.core, _pod_of(jobs, child, operator), 0, message)


def test_job_runs_train_then_evaluate_and_reports_metrics(
        jobs: Jobs, operator: OperatorProcess, kube: Kube) -> None:
    created = jobs.create("susy", SPEC)
    _wait_phase(jobs, operator, "susy", "Training")
    trainer = jobs.batch.read_namespaced_job("susy-train", kube.namespace)
    owner = trainer.metadata.owner_references[0]
    assert (owner.kind, owner.uid, owner.controller) == (
        "StreamingTrainingJob", created["metadata"]["uid"], True)
    container = trainer.spec.template.spec.containers[0]
    assert container.command == ["streamtrain", "run-mode", "train"]
    assert container.security_context.read_only_root_filesystem is True

    _complete(jobs, "susy-train", TRAINED, operator)
    _wait_phase(jobs, operator, "susy", "Evaluating")
    _complete(jobs, "susy-evaluate", EVALUATED, operator)
    status = _wait_phase(jobs, operator, "susy", "Succeeded")

    assert status["metrics"]["evalAccuracy"] == pytest.approx(0.787)
    assert status["metrics"]["trainLoss"] == pytest.approx(0.45)
    assert status["model"]["uri"] == "/models/model"
    assert status["observedGeneration"] == 1
    assert status["startTime"] <= status["completionTime"]
    assert status["trainer"]["succeeded"] == 1 and status["evaluator"]["succeeded"] == 1
    held = {c["type"]: c["status"] for c in status["conditions"]}
    assert held["Ready"] == "True" and held["Failed"] == "False" and held["Training"] == "False"
    # kopf posts events from a queue of its own, after the status patch.
    eventually(lambda: {"Training", "Evaluating", "Succeeded", "JobCreated"}
               <= {event.reason for event in jobs.events("susy")}, 30, "the events")
    table = kube.cluster.kubectl("get", "stj", "susy", "-n", kube.namespace).stdout
    assert "Succeeded" in table and "0.787" in table and "4000" in table
    spec_after = jobs.get("susy")
    assert "finalizers" not in spec_after["metadata"]
    assert not any(key.startswith("kopf") for key in spec_after["metadata"].get("annotations", {}))


def test_failing_trainer_retries_to_backoff_limit_then_fails_with_pod_message(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("broken", SPEC)
    _wait_phase(jobs, operator, "broken", "Training")
    failure = PodReport(mode="train", ok=False, message="topic susy-train is empty").to_message()
    for attempt in range(2):  # backoffLimit 1: the first failure is retried once
        pod = eventually(lambda: next((p for p in jobs.pods("broken-train")
                                       if p.status.phase == "Pending"), None),
                         30, f"attempt {attempt + 1}", operator.tail)
        finish_pod(jobs.core, pod, 1, failure)
    status = _wait_phase(jobs, operator, "broken", "Failed")
    failed = jobs.condition("broken", "Failed")
    assert failed is not None and failed["status"] == "True"
    assert "topic susy-train is empty" in failed["message"]
    assert "BackoffLimitExceeded" in failed["message"]
    assert status["trainer"]["failed"] == 2
    eventually(lambda: any(e.type == "Warning" and e.reason == "Failed"
                           for e in jobs.events("broken")), 30, "the Failed warning event")
    assert len(jobs.child_jobs()) == 1


def test_suspend_stops_pods_and_resume_continues(
        jobs: Jobs, operator: OperatorProcess, kube: Kube) -> None:
    jobs.create("pausable", SPEC)
    _wait_phase(jobs, operator, "pausable", "Training")
    _pod_of(jobs, "pausable-train", operator)
    jobs.patch_spec("pausable", {"runPolicy": {"suspend": True}})
    _wait_phase(jobs, operator, "pausable", "Suspended")
    eventually(lambda: not jobs.pods("pausable-train"), 30, "the trainer pod to be removed")
    child = jobs.batch.read_namespaced_job("pausable-train", kube.namespace)
    assert child.spec.suspend is True
    suspended = jobs.condition("pausable", "Suspended")
    assert suspended is not None and suspended["status"] == "True"

    jobs.patch_spec("pausable", {"runPolicy": {"suspend": False}})
    _wait_phase(jobs, operator, "pausable", "Training")
    _complete(jobs, "pausable-train", TRAINED, operator)
    _wait_phase(jobs, operator, "pausable", "Evaluating")


def test_deleting_the_job_deletes_its_children(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("doomed", SPEC)
    _wait_phase(jobs, operator, "doomed", "Training")
    _pod_of(jobs, "doomed-train", operator)
    jobs.delete("doomed")
    eventually(lambda: not jobs.child_jobs(), 60, "the child Job to be garbage-collected")
    eventually(lambda: not jobs.pods("doomed-train"), 60, "the pods to be garbage-collected")


def test_operator_killed_mid_job_converges_without_duplicates(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("sturdy", SPEC)
    _wait_phase(jobs, operator, "sturdy", "Training")
    operator.kill()
    _complete(jobs, "sturdy-train", TRAINED, operator)
    operator.start()
    _wait_phase(jobs, operator, "sturdy", "Evaluating")
    operator.kill()
    operator.start()
    _complete(jobs, "sturdy-evaluate", EVALUATED, operator)
    _wait_phase(jobs, operator, "sturdy", "Succeeded")
    names = sorted(job.metadata.name for job in jobs.child_jobs())
    assert names == ["sturdy-evaluate", "sturdy-train"]


def test_finished_job_children_are_deleted_after_ttl(
        jobs: Jobs, operator: OperatorProcess) -> None:
    spec = {**SPEC, "evaluate": None, "runPolicy": {"ttlSecondsAfterFinished": 1}}
    jobs.create("brief", spec)
    _wait_phase(jobs, operator, "brief", "Training")
    _complete(jobs, "brief-train", TRAINED, operator)
    status = _wait_phase(jobs, operator, "brief", "Succeeded")
    eventually(lambda: not jobs.child_jobs(), 30, "children deleted after the TTL", operator.tail)
    assert jobs.status("brief")["trainer"]["succeeded"] == 1
    assert status["metrics"]["trainAccuracy"] == pytest.approx(0.78)


def _scrape(operator: OperatorProcess) -> str:
    """The operator's Prometheus metrics page."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_metrics_and_liveness_endpoints_answer(jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("watched", SPEC)
    _wait_phase(jobs, operator, "watched", "Training")

    eventually(lambda: 'streamtrain_jobs{phase="Training"} 1.0' in _scrape(operator), 20,
               "the phase gauge", operator.tail)
    assert "streamtrain_reconcile_seconds_count" in _scrape(operator)
    health = f"http://127.0.0.1:{operator.liveness_port}/healthz"
    with urllib.request.urlopen(health, timeout=5) as response:
        assert response.status == 200


def test_foreign_job_with_the_child_name_is_not_adopted(
        jobs: Jobs, operator: OperatorProcess, kube: Kube) -> None:
    foreign = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "taken-train"},
               "spec": {"suspend": True, "template": {"spec": {
                   "restartPolicy": "Never",
                   "containers": [{"name": "c", "image": "busybox"}]}}}}
    jobs.batch.create_namespaced_job(kube.namespace, foreign)
    jobs.create("taken", SPEC)
    _wait_phase(jobs, operator, "taken", "Failed")
    failed = jobs.condition("taken", "Failed")
    assert failed is not None and failed["reason"] == "JobNameTaken"
    assert jobs.batch.read_namespaced_job("taken-train", kube.namespace).spec.suspend is True


def test_online_phase_follows_evaluation_and_ends_the_job(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("learner", {**SPEC, "online": {"topic": "susy-train", "streamTimeoutMs": 1000}})
    _wait_phase(jobs, operator, "learner", "Training")
    _complete(jobs, "learner-train", TRAINED, operator)
    _wait_phase(jobs, operator, "learner", "Evaluating")
    _complete(jobs, "learner-evaluate", EVALUATED, operator)
    _wait_phase(jobs, operator, "learner", "Online")
    online = jobs.condition("learner", "Online")
    assert online is not None and online["status"] == "True"
    learned = PodReport(mode="online", ok=True, metrics=Metrics(online_accuracy=0.75,
                                                                records_online=500))
    _complete(jobs, "learner-online", learned.to_message(), operator)
    status = _wait_phase(jobs, operator, "learner", "Succeeded")
    assert status["online"]["succeeded"] == 1
    assert status["metrics"]["onlineAccuracy"] == pytest.approx(0.75)
    assert status["metrics"]["evalAccuracy"] == pytest.approx(0.787)


def _counter(operator: OperatorProcess, name: str) -> float:
    """The sum of a counter's samples on the operator's metrics page."""
    return sum(float(line.split()[-1]) for line in _scrape(operator).splitlines()
               if line.startswith(name))


def _listed(operator: OperatorProcess) -> float:
    """Jobs the operator counts in its phase gauge (-1 while its metrics do not answer yet)."""
    try:
        return _counter(operator, "streamtrain_jobs{")
    except OSError:
        return -1


def test_finished_and_deleted_jobs_cost_no_api_requests(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("done", {**SPEC, "evaluate": None})
    _wait_phase(jobs, operator, "done", "Training")
    _complete(jobs, "done-train", TRAINED, operator)
    _wait_phase(jobs, operator, "done", "Succeeded")
    jobs.create("fleeting", SPEC)
    _wait_phase(jobs, operator, "fleeting", "Training")
    jobs.delete("fleeting")
    eventually(lambda: len(jobs.child_jobs()) == 1, 60, "the deleted job's child to go")
    # A restarted operator that resyncs every half second: finished jobs are never resynced.
    operator.stop()
    operator.settings["RESYNC_INTERVAL_S"] = "0.5"
    operator.start()
    eventually(lambda: _listed(operator) == 1, 30, "the operator to list the jobs", operator.tail)
    time.sleep(3.0)
    assert _counter(operator, "streamtrain_api_requests_total") == 0, operator.tail()
    assert _counter(operator, "streamtrain_reconcile_seconds_count") == 0


def test_passes_read_the_job_and_its_children_from_the_watches_not_the_api_server(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("cached", SPEC)
    _wait_phase(jobs, operator, "cached", "Training")
    reads = _counter(operator, 'streamtrain_api_requests_total{verb="GET"}')
    passes = _counter(operator, "streamtrain_reconcile_seconds_count")
    _complete(jobs, "cached-train", TRAINED, operator)
    _wait_phase(jobs, operator, "cached", "Evaluating")
    _complete(jobs, "cached-evaluate", EVALUATED, operator)
    status = _wait_phase(jobs, operator, "cached", "Succeeded")
    assert status["metrics"]["evalAccuracy"] == pytest.approx(0.787)
    assert _counter(operator, "streamtrain_reconcile_seconds_count") > passes + 2
    assert _counter(operator, 'streamtrain_api_requests_total{verb="GET"}') == reads, \
        operator.tail()


def test_a_resync_lists_what_the_watches_missed_into_the_store(
        jobs: Jobs, kube: Kube, streamtrain_crd: KubeCluster) -> None:
    controller = Controller(streamtrain_crd.api, OperatorSettings(namespaces=(kube.namespace,)),
                            OperatorMetrics())  # no watches: only the resync's lists feed it
    uid = jobs.create("unseen", SPEC)["metadata"]["uid"]
    child = {"metadata": {"name": "unseen-train", "labels": {JOB_UID_LABEL: uid},
                          "ownerReferences": [owner_reference("unseen", uid)]},
             "spec": {"suspend": True, "template": {"spec": {
                 "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}
    jobs.batch.create_namespaced_job(kube.namespace, child)
    controller.refresh()
    assert controller.known((kube.namespace, "unseen")) is not None
    assert [job["metadata"]["name"] for job in
            controller.store.children(kube.namespace, uid)[0]] == ["unseen-train"]
    assert controller.queue.get(timeout_s=5) == (kube.namespace, "unseen")  # missed: queued
    jobs.delete("unseen")
    eventually(lambda: not jobs.custom.list_namespaced_custom_object(
        "streamtrain.dev", "v1alpha1", kube.namespace, "streamingtrainingjobs")["items"], 30,
        "the job to go")
    controller.refresh()
    assert controller.known((kube.namespace, "unseen")) is None
    assert controller.store.get("StreamingTrainingJob", (kube.namespace, "unseen")) is None


def test_progress_is_accepted_only_with_a_token_of_the_jobs_audience_bound_to_its_pod(
        jobs: Jobs, operator: OperatorProcess, kube: Kube) -> None:
    created = jobs.create("watched", SPEC)
    _wait_phase(jobs, operator, "watched", "Training")
    pod = _pod_of(jobs, "watched-train", operator)
    core = kube.cluster.core
    ca = published_ca(core, kube.namespace)
    path = f"/progress/{kube.namespace}/watched"
    audience = progress_audience(kube.namespace, "watched", created["metadata"]["uid"])
    report = {"mode": "train", "records": 640, "recordsTotal": 6400, "epoch": 0, "epochs": 10,
              "recordsPerSecond": 320.0, "percent": 10.0, "etaSeconds": 18, "loss": 0.61}
    refused = post(operator, path, None, report, ca)
    assert refused[0] == 403
    assert post(operator, path, pod_token(core, kube.namespace, "someone-else", pod), report,
                ca) == refused
    assert post(operator, path, pod_token(core, kube.namespace, audience, None), report,
                ca) == refused  # not a pod's
    assert post(operator, f"/progress/{kube.namespace}/nobody",
                pod_token(core, kube.namespace, audience, pod), report, ca) == refused
    token = pod_token(core, kube.namespace, audience, pod)
    assert post(operator, path, token, {**report, "mode": "online"}, ca)[0] == 409
    assert post(operator, path, token, report, ca)[0] == 204
    progress = eventually(lambda: jobs.status("watched").get("progress"), 10, "status.progress")
    assert (progress["percent"], progress["etaSeconds"], progress["mode"]) == (10.0, 18, "train")
    assert progress["lastProgressTime"] == progress["lastUpdateTime"]
    row = kube.cluster.kubectl("get", "stj", "watched", "-n", kube.namespace).stdout
    assert "10" in row.splitlines()[1] and "18" in row.splitlines()[1]


def test_a_phase_without_progress_fails_at_its_deadline_and_its_job_is_suspended(
        jobs: Jobs, operator: OperatorProcess) -> None:
    jobs.create("stuck", {**SPEC, "runPolicy": {"progressDeadlineSeconds": 3}})
    _pod_of(jobs, "stuck-train", operator)  # its pod never reports progress
    status = _wait_phase(jobs, operator, "stuck", "Failed")
    failed = jobs.condition("stuck", "Failed")
    assert status["reason"] == "ProgressDeadlineExceeded"
    assert failed is not None and failed["reason"] == "ProgressDeadlineExceeded"
    assert "made no progress for 3 s" in failed["message"]
    child = jobs.batch.read_namespaced_job("stuck-train", jobs.namespace)
    assert child.spec.suspend is True  # which stops its pods
