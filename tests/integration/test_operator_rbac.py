"""The shipped RBAC is enough: the operator runs a job to the end as its ServiceAccount.

The API server authorizes with RBAC, so any verb the ClusterRole (or the
per-namespace Role) lacks fails here as it would in a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from streamtrain_operator.kueue import QUEUE_LABEL

from localparts.kueue import KueueManager
from tests.conftest import Kube
from tests.e2e.harness import (
    REPO,
    Jobs,
    OperatorProcess,
    eventually,
    finish_pod,
    install_streamtrain_crd,
)
from tests.e2e.queues import kueue_objects
from workload.status import Metrics, PodReport

RBAC = REPO / "operator" / "rbac"


def _documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((RBAC / name).read_text()) if doc]


def _apply(kube: Kube, document: dict[str, Any]) -> None:
    kube.cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))


def _service_account_kubeconfig(kube: Kube, account: str, path: Path) -> Path:
    core: Any = kubernetes.client.CoreV1Api(kube.cluster.api)
    token = core.create_namespaced_service_account_token(
        account, kube.namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = json.loads(kube.cluster.kubeconfig.read_text())
    admin["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(json.dumps(admin))
    return path


def _grant(kube: Kube, variant: str, suffix: str) -> None:
    """Install the shipped RBAC for a ServiceAccount in the test's namespace."""
    account = _documents("serviceaccount.yaml")[0]
    account["metadata"]["namespace"] = kube.namespace
    _apply(kube, account)
    subject = {"kind": "ServiceAccount", "name": "streamtrain-operator",
               "namespace": kube.namespace}
    if variant == "clusterrole":
        files = ["clusterrole.yaml", "clusterrolebinding.yaml", "tokenreview.yaml"]
    else:
        files = ["role.yaml", "rolebinding.yaml", "tokenreview.yaml"]
    for name in files:
        for document in _documents(name):
            metadata = document["metadata"]
            metadata["name"] = f"{metadata['name']}-{suffix}"
            if "namespace" in metadata:
                metadata["namespace"] = kube.namespace
            if "roleRef" in document:
                document["roleRef"]["name"] = f"{document['roleRef']['name']}-{suffix}"
                document["subjects"] = [subject]
            _apply(kube, document)


@pytest.fixture(params=["clusterrole", "role"])
def restricted_operator(request: pytest.FixtureRequest, kube: Kube,
                        tmp_path: Path) -> Iterator[OperatorProcess]:
    install_streamtrain_crd(kube.cluster.api)
    suffix = kube.namespace[-6:]
    _grant(kube, request.param, suffix)
    config = _service_account_kubeconfig(kube, "streamtrain-operator", tmp_path / "sa.json")
    watched = "" if request.param == "clusterrole" else kube.namespace
    process = OperatorProcess(config, watched, tmp_path / "operator.log").start()
    yield process
    process.stop()
    kube.cluster.kubectl("delete", "clusterrole,clusterrolebinding",
                         f"streamtrain-operator-{suffix}", f"streamtrain-operator-tokenreview-{suffix}",
                         "--ignore-not-found", check=False)


def test_operator_runs_a_job_to_the_end_with_only_the_shipped_rbac(
        kube: Kube, restricted_operator: OperatorProcess) -> None:
    jobs = Jobs(kube.cluster.api, kube.namespace)
    jobs.create("least", {"kafka": {"bootstrapServers": "127.0.0.1:9092"}, "train": {"topic": "susy-train"}})
    eventually(lambda: jobs.phase("least") == "Training", 30, "Training",
               restricted_operator.tail)
    pod = eventually(lambda: next(iter(jobs.pods("least-train")), None), 30, "the trainer pod")
    report = PodReport(mode="train", ok=True, metrics=Metrics(train_accuracy=0.7))
    finish_pod(jobs.core, pod, 0, report.to_message())
    eventually(lambda: jobs.phase("least") == "Succeeded", 30, "Succeeded",
               restricted_operator.tail)
    # kopf posts events from a queue of its own, after the status patch.
    eventually(lambda: {"JobCreated", "Succeeded"} <= {event.reason
                                                      for event in jobs.events("least")},
               30, "the JobCreated and Succeeded events", restricted_operator.tail)
    # RBAC denials read "User ... cannot <verb> resource ..."; a cluster-wide operator may
    # also meet 403s from namespaces other tests are deleting, which are not about RBAC.
    assert " cannot " not in restricted_operator.tail(500)


def test_operator_queues_a_job_in_kueue_and_reads_why_it_waits_with_only_the_shipped_rbac(
        kube: Kube, kueue: KueueManager, restricted_operator: OperatorProcess) -> None:
    jobs = Jobs(kube.cluster.api, kube.namespace)
    with kueue_objects(kube.cluster.api, kube.namespace) as queues:
        cluster_queue = queues.cluster_queue("1")
        queues.local_queue("team", cluster_queue)
        jobs.create("queued", {"kafka": {"bootstrapServers": "127.0.0.1:9092"},
                               "train": {"topic": "susy-train"},
                               "trainer": {"resources": {"requests": {"cpu": "2"}}}},
                    labels={QUEUE_LABEL: "team"})
        # Kueue's words come from its Workload, which the operator may only list.
        eventually(lambda: "couldn't assign flavors" in (
            jobs.condition("queued", "Queued") or {}).get("message", ""), 60,
            "Queued with Kueue's message", restricted_operator.tail)
        queues.set_cpu_quota(cluster_queue, "2")
        pod = eventually(lambda: next(iter(jobs.pods("queued-train")), None), 60,
                         "the admitted trainer's pod", restricted_operator.tail)
        finish_pod(jobs.core, pod, 0, PodReport(mode="train", ok=True).to_message())
        eventually(lambda: jobs.phase("queued") == "Succeeded", 60, "Succeeded",
                   restricted_operator.tail)
    assert " cannot " not in restricted_operator.tail(500)
