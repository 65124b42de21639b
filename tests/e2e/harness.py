"""Test helpers for the operator on the real control plane: CRD install, the operator process,
polling, Strimzi objects with the status Strimzi would write, topics with data, and writing a
pod's final status the way a kubelet does.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from localparts.ports import free_port
from workload.datagen.produce import produce_split
from workload.datagen.synthetic import generate
from workload.kafka.connection import KafkaConnection
from workload.spec import API_GROUP, API_VERSION, PLURAL

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / f"{API_GROUP}_{PLURAL}.yaml"
STRIMZI_CRDS = REPO / "tests" / "data" / "strimzi-crds"
PYTHON = sys.executable
STRIMZI_GROUP = "kafka.strimzi.io"


def eventually(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "",
               diagnose: Callable[[], str] | None = None) -> Any:
    """Poll `condition` until it returns something truthy; fail with `diagnose()` after timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    detail = diagnose() if diagnose else ""
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}\n{detail}")


def now_text() -> str:
    """RFC 3339 UTC, seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_crd(api: kubernetes.client.ApiClient, document: Mapping[str, Any]) -> None:
    """Create or replace a CRD and wait until it is established."""
    extensions: Any = kubernetes.client.ApiextensionsV1Api(api)
    name = document["metadata"]["name"]
    try:
        existing = extensions.read_custom_resource_definition(name)
        body = {**document, "metadata": {**document["metadata"],
                                         "resourceVersion": existing.metadata.resource_version}}
        extensions.replace_custom_resource_definition(name, body)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
        extensions.create_custom_resource_definition(dict(document))

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True"
                   for c in crd.status.conditions or [])
    eventually(established, 30, f"CRD {name} established")


def install_streamtrain_crd(api: kubernetes.client.ApiClient) -> None:
    """The committed CRD from `crds/`, as a user installs it."""
    apply_crd(api, yaml.safe_load(CRD_PATH.read_text()))
    custom: Any = kubernetes.client.CustomObjectsApi(api)
    eventually(lambda: _served(custom), 30, "the StreamingTrainingJob API to be served")


def _served(custom: Any) -> bool:
    try:
        custom.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL, limit=1)
    except kubernetes.client.ApiException:
        return False
    return True


def install_strimzi_crds(api: kubernetes.client.ApiClient, release: str) -> str:
    """Strimzi's CRDs of `release`, unchanged; returns the API version they serve."""
    extensions: Any = kubernetes.client.ApiextensionsV1Api(api)
    served = ""
    for path in sorted((STRIMZI_CRDS / release).glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        name = document["metadata"]["name"]
        try:
            existing = extensions.read_custom_resource_definition(name)
            versions = {version.name for version in existing.spec.versions}
            wanted = {version["name"] for version in document["spec"]["versions"]}
            if versions != wanted:
                extensions.delete_custom_resource_definition(name)
                gone = functools.partial(_crd_gone, extensions, name)
                eventually(gone, 60, f"CRD {name} deleted")
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
        apply_crd(api, document)
        served = document["spec"]["versions"][0]["name"]
    return served


def remove_strimzi_crds(api: kubernetes.client.ApiClient) -> None:
    """Delete Strimzi's CRDs (and so every Strimzi object) from the cluster."""
    extensions: Any = kubernetes.client.ApiextensionsV1Api(api)
    for crd in extensions.list_custom_resource_definition().items:
        if crd.spec.group == STRIMZI_GROUP:
            extensions.delete_custom_resource_definition(crd.metadata.name)


def _crd_gone(extensions: Any, name: str) -> bool:
    try:
        extensions.read_custom_resource_definition(name)
    except kubernetes.client.ApiException as error:
        return bool(error.status == 404)
    return False


@dataclass
class OperatorProcess:
    """`python -m streamtrain_operator` as a child process, watching one namespace (or, with
    an empty `namespace`, the whole cluster)."""

    kubeconfig: Path
    namespace: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    liveness_port: int = 0
    progress_port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    """Extra `STREAMTRAIN_OPERATOR_*` settings (names without the prefix)."""

    def start(self) -> OperatorProcess:
        """Start the operator (again, after `kill`)."""
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.progress_port = free_port()
        env = {**os.environ,
               "KUBECONFIG": str(self.kubeconfig),
               "STREAMTRAIN_OPERATOR_WATCH_SERVER_TIMEOUT_S": "60",
               "STREAMTRAIN_OPERATOR_WATCH_CLIENT_TIMEOUT_S": "70",
               "STREAMTRAIN_OPERATOR_BIND_ADDRESS": "127.0.0.1",
               "STREAMTRAIN_OPERATOR_METRICS_PORT": str(self.metrics_port),
               "STREAMTRAIN_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
               "STREAMTRAIN_OPERATOR_PROGRESS_PORT": str(self.progress_port),
               "STREAMTRAIN_OPERATOR_PROGRESS_URL": f"https://127.0.0.1:{self.progress_port}"}
        if self.namespace:
            env["STREAMTRAIN_OPERATOR_NAMESPACES"] = self.namespace
        env.update({f"STREAMTRAIN_OPERATOR_{key}": value for key, value in self.settings.items()})
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "streamtrain_operator"], env=env, cwd=REPO,
                stdout=sink, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if kopf does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 60) -> str:
        """The end of the operator's log, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Jobs:
    """StreamingTrainingJobs in one namespace through the API."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom: Any = kubernetes.client.CustomObjectsApi(api)
        self.batch: Any = kubernetes.client.BatchV1Api(api)
        self.core: Any = kubernetes.client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, name: str, spec: Mapping[str, Any],
               labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "StreamingTrainingJob",
                "metadata": {"name": name, "labels": dict(labels or {})}, "spec": dict(spec)}
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, PLURAL, body)
        return created

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, self.namespace, PLURAL, name)
        return found

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace,
                                                   PLURAL, name, {"spec": dict(spec)})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, self.namespace,
                                                    PLURAL, name)

    def child_jobs(self) -> list[Any]:
        return list(self.batch.list_namespaced_job(self.namespace).items)

    def pods(self, child: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(
            self.namespace, label_selector=f"job-name={child}").items)

    def events(self, name: str) -> list[Any]:
        return list(self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}").items)

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        for condition in self.status(name).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return None


