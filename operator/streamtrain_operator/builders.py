"""Pure builders of the child objects: one batch/v1 Job per phase, owned by the job (an Indexed
Job for a phase of several replicas, with a headless Service for a training group).

No API calls here: every function maps the spec (and what the operator
resolved about Kafka) to a manifest dict, so each is unit-tested without a
cluster. Names are deterministic (`<job>-train`, `<job>-evaluate`,
`<job>-online`), which is what makes creation idempotent: a restarted
operator finds the child by name instead of creating a second one.

A job's files are its own: the output claim is mounted at
`model.output.path` through `subPath: <namespace>/<name>/<uid>`
(`job_folder`), so jobs sharing a claim, at the same time or one after
the other, never see each other's checkpoints, ledgers or models. A model
trained elsewhere (`model.source`) is mounted read-only at `SOURCE_PATH`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamtrain_operator.model_file import model_file_mounts
from workload.contract import (
    BOOTSTRAP_ENV,
    CLUSTER_CA_ENV,
    CLUSTER_CA_PATH,
    CREDENTIALS_ENV,
    CREDENTIALS_PATH,
    JOB_NAME_ENV,
    JOB_SPEC_ENV,
    JOB_UID_ENV,
    MODE,
    MODEL_SOURCE_ENV,
    NOT_RETRIED_EXIT_CODES,
    OUTPUT_URI_ENV,
    PEER_LOST_EXIT,
    PROGRESS_CA_CONFIGMAP,
    PROGRESS_CA_ENV,
    PROGRESS_CA_FILE,
    PROGRESS_CA_KEY,
    PROGRESS_TOKEN_DIR,
    PROGRESS_TOKEN_ENV,
    PROGRESS_TOKEN_FILE,
    PROGRESS_TOKEN_SECONDS,
    PROGRESS_URL_ENV,
    REGISTRY_CA_ENV,
    REGISTRY_CA_PATH,
    REGISTRY_CREDENTIALS_ENV,
    REGISTRY_CREDENTIALS_PATH,
    SASL_USERNAME_ENV,
    SCRATCH_PATH,
    SOURCE_PATH,
    TERMINATION_LOG,
    WORKER_PORT,
    WORKERS_ENV,
    Mode,
    progress_audience,
    progress_path,
)
from workload.spec import (
    API_GROUP,
    API_VERSION,
    KIND,
    MAX_REPLICAS,
    RoleSpec,
    StreamingTrainingJobSpec,
    dump_spec,
)

Manifest = dict[str, Any]

NAME_LIMIT = 63
"""Job names become pod label values (`job-name`), which Kubernetes limits to 63 characters."""

RUN_AS_USER = 65532
"""The distroless `nonroot` user."""

CLAIM_SCHEME = "pvc://"
"""Prefix of a location on a PersistentVolumeClaim: `pvc://<claim>/<folder inside it>`."""

JOB_LABEL = f"{API_GROUP}/job"
"""The job's name (shortened with a hash past 63 characters) on its child Jobs and pods."""
JOB_UID_LABEL = f"{API_GROUP}/job-uid"
"""The job's uid on its child Jobs and pods: what the operator's watches select them by."""
MODE_LABEL = f"{API_GROUP}/mode"


@dataclass(frozen=True)
class KafkaAccess:
    """How pods reach Kafka, as the operator resolved it."""

    bootstrap_servers: str
    """The address handed to the pods."""
    user_secret: str | None = None
    """Secret of a Strimzi KafkaUser to mount (SCRAM password or TLS client certificate)."""
    username: str | None = None
    """SCRAM user name (the KafkaUser's name)."""
    cluster_ca_secret: str | None = None
    """Secret with the cluster CA certificate, mounted for TLS listeners."""


WORKLOAD_IMAGE = "ghcr.io/streamtrain/streamtrain-workload:0.1.0"
"""The workload image of this release, used when neither the operator's settings nor the job
name one (the chart always sets it, from its `workloadImage` values)."""


@dataclass(frozen=True)
class PodDefaults:
    """What the operator fills in where a job's pod template is silent (operator settings)."""

    image: str = WORKLOAD_IMAGE
    """The workload image (`streamtrain run-mode`)."""
    image_pull_policy: str = "IfNotPresent"
    """When the kubelet pulls it."""
    progress_url: str = ""
    """Base URL of the operator's progress endpoint as pods reach it; empty = no live progress."""


DEFAULT_PODS = PodDefaults()


@dataclass(frozen=True)
class ClaimFolder:
    """A folder inside a PersistentVolumeClaim."""

    claim: str
    folder: str
    """Relative path inside the claim (a `subPath`)."""

    @property
    def uri(self) -> str:
        """`pvc://<claim>/<folder>`: how status and reports name it."""
        return f"{CLAIM_SCHEME}{self.claim}/{self.folder}"


