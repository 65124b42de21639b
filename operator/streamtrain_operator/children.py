"""The Kubernetes edge for child Jobs: observe them (and their pods), create, suspend, delete.

Creation is by deterministic name and `AlreadyExists` counts as success, so
an operator restarted at any moment converges without duplicates.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from streamtrain_operator import kueue
from streamtrain_operator.builders import JOB_LABEL, MODE_LABEL, Manifest, bounded_name
from streamtrain_operator.failures import failure_text
from streamtrain_operator.planner import ChildObservation
from workload.contract import MODES, PEER_LOST_EXIT, PERMANENT_BY_EXIT_CODE, Mode
from workload.spec import KIND
from workload.status import PodReport


class NameTakenError(RuntimeError):
    """A Job with the child's deterministic name exists but is not owned by this job."""


def _true_condition(job: Any, kind: str) -> Any:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""The annotation with which the Job controller numbers the pods of an Indexed Job."""


def _terminations(pods: list[Any]) -> list[tuple[str, int, str, bool]]:
    """(finish time, exit code, message, whether the pod is replica 0) of each terminated
    container, oldest first."""
    found = []
    for pod in pods:
        annotations = (pod.metadata.annotations or {}) if pod.metadata else {}
        first = annotations.get(COMPLETION_INDEX, "0") == "0"
        for container in (pod.status.container_statuses or []) if pod.status else []:
            terminated = container.state.terminated if container.state else None
            if terminated is not None:
                finished = str(terminated.finished_at or "")
                found.append((finished, int(terminated.exit_code), terminated.message or "",
                              first))
    return sorted(found)


def failure_cause(exit_code: int, message: str) -> str:
    """The permanent reason of a failed pod: its report's (a known one only), else its exit
    code's (`contract.PERMANENT_FAILURES`); empty when a retry may help."""
    report = PodReport.from_message(message)
    if report is not None and report.reason is not None:
        return report.reason
    row = PERMANENT_BY_EXIT_CODE.get(exit_code)
    return row.reason if row is not None else ""


def observe(job: Any, pods: list[Any]) -> ChildObservation:
    """A child Job and its pods as the state machine needs them; replica 0's report speaks for
    a phase of several (the chief of a training group, or any evaluator: each reports the
    merged result)."""
    status = job.status
    complete = _true_condition(job, "Complete") is not None
    failed = _true_condition(job, "Failed")
    terminations = _terminations(pods)
    successes = [message for _, code, message, first in terminations if code == 0 and first]
    failed_pods = [(code, message) for _, code, message, _ in terminations if code != 0]
    # A worker that stopped because a peer went away does not say why: the peer does.
    failures = [(code, message) for code, message in failed_pods if code != PEER_LOST_EXIT] or (
        failed_pods)
    report = PodReport.from_message(successes[-1]) if successes else None
    last_failure = failures[-1] if failures else None
    started = status.start_time if status else None
    return ChildObservation(
        active=int(status.active or 0) if status else 0,
        succeeded=int(status.succeeded or 0) if status else 0,
        failed=int(status.failed or 0) if status else 0,
        complete=complete,
        failed_for_good=failed is not None,
        failure_reason=str(failed.reason or "") if failed is not None else "",
        failure_message=failure_text(last_failure[1] if last_failure else None,
                                     str(failed.message or "") if failed is not None else ""),
        failure_cause=failure_cause(*last_failure) if last_failure else "",
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ") if started is not None else None,
        report=report,
        uid=str(job.metadata.uid or ""),
        deleting=job.metadata.deletion_timestamp is not None,
        suspended=bool(job.spec.suspend) if job.spec else False,
        queue=(job.metadata.labels or {}).get(kueue.QUEUE_LABEL, ""),
    )


def observe_children(api: kubernetes.client.ApiClient, namespace: str,
                     job_name: str) -> dict[Mode, ChildObservation]:
    """Every child Job of `job_name`, by mode, with its pods' termination messages."""
    selector = f"{JOB_LABEL}={bounded_name(job_name)}"
    jobs: list[Any] = kubernetes.client.BatchV1Api(api).list_namespaced_job(
        namespace, label_selector=selector).items
    pods: list[Any] = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=selector).items
    observed: dict[Mode, ChildObservation] = {}
    for job in jobs:
        mode = (job.metadata.labels or {}).get(MODE_LABEL)
        if mode in MODES:
            own_pods = [pod for pod in pods
                        if (pod.metadata.labels or {}).get(MODE_LABEL) == mode]
            observed[mode] = observe(job, own_pods)
    return observed


