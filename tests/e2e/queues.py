"""Kueue objects for a test: a ResourceFlavor, a ClusterQueue with CPU quota, a LocalQueue in
the test's namespace, WorkloadPriorityClasses; and what Kueue made of a test's Jobs.

Cluster-scoped objects carry the test namespace's name, so tests never share a queue, and are
deleted when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kubernetes

KUEUE_GROUP, KUEUE_VERSION = "kueue.x-k8s.io", "v1beta2"


class Queues:
    """A test's Kueue objects through the API."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom: Any = kubernetes.client.CustomObjectsApi(api)
        self.namespace = namespace
        self.cluster_objects: list[tuple[str, str]] = []

    def _cluster(self, plural: str, kind: str, name: str, body: dict[str, Any]) -> str:
        self.custom.create_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, plural, {
            "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}", "kind": kind,
            "metadata": {"name": name}, **body})
        self.cluster_objects.append((plural, name))
        return name

    def cluster_queue(self, cpu: str, preempt_lower_priority: bool = False) -> str:
        """A ClusterQueue with `cpu` of quota on a flavor of its own (and, if asked, preemption
        of lower-priority workloads in it); its name."""
        flavor = self._cluster("resourceflavors", "ResourceFlavor", f"{self.namespace}-flavor",
                               {"spec": {}})
        spec: dict[str, Any] = {
            "namespaceSelector": {},
            "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [
                {"name": flavor, "resources": [{"name": "cpu", "nominalQuota": cpu}]}]}],
        }
        if preempt_lower_priority:
            spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
        return self._cluster("clusterqueues", "ClusterQueue", f"{self.namespace}-cq",
                             {"spec": spec})

    def set_cpu_quota(self, cluster_queue: str, cpu: str) -> None:
        """Change a ClusterQueue's CPU quota."""
        found = self.custom.get_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION,
                                                      "clusterqueues", cluster_queue)
        groups = found["spec"]["resourceGroups"]
        groups[0]["flavors"][0]["resources"][0]["nominalQuota"] = cpu
        # A merge patch of the spec: Kueue writes the status meanwhile, so a replace may conflict.
        self.custom.patch_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "clusterqueues",
                                                cluster_queue, {"spec": {"resourceGroups": groups}})

    def local_queue(self, name: str, cluster_queue: str) -> str:
        """A LocalQueue in the test's namespace feeding `cluster_queue`; its name."""
        self.custom.create_namespaced_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, self.namespace, "localqueues", {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}", "kind": "LocalQueue",
                "metadata": {"name": name}, "spec": {"clusterQueue": cluster_queue}})
        return name

    def priority_class(self, suffix: str, value: int) -> str:
        """A WorkloadPriorityClass of `value`; its name."""
        return self._cluster("workloadpriorityclasses", "WorkloadPriorityClass",
                             f"{self.namespace}-{suffix}", {"value": value})

    def workloads(self) -> list[dict[str, Any]]:
        """The Workloads Kueue made in the test's namespace."""
        found: dict[str, Any] = self.custom.list_namespaced_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, self.namespace, "workloads")
        return list(found["items"])

    def delete_all(self) -> None:
        """Delete the cluster-scoped objects, newest first."""
        for plural, name in reversed(self.cluster_objects):
            try:
                self.custom.delete_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, plural,
                                                         name)
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise


def admitted(workload: dict[str, Any]) -> bool:
    """Whether Kueue has admitted a Workload."""
    return any(condition["type"] == "Admitted" and condition["status"] == "True"
               for condition in (workload.get("status") or {}).get("conditions") or [])


@contextmanager
def kueue_objects(api: kubernetes.client.ApiClient, namespace: str) -> Iterator[Queues]:
    """A test's Kueue objects, deleted afterwards."""
    queues = Queues(api, namespace)
    try:
        yield queues
    finally:
        queues.delete_all()