def finish_pod(core: Any, pod: Any, exit_code: int, message: str) -> None:
    """Write a terminated container and the pod phase into pod status, as a kubelet does."""
    moment = now_text()
    container = pod.spec.containers[0]
    body = {"status": {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [{
            "name": container.name, "image": container.image, "imageID": "", "ready": False,
            "restartCount": 0,
            "state": {"terminated": {
                "exitCode": exit_code, "message": message, "startedAt": moment,
                "finishedAt": moment, "reason": "Completed" if exit_code == 0 else "Error"}},
        }],
    }}
    core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)


def fresh_split(bootstrap_servers: str, train_rows: int, test_rows: int,
                seed: int) -> tuple[str, str]:
    """New train and test topics holding a split of synthetic SUSY rows; their names."""
    suffix = uuid.uuid4().hex[:8]
    train, test = f"susy-train-{suffix}", f"susy-test-{suffix}"
    produce_split(KafkaConnection(bootstrap_servers), train, test,
                  generate(train_rows + test_rows, seed=seed), train_rows=train_rows,
                  progress=False)
    return train, test


class StrimziObjects:
    """Strimzi's `Kafka` and `KafkaUser` resources with the status its operators would write."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, version: str) -> None:
        self.custom: Any = kubernetes.client.CustomObjectsApi(api)
        self.namespace = namespace
        self.version = version

    def _create(self, plural: str, name: str, spec: dict[str, Any], status: dict[str, Any],
                labels: dict[str, str] | None = None) -> None:
        kind = {"kafkas": "Kafka", "kafkausers": "KafkaUser"}[plural]
        self.custom.create_namespaced_custom_object(
            STRIMZI_GROUP, self.version, self.namespace, plural, {
                "apiVersion": f"{STRIMZI_GROUP}/{self.version}", "kind": kind,
                "metadata": {"name": name, "labels": labels or {}}, "spec": spec})
        ready = {"conditions": [{"type": "Ready", "status": "True"}]}
        self.custom.patch_namespaced_custom_object_status(
            STRIMZI_GROUP, self.version, self.namespace, plural, name,
            {"status": {**ready, **status}})

    def cluster(self, listener: str, bootstrap_servers: str,
                authentication: str | None = None) -> None:
        """A ready Kafka `my-cluster` with one internal listener serving `bootstrap_servers`."""
        spec: dict[str, Any] = {"name": listener, "port": 9092, "type": "internal", "tls": False}
        if authentication is not None:
            spec["authentication"] = {"type": authentication}
        self._create("kafkas", "my-cluster", {"kafka": {"listeners": [spec]}},
                     {"listeners": [{"name": listener, "bootstrapServers": bootstrap_servers}]})

    def scram_user(self, name: str, username: str) -> None:
        """A ready SCRAM-SHA-512 KafkaUser `name` of `my-cluster`, its Secret also `name`."""
        self._create("kafkausers", name, {"authentication": {"type": "scram-sha-512"}},
                     {"secret": name, "username": username},
                     labels={"strimzi.io/cluster": "my-cluster"})