def ensure_job(api: kubernetes.client.ApiClient, manifest: Manifest, suspend: bool) -> bool:
    """Create the Job if missing, else align its `suspend`; `True` when it was created now."""
    batch: Any = kubernetes.client.BatchV1Api(api)
    existing = _create_or_own(manifest, "Job", batch.create_namespaced_job,
                              batch.read_namespaced_job)
    if existing is None:
        return True
    _align_suspend(batch, existing, suspend)
    return False


def _create_or_own(manifest: Manifest, kind: str, create: Any, read: Any) -> Any:
    """Create the object; `None` when created now, else the existing one, which must be ours
    (`NameTakenError` otherwise)."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        create(namespace, manifest)
        return None
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    existing = read(name, namespace)
    owner = manifest["metadata"]["ownerReferences"][0]["uid"]
    if owner not in {ref.uid for ref in existing.metadata.owner_references or []}:
        raise NameTakenError(f"{kind} {name} exists and belongs to someone else; "
                             f"rename the StreamingTrainingJob or delete that {kind}")
    return existing


def set_suspend(api: kubernetes.client.ApiClient, namespace: str, name: str,
                suspend: bool) -> None:
    """Align an existing child Job's `suspend`; a missing one is left missing (never created)."""
    batch: Any = kubernetes.client.BatchV1Api(api)
    try:
        existing = batch.read_namespaced_job(name, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return
        raise
    _align_suspend(batch, existing, suspend)


def _align_suspend(batch: Any, existing: Any, suspend: bool) -> None:
    """Set the Job's `suspend`; a Job queued in Kueue is Kueue's to suspend and resume, so it is
    left alone, or deleted when it is to stop (see `kueue`)."""
    if _true_condition(existing, "Complete"):
        return
    if kueue.is_queued(existing.metadata.labels):
        if suspend and _owned_by_a_job(existing):
            # In the foreground: the Job stays until its pods and Kueue's Workload are gone, so
            # a Job of the same name made on resume is never matched to that stale Workload
            # (Kueue finds a Job's Workload by the Job's name).
            _delete_job(batch, existing.metadata.name, existing.metadata.namespace, "Foreground")
        return
    if bool(existing.spec.suspend) != suspend:
        batch.patch_namespaced_job(existing.metadata.name, existing.metadata.namespace,
                                   {"spec": {"suspend": suspend}})


def _owned_by_a_job(existing: Any) -> bool:
    """Whether a StreamingTrainingJob controls the object (so the operator may delete it)."""
    return any(ref.kind == KIND and ref.controller
               for ref in existing.metadata.owner_references or [])


def _delete_job(batch: Any, name: str, namespace: str, propagation: str = "Background") -> None:
    """Delete a Job and its pods (`Foreground`: the Job goes last); a Job already gone counts
    as deleted."""
    try:
        batch.delete_namespaced_job(name, namespace, propagation_policy=propagation)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise


def ensure_service(api: kubernetes.client.ApiClient, manifest: Manifest) -> bool:
    """Create the Service if missing; `True` when it was created now."""
    core: Any = kubernetes.client.CoreV1Api(api)
    return _create_or_own(manifest, "Service", core.create_namespaced_service,
                          core.read_namespaced_service) is None


def delete_children(api: kubernetes.client.ApiClient, namespace: str, job_name: str) -> int:
    """Delete every child Job and its pods (TTL after the job finished); return how many."""
    batch: Any = kubernetes.client.BatchV1Api(api)
    selector = f"{JOB_LABEL}={bounded_name(job_name)}"
    jobs: list[Any] = batch.list_namespaced_job(namespace, label_selector=selector).items
    for job in jobs:
        _delete_job(batch, job.metadata.name, namespace)
    return len(jobs)
