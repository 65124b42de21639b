"""The pure builder of the Deployment that runs serving: long-running pods, owned by the job.

Serving is not a phase that completes: its pods run until the job is
deleted, so they are an apps/v1 Deployment (`<job>-serve`), whose
ReplicaSet keeps `serve.replicas` of them running and restarts a container
that exits (a fatal Kafka error ends the process on purpose: the restarted
one fences its predecessor). The pods are the other modes' pods
(`builders.build_pod_spec`: the same security context, volumes, Kafka access
and progress channel) with `restartPolicy: Always`, and each learns its
replica name from its own pod name (`SERVE_REPLICA_ENV`, the downward API),
from which its Kafka `transactional.id` is made: stable while the container
restarts in its pod.

Scaling and image changes (`serve.replicas`, `serve.image`, ...) may be
edited while the job runs; the template's digest in an annotation tells the
edge when the Deployment must be updated.
"""

from __future__ import annotations

import hashlib
import json

from streamtrain_operator.builders import (
    DEFAULT_PODS,
    JOB_UID_LABEL,
    MODE_LABEL,
    ClaimFolder,
    KafkaAccess,
    Manifest,
    PodDefaults,
    build_pod_spec,
    child_job_name,
    job_labels,
    owner_reference,
)
from workload.contract import API_GROUP, SERVE_REPLICA_ENV
from workload.spec import StreamingTrainingJobSpec

TEMPLATE_DIGEST = f"{API_GROUP}/template-digest"
"""Annotation on the Deployment: a digest of the pod template and replicas it was made with."""

STOP_GRACE_S = 30
"""Seconds a serving pod has after SIGTERM: it commits its open transaction (at most
`serve.maxLatencyMs` of records) and leaves its consumer group, in well under a second."""


def serving_name(job_name: str) -> str:
    """The Deployment's deterministic name."""
    return child_job_name(job_name, "serve")


def build_deployment_manifest(job_name: str, namespace: str, uid: str,
                              spec: StreamingTrainingJobSpec, kafka: KafkaAccess,
                              replicas: int, source: ClaimFolder | None = None,
                              defaults: PodDefaults = DEFAULT_PODS) -> Manifest:
    """The Deployment that runs `replicas` serving pods of the job (0 while suspended)."""
    assert spec.serve is not None
    labels = job_labels(job_name, uid, "serve")
    replica = {"name": SERVE_REPLICA_ENV,
               "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    pod_spec = build_pod_spec(job_name, namespace, uid, "serve", spec, kafka, source, defaults,
                              extra_env=[replica])
    pod_spec["restartPolicy"] = "Always"
    pod_spec["terminationGracePeriodSeconds"] = STOP_GRACE_S
    template = {"metadata": {"labels": labels}, "spec": pod_spec}
    digest = hashlib.sha256(json.dumps({"replicas": replicas, "template": template},
                                       sort_keys=True).encode()).hexdigest()[:16]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": serving_name(job_name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {TEMPLATE_DIGEST: digest},
            "ownerReferences": [owner_reference(job_name, uid)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {JOB_UID_LABEL: uid, MODE_LABEL: "serve"}},
            "template": template,
        },
    }