def job_folder(namespace: str, job_name: str, uid: str) -> str:
    """The folder of one job on its output claim: unique per job, readable by people."""
    return f"{namespace}/{job_name}/{uid}"


def bounded_name(base: str, suffix: str = "", limit: int = NAME_LIMIT) -> str:
    """`base` + `suffix` within `limit` characters; a hash keeps shortened names distinct."""
    full = f"{base}{suffix}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    keep = limit - len(suffix) - len(digest) - 1
    return f"{base[:keep].rstrip('-.')}-{digest}{suffix}"


INDEX_ROOM = len(f"-{MAX_REPLICAS - 1}")
"""Characters an Indexed Job's pod hostnames add to the Job's name (`-<index>`), which together
must stay a DNS label: every child Job name leaves that room, whatever its replicas."""


def child_job_name(job_name: str, mode: Mode) -> str:
    """The deterministic name of the Job that runs `mode` for `job_name` (and of its headless
    Service when it runs a training group)."""
    return bounded_name(job_name, f"-{mode}", NAME_LIMIT - INDEX_ROOM)


def worker_addresses(job_name: str, namespace: str, replicas: int) -> list[str]:
    """`host:port` of each training worker: the hostname the Job controller gives the pod of
    each index (`<job>-<index>`), under the headless Service of the same name."""
    service = child_job_name(job_name, "train")
    return [f"{service}-{index}.{service}.{namespace}.svc:{WORKER_PORT}"
            for index in range(replicas)]


def job_labels(job_name: str, uid: str, mode: Mode) -> dict[str, str]:
    """Labels of a child Job and its pods (used to find and watch them)."""
    return {
        "app.kubernetes.io/name": "streamtrain",
        "app.kubernetes.io/component": MODE[mode].template,
        "app.kubernetes.io/managed-by": "streamtrain-operator",
        JOB_LABEL: bounded_name(job_name),
        JOB_UID_LABEL: uid,
        MODE_LABEL: mode,
    }


def owner_reference(job_name: str, uid: str) -> Manifest:
    """An ownerReference to the StreamingTrainingJob: deleting it deletes the child."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": job_name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _environment(job_name: str, uid: str, spec: StreamingTrainingJobSpec, kafka: KafkaAccess,
                 output: ClaimFolder | None, source: ClaimFolder | None,
                 workers: list[str]) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": JOB_NAME_ENV, "value": job_name},
        {"name": JOB_UID_ENV, "value": uid},
        {"name": JOB_SPEC_ENV, "value": json.dumps(dump_spec(spec), sort_keys=True)},
        {"name": BOOTSTRAP_ENV, "value": kafka.bootstrap_servers},
        {"name": "HOME", "value": SCRATCH_PATH},
        {"name": "MPLCONFIGDIR", "value": f"{SCRATCH_PATH}/matplotlib"},
        {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"},
    ]
    if kafka.user_secret:
        env.append({"name": CREDENTIALS_ENV, "value": CREDENTIALS_PATH})
        env.append({"name": SASL_USERNAME_ENV, "value": kafka.username or ""})
    if kafka.cluster_ca_secret:
        env.append({"name": CLUSTER_CA_ENV, "value": CLUSTER_CA_PATH})
    for _, _, variable, path in registry_secrets(spec):
        env.append({"name": variable, "value": path})
    if output is not None:
        env.append({"name": OUTPUT_URI_ENV, "value": output.uri})
    if source is not None:
        env.append({"name": MODEL_SOURCE_ENV, "value": SOURCE_PATH})
    if workers:
        env.append({"name": WORKERS_ENV, "value": ",".join(workers)})
    return env


def output_folder(namespace: str, job_name: str, uid: str,
                  spec: StreamingTrainingJobSpec) -> ClaimFolder | None:
    """The job's folder on its output claim (`None` without a claim: a scratch volume)."""
    claim = spec.model.output.volume_claim
    return ClaimFolder(claim, job_folder(namespace, job_name, uid)) if claim else None


