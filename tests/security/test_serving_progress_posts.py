"""Serving pods post their figures through the same verified path as the phases' pods: against
the real API server, a pod of the serving Deployment the job controls (its ReplicaSet made by
kube-controller-manager) may post and its records land in `status.serving`; a pod of a
Deployment labelled as the job's that the job does not own, a pod of a bare ReplicaSet labelled
as the job's, and a bare pod that names the job's Deployment as its controller are refused and
change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
from streamtrain_operator.builders import JOB_UID_LABEL, MODE_LABEL

from tests.conftest import Kube
from tests.e2e.harness import Jobs, OperatorProcess, eventually, install_streamtrain_crd
from tests.e2e.progress_client import bare_pod, pod_token, post, published_ca
from workload.contract import API_GROUP, progress_audience
from workload.spec import API_VERSION, KIND

SPEC: dict[str, Any] = {"kafka": {"bootstrapServers": "127.0.0.1:9092"},
                        "train": {"topic": "susy-train", "epochs": 3}}
REPORT: dict[str, Any] = {"mode": "serve", "records": 120, "modelVersion": "v1"}


def _template(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": labels},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "forged:0", "command": ["true"]}]}}


def _deployment(apps: Any, namespace: str, name: str, labels: dict[str, str],
                owners: list[dict[str, Any]]) -> Any:
    return apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": name, "labels": labels, "ownerReferences": owners},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": _template(labels)}})


def _pod_of(core: Any, namespace: str, labels: dict[str, str], prefix: str,
            operator: OperatorProcess) -> Any:
    """The pod kube-controller-manager made for the Deployment or ReplicaSet `prefix`."""
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    return eventually(lambda: next((pod for pod in core.list_namespaced_pod(
        namespace, label_selector=selector).items if pod.metadata.name.startswith(prefix)), None),
        60, f"a pod of {prefix}", operator.tail)


def test_only_pods_of_the_jobs_serving_deployment_post_its_serving_figures(
        kube: Kube, tmp_path: Path) -> None:
    api = kube.cluster.api
    namespace = kube.namespace
    install_streamtrain_crd(api)
    core: Any = kubernetes.client.CoreV1Api(api)
    apps: Any = kubernetes.client.AppsV1Api(api)
    operator = OperatorProcess(kube.cluster.kubeconfig, namespace,
                               tmp_path / "operator.log").start()
    try:
        jobs = Jobs(api, namespace)
        uid = jobs.create("victim", SPEC)["metadata"]["uid"]
        ca = published_ca(core, namespace)  # once its training Job is made
        audience = progress_audience(namespace, "victim", uid)
        path = f"/progress/{namespace}/victim"
        owned = [{"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "name": "victim",
                  "uid": uid, "controller": True}]
        # Each selector distinct (a Deployment adopts the orphan ReplicaSets its selector matches)
        serve = {JOB_UID_LABEL: uid, MODE_LABEL: "serve", "app": "victim"}
        served = _deployment(apps, namespace, "victim-serve", serve, owned)
        stray = {**serve, "app": "stray"}
        _deployment(apps, namespace, "stray-serve", stray, [])
        bare_rs = {**serve, "app": "bare"}
        apps.create_namespaced_replica_set(namespace, {
            "metadata": {"name": "bare-rs", "labels": bare_rs},
            "spec": {"replicas": 1, "selector": {"matchLabels": bare_rs},
                     "template": _template(bare_rs)}})
        own_pod = _pod_of(core, namespace, serve, "victim-serve-", operator)
        forgeries = {
            "a pod of a Deployment the job does not own": _pod_of(
                core, namespace, stray, "stray-serve-", operator),
            "a pod of a bare ReplicaSet": _pod_of(core, namespace, bare_rs, "bare-rs-", operator),
            "a bare pod naming the job's Deployment as its controller": bare_pod(
                core, namespace, "victim-serve-forged", serve,
                [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "victim-serve",
                  "uid": served.metadata.uid, "controller": True}]),
        }
        refused = {what: post(operator, path, pod_token(core, namespace, audience, pod),
                              {**REPORT, "records": 999_999}, ca)[0]
                   for what, pod in forgeries.items()}
        assert refused == dict.fromkeys(forgeries, 403), operator.tail()
        assert "serving" not in jobs.status("victim") or not jobs.status("victim")[
            "serving"].get("recordsServed")

        own = pod_token(core, namespace, audience, own_pod)
        eventually(lambda: post(operator, path, own, REPORT, ca)[0] == 204, 30,
                   "the serving pod's post", operator.tail)
        serving = eventually(lambda: jobs.status("victim").get("serving"), 10, "status.serving")
        assert serving["recordsServed"] == 120 and serving["version"] == "v1"
        assert {what: post(operator, path, pod_token(core, namespace, audience, pod),
                           {**REPORT, "records": 999_999, "modelVersion": "forged"}, ca)[0]
                for what, pod in forgeries.items()} == dict.fromkeys(forgeries, 403)
        assert jobs.status("victim")["serving"] == serving
    finally:
        operator.stop()
