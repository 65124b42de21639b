"""Strimzi: resolve `kafka.clusterRef` / `userRef` into an address and credentials to mount.

The bootstrap address comes from the `Kafka` resource's `status.listeners[]`
(by listener name) once its `Ready` condition is true. Whichever of
`kafka.strimzi.io/v1` and `v1beta2` the cluster serves is used (Strimzi 1.x
serves `v1`, 0.4x `v1beta2`). Anything missing gives a `KafkaState` with a
reason, never an exception: the job waits with a condition that says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import kubernetes

from streamtrain_operator.builders import KafkaAccess
from streamtrain_operator.planner import KafkaState
from workload.spec import KafkaSpec, StreamingTrainingJobSpec

GROUP = "kafka.strimzi.io"
VERSIONS = ("v1", "v1beta2")
"""Strimzi API versions this operator understands, preferred first."""

Resource = dict[str, Any]


@dataclass(frozen=True)
class Resolution:
    """The outcome: a state for the `KafkaReady` condition and, when ready, the pods' access."""

    state: KafkaState
    access: KafkaAccess | None = None
    strimzi_version: str | None = None


def is_ready(resource: Resource) -> bool:
    """Whether a Strimzi resource's `Ready` condition is true."""
    conditions = (resource.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def listener_address(kafka: Resource, listener: str) -> KafkaState:
    """The bootstrap address of `listener` from a `Kafka` resource's status."""
    name = kafka["metadata"]["name"]
    if not is_ready(kafka):
        return KafkaState(False, "KafkaNotReady",
                          f"waiting for Kafka {name} to report a Ready condition")
    listeners = (kafka.get("status") or {}).get("listeners") or []
    for entry in listeners:
        if entry.get("name", entry.get("type")) == listener and entry.get("bootstrapServers"):
            return KafkaState(True, "Resolved", f"Kafka {name} listener {listener}",
                              bootstrap_servers=entry["bootstrapServers"])
    known = ", ".join(sorted(str(entry.get("name", entry.get("type"))) for entry in listeners))
    return KafkaState(False, "ListenerNotFound",
                      f"Kafka {name} has no listener {listener!r} in its status "
                      f"(has: {known or 'none'})")


def listener_uses_tls(kafka: Resource, listener: str) -> bool:
    """Whether the named listener is declared with `tls: true` in the Kafka spec."""
    listeners = ((kafka.get("spec") or {}).get("kafka") or {}).get("listeners") or []
    return any(entry.get("name") == listener and entry.get("tls") for entry in listeners)


def served_version(api: kubernetes.client.ApiClient) -> str | None:
    """The preferred Strimzi version the API server serves, or `None` without Strimzi CRDs."""
    groups = kubernetes.client.ApisApi(api).get_api_versions().groups or []
    for group in groups:
        if group.name == GROUP:
            served = {version.version for version in group.versions}
            return next((version for version in VERSIONS if version in served), None)
    return None


def _get(api: kubernetes.client.ApiClient, version: str, namespace: str, plural: str,
         name: str) -> Resource | None:
    try:
        custom: Any = kubernetes.client.CustomObjectsApi(api)
        found: Resource = custom.get_namespaced_custom_object(GROUP, version, namespace, plural,
                                                              name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return found


def resolve(api: kubernetes.client.ApiClient, namespace: str, kafka: KafkaSpec) -> Resolution:
    """Where the pods find Kafka and which Secrets they mount."""
    if kafka.cluster_ref is None:
        address = kafka.bootstrap_servers or ""
        return Resolution(KafkaState(True, "BootstrapServers", address, address),
                          KafkaAccess(address))
    version = served_version(api)
    cluster = kafka.cluster_ref.name
    if version is None:
        return Resolution(KafkaState(False, "StrimziNotInstalled",
                                     f"no {GROUP} API ({' or '.join(VERSIONS)}) is served"))
    resource = _get(api, version, namespace, "kafkas", cluster)
    if resource is None:
        return Resolution(KafkaState(False, "KafkaNotFound",
                                     f"Kafka {cluster} not found in namespace {namespace}"))
    state = listener_address(resource, kafka.cluster_ref.listener)
    if not state.ready or state.bootstrap_servers is None:
        return Resolution(state, strimzi_version=version)
    ca_secret = (f"{cluster}-cluster-ca-cert"
                 if listener_uses_tls(resource, kafka.cluster_ref.listener) else None)
    access = KafkaAccess(state.bootstrap_servers, cluster_ca_secret=ca_secret)
    if kafka.user_ref is not None:
        user = _get(api, version, namespace, "kafkausers", kafka.user_ref.name)
        if user is None:
            return Resolution(KafkaState(False, "KafkaUserNotFound",
                                         f"KafkaUser {kafka.user_ref.name} not found"),
                              strimzi_version=version)
        if not is_ready(user):
            return Resolution(KafkaState(False, "KafkaUserNotReady",
                                         f"waiting for KafkaUser {kafka.user_ref.name} to be "
                                         "Ready"), strimzi_version=version)
        user_status = user.get("status") or {}
        access = KafkaAccess(state.bootstrap_servers,
                             user_secret=user_status.get("secret") or kafka.user_ref.name,
                             username=user_status.get("username") or kafka.user_ref.name,
                             cluster_ca_secret=ca_secret)
    return Resolution(state, access, version)


def topic_resource_name(topic: str) -> str:
    """A DNS-1123 name for a `KafkaTopic` (Kafka topic names may hold `_` and `.`)."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", topic.lower()).strip("-")
    return cleaned[:253] or "topic"


def topic_manifests(spec: StreamingTrainingJobSpec, version: str, namespace: str) -> list[Resource]:
    """`KafkaTopic` resources for each topic the job reads, and the one it serves into (no
    owner: data outlives jobs)."""
    assert spec.kafka.cluster_ref is not None
    wanted: dict[str, int] = {}
    for step in (spec.train, spec.evaluate, spec.online, spec.serve):
        if step is not None:
            wanted[step.topic] = max(wanted.get(step.topic, 0), step.partitions)
    if spec.serve is not None:  # its predictions, one output partition per input partition
        output = spec.serve.output_topic
        wanted[output] = max(wanted.get(output, 0), spec.serve.partitions)
    return [{
        "apiVersion": f"{GROUP}/{version}",
        "kind": "KafkaTopic",
        "metadata": {"name": topic_resource_name(topic), "namespace": namespace,
                     "labels": {"strimzi.io/cluster": spec.kafka.cluster_ref.name}},
        "spec": {"topicName": topic, "partitions": partitions},
    } for topic, partitions in wanted.items()]


def ensure_topics(api: kubernetes.client.ApiClient, spec: StreamingTrainingJobSpec,
                  version: str, namespace: str) -> list[str]:
    """Create the missing `KafkaTopic`s; return the names created now."""
    custom = kubernetes.client.CustomObjectsApi(api)
    created = []
    for manifest in topic_manifests(spec, version, namespace):
        try:
            custom.create_namespaced_custom_object(GROUP, version, namespace, "kafkatopics",
                                                   manifest)
            created.append(manifest["metadata"]["name"])
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
    return created