def _volumes(spec: StreamingTrainingJobSpec, kafka: KafkaAccess, output: ClaimFolder | None,
             source: ClaimFolder | None) -> tuple[list[Manifest], list[Manifest]]:
    """Volumes and their mounts: scratch, the job's output folder, the source model, Kafka
    credentials. One volume per claim: a source on the output claim is a second mount of it."""
    model_volume: Manifest = (
        {"name": "model", "persistentVolumeClaim": {"claimName": output.claim}}
        if output is not None else {"name": "model", "emptyDir": {}})
    volumes = [{"name": "scratch", "emptyDir": {}}, model_volume]
    model_mount: Manifest = {"name": "model", "mountPath": spec.model.output.path}
    if output is not None:
        model_mount["subPath"] = output.folder
    mounts: list[Manifest] = [{"name": "scratch", "mountPath": SCRATCH_PATH}, model_mount]
    if source is not None:
        volume = "model" if output is not None and source.claim == output.claim else "source"
        if volume == "source":
            volumes.append({"name": "source", "persistentVolumeClaim": {
                "claimName": source.claim, "readOnly": True}})
        mounts.append({"name": volume, "mountPath": SOURCE_PATH, "subPath": source.folder,
                       "readOnly": True})
    if kafka.user_secret:
        volumes.append({"name": "kafka-user", "secret": {"secretName": kafka.user_secret}})
        mounts.append({"name": "kafka-user", "mountPath": CREDENTIALS_PATH, "readOnly": True})
    if kafka.cluster_ca_secret:
        volumes.append({"name": "cluster-ca", "secret": {"secretName": kafka.cluster_ca_secret}})
        mounts.append({"name": "cluster-ca", "mountPath": CLUSTER_CA_PATH, "readOnly": True})
    for volume, secret, _, path in registry_secrets(spec):
        volumes.append({"name": volume, "secret": {"secretName": secret}})
        mounts.append({"name": volume, "mountPath": path, "readOnly": True})
    return volumes, mounts


def registry_secrets(spec: StreamingTrainingJobSpec) -> list[tuple[str, str, str, str]]:
    """The Secrets of `data.schemaRegistry` to mount, as (volume, Secret, environment variable,
    mount path): its credentials and its CA, mounted like the Kafka user's (never read by the
    operator, never copied into the environment)."""
    registry = spec.data.schema_registry
    if registry is None:
        return []
    found = []
    if registry.authentication is not None:
        found.append(("registry-user", registry.authentication.secret_name,
                      REGISTRY_CREDENTIALS_ENV, REGISTRY_CREDENTIALS_PATH))
    if registry.ca_secret_name is not None:
        found.append(("registry-ca", registry.ca_secret_name, REGISTRY_CA_ENV, REGISTRY_CA_PATH))
    return found


def progress_channel(job_name: str, namespace: str, uid: str,
                     base_url: str) -> tuple[Manifest, Manifest, list[Manifest]]:
    """The projected volume (token and CA), its mount and the environment of the progress
    channel.

    The token is the pod's service account's, with the job's own audience: the operator's
    endpoint accepts it for that job only, and the API server not at all. The CA, which the
    operator publishes in the namespace, is what the pod verifies the endpoint against; it is
    optional, so a pod never waits for it (without it the pod's posts fail and its work goes on).
    """
    volume = {"name": "progress-token", "projected": {"sources": [
        {"serviceAccountToken": {"audience": progress_audience(namespace, job_name, uid),
                                 "expirationSeconds": PROGRESS_TOKEN_SECONDS,
                                 "path": PROGRESS_TOKEN_FILE}},
        {"configMap": {"name": PROGRESS_CA_CONFIGMAP, "optional": True,
                       "items": [{"key": PROGRESS_CA_KEY, "path": PROGRESS_CA_FILE}]}}]}}
    mount = {"name": "progress-token", "mountPath": PROGRESS_TOKEN_DIR, "readOnly": True}
    env = [{"name": PROGRESS_URL_ENV, "value": base_url.rstrip("/") + progress_path(namespace,
                                                                                    job_name)},
           {"name": PROGRESS_TOKEN_ENV, "value": f"{PROGRESS_TOKEN_DIR}/{PROGRESS_TOKEN_FILE}"},
           {"name": PROGRESS_CA_ENV, "value": f"{PROGRESS_TOKEN_DIR}/{PROGRESS_CA_FILE}"}]
    return volume, mount, env


