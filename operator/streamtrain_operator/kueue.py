"""Kueue: what the operator hands it on a child Job, and what it reads back while one waits.

A StreamingTrainingJob labelled `kueue.x-k8s.io/queue-name` (a LocalQueue of
its namespace) gets child Jobs with that label, and with its
`kueue.x-k8s.io/priority-class` (a WorkloadPriorityClass) if it has one.
They are created suspended; Kueue makes a Workload of each (all of a Job's
pods in one pod set, so a group of replicas is admitted whole or not at
all), admits it against its ClusterQueue's quota from the pods' resource
requests, and resumes the Job. When it preempts one, it suspends the Job
again (the Job controller deletes its pods: SIGTERM, so a trainer
checkpoints, an evaluator keeps its ledger) and resumes it when it admits
the Workload anew.

Once created, a queued Job's `spec.suspend` is Kueue's: the operator never
patches it (Kueue resumes any Job it has admitted that is suspended, so the
two would fight). A job the user suspends (`runPolicy.suspend`) or that the
operator stops (a progress deadline) has its queued Job deleted instead:
its pods stop the same way, its quota is freed at once, and resuming
creates the Job anew, queued again, resuming from the checkpoint.

Why a Job waits is said on its Workload: the `QuotaReserved` condition
(False: "couldn't assign flavors to pod set main: insufficient unused quota
for cpu in flavor ..."), or `Evicted` after a preemption. The operator finds
the Workload by Kueue's `kueue.x-k8s.io/job-uid` label, only while a Job
waits, with a `list` on `workloads.kueue.x-k8s.io`: read-only, and no more
than it needs (the Job's Events would need reading every Event of the
namespace, and Kueue posts the pending reason on the Workload, not the Job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kubernetes

KUEUE_GROUP = "kueue.x-k8s.io"
QUEUE_LABEL = f"{KUEUE_GROUP}/queue-name"
"""The LocalQueue a Job is submitted to (Kueue's label)."""
PRIORITY_CLASS_LABEL = f"{KUEUE_GROUP}/priority-class"
"""The WorkloadPriorityClass of a Job (Kueue's label)."""
JOB_UID_LABEL = f"{KUEUE_GROUP}/job-uid"
"""Kueue's label on a Workload: the uid of the Job it stands for."""

WORKLOAD_VERSIONS = ("v1beta2", "v1beta1")
"""Versions of `workloads.kueue.x-k8s.io` read, newest first (Kueue serves v1beta2 since
v0.15, per its changelog; an older Kueue serves only v1beta1)."""

ADMISSION_REASON = "WaitingForAdmission"
"""`status.reason` (and the `Queued` condition's reason) while a child Job waits for Kueue."""

CONDITIONS_THAT_SAY_WHY = (("QuotaReserved", "False"), ("Admitted", "False"), ("Evicted", "True"))
"""Workload conditions whose message says why it waits, in the order they are looked at: no
quota yet; quota but admission checks pending; evicted (preempted) and not yet requeued."""


def queue_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The Kueue labels of a StreamingTrainingJob to put on its child Jobs: none unless it
    names a queue."""
    labels = labels or {}
    if not labels.get(QUEUE_LABEL):
        return {}
    return {key: labels[key] for key in (QUEUE_LABEL, PRIORITY_CLASS_LABEL) if labels.get(key)}


def is_queued(labels: Mapping[str, str] | None) -> bool:
    """Whether a Job (by its labels) is submitted to Kueue, which then owns its `suspend`."""
    return bool((labels or {}).get(QUEUE_LABEL))


def waiting_message(workload: Mapping[str, Any] | None) -> str:
    """Kueue's own words on why a Workload waits; empty when it says nothing (yet)."""
    conditions = {str(condition.get("type")): condition
                  for condition in ((workload or {}).get("status") or {}).get("conditions") or []}
    for kind, status in CONDITIONS_THAT_SAY_WHY:
        condition = conditions.get(kind)
        if condition is not None and condition.get("status") == status and condition.get(
                "message"):
            return str(condition["message"])
    return ""


def default_message(job: str, queue: str) -> str:
    """What a waiting job says before Kueue has said anything of its Job."""
    return f"Job {job} waits for Kueue to admit it from LocalQueue {queue}"


def read_waiting_message(api: kubernetes.client.ApiClient, namespace: str, job_uid: str) -> str:
    """Kueue's message on the Workload of the Job with `job_uid`; empty when there is no such
    Workload (not made yet, or no Kueue in the cluster) or the operator may not read it."""
    custom: Any = kubernetes.client.CustomObjectsApi(api)
    for version in WORKLOAD_VERSIONS:
        try:
            found = custom.list_namespaced_custom_object(
                KUEUE_GROUP, version, namespace, "workloads",
                label_selector=f"{JOB_UID_LABEL}={job_uid}")
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                continue  # this version is not served
            if error.status == 403:
                return ""  # an install without the Workload read: the default message
            raise
        items = sorted(found.get("items") or [],
                       key=lambda item: str(item["metadata"].get("creationTimestamp") or ""))
        return waiting_message(items[-1]) if items else ""
    return ""
