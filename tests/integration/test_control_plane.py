"""The local control plane is a real Kubernetes: schemas enforced, watches, Jobs, garbage collection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest

from tests.conftest import Kube

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.streamtrain.dev"},
    "spec": {
        "group": "test.streamtrain.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object", "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 1}},
            }}}},
        }],
    },
}


def eventually(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture
def widgets(kube: Kube) -> str:
    """The test CRD, installed and established."""
    api = kube.cluster.apiextensions
    try:
        api.create_custom_resource_definition(CRD)
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise

    def established() -> bool:
        crd = api.read_custom_resource_definition(CRD["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True"
                   for c in crd.status.conditions or [])

    eventually(established, what="the CRD to be established")
    return kube.namespace


def test_api_server_rejects_an_object_that_violates_the_crd_schema(kube: Kube, widgets: str) -> None:
    bad = {"apiVersion": "test.streamtrain.dev/v1", "kind": "Widget",
           "metadata": {"name": "bad"}, "spec": {"size": 0}}
    with pytest.raises(kubernetes.client.ApiException) as raised:
        kube.cluster.custom.create_namespaced_custom_object(
            "test.streamtrain.dev", "v1", widgets, "widgets", bad)
    assert raised.value.status == 422
    assert "spec.size" in raised.value.body


def test_a_valid_object_can_be_created_read_and_watched(kube: Kube, widgets: str) -> None:
    custom = kube.cluster.custom
    good = {"apiVersion": "test.streamtrain.dev/v1", "kind": "Widget",
            "metadata": {"name": "good"}, "spec": {"size": 3}}
    created = custom.create_namespaced_custom_object(
        "test.streamtrain.dev", "v1", widgets, "widgets", good)
    read = custom.get_namespaced_custom_object(
        "test.streamtrain.dev", "v1", widgets, "widgets", "good")
    assert read["spec"]["size"] == 3

    watch = kubernetes.watch.Watch()
    seen = []
    custom.patch_namespaced_custom_object(
        "test.streamtrain.dev", "v1", widgets, "widgets", "good", {"spec": {"size": 4}})
    for event in watch.stream(custom.list_namespaced_custom_object, "test.streamtrain.dev", "v1",
                              widgets, "widgets",
                              resource_version=created["metadata"]["resourceVersion"],
                              timeout_seconds=10):
        seen.append((event["type"], event["object"]["spec"]["size"]))
        if event["type"] == "MODIFIED":
            watch.stop()
    assert ("MODIFIED", 4) in seen


def test_a_job_gets_a_pod_from_the_controller_manager(kube: Kube) -> None:
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        }}},
    }
    kube.cluster.batch.create_namespaced_job(kube.namespace, job)
    pods = eventually(
        lambda: kube.cluster.core.list_namespaced_pod(
            kube.namespace, label_selector="job-name=hello").items,
        what="the Job's pod")
    assert pods[0].metadata.owner_references[0].kind == "Job"
    assert pods[0].status.phase == "Pending"  # no kubelet here: nothing runs it


def test_deleting_an_owner_garbage_collects_its_child(kube: Kube) -> None:
    core = kube.cluster.core
    owner = core.create_namespaced_config_map(
        kube.namespace, {"metadata": {"name": "owner"}, "data": {"a": "1"}})
    core.create_namespaced_config_map(kube.namespace, {
        "metadata": {"name": "child", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid}]},
        "data": {"b": "2"},
    })
    core.delete_namespaced_config_map("owner", kube.namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", kube.namespace)
        except kubernetes.client.ApiException as error:
            return error.status == 404
        return False

    eventually(child_gone, what="the garbage collector to delete the child")


def test_kubectl_talks_to_the_cluster_with_the_generated_kubeconfig(kube: Kube) -> None:
    result = kube.cluster.kubectl("get", "serviceaccount", "default", "-n", kube.namespace,
                                  "-o", "jsonpath={.metadata.name}")
    assert result.stdout == "default"
    version = kube.cluster.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.35.4"' in version