def restricted_container_security() -> Manifest:
    """The container securityContext of Pod Security's `restricted` level."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_pod_spec(job_name: str, namespace: str, uid: str, mode: Mode,
                   spec: StreamingTrainingJobSpec, kafka: KafkaAccess,
                   source: ClaimFolder | None = None, defaults: PodDefaults = DEFAULT_PODS,
                   workers: list[str] | None = None,
                   extra_env: list[Manifest] | None = None) -> Manifest:
    """The pod spec of `mode`'s pods (`streamtrain run-mode <mode>`), under the `restricted` Pod
    Security level: volumes, environment (`extra_env` added), resources, progress channel;
    `restartPolicy: Never` (a Job's pods; a Deployment sets `Always`)."""
    role: RoleSpec = getattr(spec, MODE[mode].template)
    output = output_folder(namespace, job_name, uid, spec)
    volumes, mounts = _volumes(spec, kafka, output, source)
    env = [*_environment(job_name, uid, spec, kafka, output, source, workers or []),
           *(extra_env or [])]
    for into, extra in zip((volumes, mounts, env), model_file_mounts(
            spec, mode, output.claim if output is not None else None), strict=True):
        into.extend(extra)
    if defaults.progress_url:
        volume, mount, channel = progress_channel(job_name, namespace, uid, defaults.progress_url)
        volumes.append(volume)
        mounts.append(mount)
        env.extend(channel)
    resources = {kind: {name: str(amount) for name, amount in amounts.items()}
                 for kind, amounts in (("requests", role.resources.requests),
                                       ("limits", role.resources.limits)) if amounts}
    container: Manifest = {
        "name": mode,
        "image": role.image or defaults.image,
        "imagePullPolicy": role.image_pull_policy or defaults.image_pull_policy,
        "command": ["streamtrain", "run-mode", mode],
        "env": env,
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": restricted_container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if role.service_account_name:
        pod_spec["serviceAccountName"] = role.service_account_name
    return pod_spec


def build_job_manifest(job_name: str, namespace: str, uid: str, mode: Mode,
                       spec: StreamingTrainingJobSpec, kafka: KafkaAccess,
                       suspend: bool | None = None, source: ClaimFolder | None = None,
                       defaults: PodDefaults = DEFAULT_PODS,
                       queue: Mapping[str, str] | None = None) -> Manifest:
    """The batch/v1 Job that runs `mode` of the job: `streamtrain run-mode <mode>` in each of
    its pods (one per replica: an Indexed Job when there are several).

    A training group of several workers also gets every worker's address (`WORKERS_ENV`), the
    headless Service as subdomain, and a pod failure policy that does not count a worker that
    stopped only because a peer went away (`PEER_LOST_EXIT`): Kubernetes replaces each failed
    pod, the group forms again and resumes from the chief's checkpoint, and `backoffLimit`
    counts the failures that caused it. `source` is where the model of `model.source` is
    (resolved by the operator). `queue`: Kueue's labels (`kueue.queue_labels`), which put the
    Job in a LocalQueue: it is created suspended, for Kueue to resume once it admits it."""
    role: RoleSpec = getattr(spec, MODE[mode].template)
    policy = spec.run_policy
    labels = job_labels(job_name, uid, mode)
    group = mode == "train" and role.replicas > 1
    workers = worker_addresses(job_name, namespace, role.replicas) if group else []
    pod_spec = build_pod_spec(job_name, namespace, uid, mode, spec, kafka, source, defaults,
                              workers)
    job_spec: Manifest = {
        "backoffLimit": policy.backoff_limit,
        "completions": role.replicas,
        "parallelism": role.replicas,
        "suspend": bool(queue) or (policy.suspend if suspend is None else suspend),
        # A pod that exits with a permanent failure's code (a bad spec, Kafka refusing it, a
        # missing topic, too many bad records, ...) fails the Job at once: another pod would
        # meet the same. The Job controller applies this from the container's exit code.
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
            "containerName": mode, "operator": "In", "values": list(NOT_RETRIED_EXIT_CODES)}}]},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }
    if role.replicas > 1:
        # Pod i gets index i (JOB_COMPLETION_INDEX) and the hostname `<job>-<i>`.
        job_spec["completionMode"] = "Indexed"
    if group:
        pod_spec["subdomain"] = child_job_name(job_name, mode)
        job_spec["podFailurePolicy"]["rules"].append({
            "action": "Ignore",
            "onExitCodes": {"containerName": mode, "operator": "In", "values": [PEER_LOST_EXIT]},
        })
    if policy.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = policy.active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": child_job_name(job_name, mode),
            "namespace": namespace,
            "labels": {**labels, **(queue or {})},
            "ownerReferences": [owner_reference(job_name, uid)],
        },
        "spec": job_spec,
    }


def build_service_manifest(job_name: str, namespace: str, uid: str, mode: Mode) -> Manifest:
    """The headless Service that gives each pod of a training group a stable name
    (`<job>-<index>.<service>`), owned by the job; the pods listen on `WORKER_PORT`."""
    labels = job_labels(job_name, uid, mode)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": child_job_name(job_name, mode),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(job_name, uid)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_UID_LABEL: uid, MODE_LABEL: mode},
            # Workers look each other up while they start, before they would count as ready.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "worker", "port": WORKER_PORT, "protocol": "TCP"}],
        },
    }
