"""Child Jobs and their pods: read them (as the watches hold them), create, suspend, delete.

Reading is pure: `observe_children` turns the job's child Jobs and pods, as
the store holds them (`store.py`: the objects the job controls, as the API
serves them in JSON), into what the state machine needs. Creation is by
deterministic name and `AlreadyExists` counts as success once the object is
found to be the job's own, so an operator restarted at any moment converges
without duplicates; a child the store already holds is not created again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes

from streamtrain_operator import kueue
from streamtrain_operator.builders import MODE_LABEL, Manifest
from streamtrain_operator.failures import failure_text
from streamtrain_operator.planner import ChildObservation
from streamtrain_operator.store import COMPLETION_INDEX
from workload.contract import MODES, PEER_LOST_EXIT, PERMANENT_BY_EXIT_CODE, Mode
from workload.spec import KIND
from workload.status import PodReport

Body = Mapping[str, Any]
"""An object as the API serves it in JSON (camelCase)."""


class NameTakenError(RuntimeError):
    """A Job with the child's deterministic name exists but is not owned by this job."""


def _true_condition(job: Body, kind: str) -> Body | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _terminations(pods: Sequence[Body]) -> list[tuple[str, int, str, bool]]:
    """(finish time, exit code, message, whether the pod is replica 0) of each terminated
    container, oldest first."""
    found = []
    for pod in pods:
        annotations = pod["metadata"].get("annotations") or {}
        first = annotations.get(COMPLETION_INDEX, "0") == "0"
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if terminated is not None:
                found.append((str(terminated.get("finishedAt") or ""),
                              int(terminated.get("exitCode") or 0),
                              terminated.get("message") or "", first))
    return sorted(found)


def failure_cause(exit_code: int, message: str) -> str:
    """The permanent reason of a failed pod: its report's (a known one only), else its exit
    code's (`contract.PERMANENT_FAILURES`); empty when a retry may help."""
    report = PodReport.from_message(message)
    if report is not None and report.reason is not None:
        return report.reason
    row = PERMANENT_BY_EXIT_CODE.get(exit_code)
    return row.reason if row is not None else ""


def observe(job: Body, pods: Sequence[Body]) -> ChildObservation:
    """A child Job and its pods as the state machine needs them; replica 0's report speaks for
    a phase of several (the chief of a training group, or any evaluator: each reports the
    merged result)."""
    status = job.get("status") or {}
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
    return ChildObservation(
        active=int(status.get("active") or 0),
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        complete=complete,
        failed_for_good=failed is not None,
        failure_reason=str(failed.get("reason") or "") if failed is not None else "",
        failure_message=failure_text(last_failure[1] if last_failure else None,
                                     str(failed.get("message") or "") if failed is not None
                                     else ""),
        failure_cause=failure_cause(*last_failure) if last_failure else "",
        started_at=status.get("startTime"),
        completed_at=status.get("completionTime"),
        report=report,
        uid=str(job["metadata"].get("uid") or ""),
        deleting=job["metadata"].get("deletionTimestamp") is not None,
        suspended=bool((job.get("spec") or {}).get("suspend")),
        queue=(job["metadata"].get("labels") or {}).get(kueue.QUEUE_LABEL, ""),
    )


def observe_children(jobs: Sequence[Body], pods: Sequence[Body]) -> dict[Mode, ChildObservation]:
    """The job's child Jobs by mode, each with its own pods (those it controls)."""
    observed: dict[Mode, ChildObservation] = {}
    for job in jobs:
        mode = (job["metadata"].get("labels") or {}).get(MODE_LABEL)
        if mode in MODES:
            uid = job["metadata"]["uid"]
            own_pods = [pod for pod in pods if any(
                owner.get("uid") == uid and owner.get("controller")
                for owner in pod["metadata"].get("ownerReferences") or [])]
            observed[mode] = observe(job, own_pods)
    return observed


def by_mode(jobs: Sequence[Body]) -> dict[str, Body]:
    """Child Jobs by the mode they run."""
    return {str((job["metadata"].get("labels") or {}).get(MODE_LABEL)): job for job in jobs}


def ensure_job(api: kubernetes.client.ApiClient, manifest: Manifest, suspend: bool,
               existing: Body | None = None) -> Body | None:
    """Create the Job unless it exists (`existing`: as the store holds it), else align its
    `suspend`; the Job as the API created it (JSON) when it was created now, else `None`."""
    batch: Any = kubernetes.client.BatchV1Api(api)
    if existing is None:
        created, existing = create_or_own(api, manifest, "Job", batch.create_namespaced_job,
                                          batch.read_namespaced_job)
        if created is not None:
            return created
    if existing is not None:
        _align_suspend(batch, existing, suspend)
    return None


def create_or_own(api: kubernetes.client.ApiClient, manifest: Manifest, kind: str, create: Any,
                  read: Any) -> tuple[Body | None, Body | None]:
    """Create the object: (what the API created, `None`) when created now, else (`None`, the
    existing one), which must be ours (`NameTakenError` otherwise); both as JSON."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        return api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
            create(namespace, manifest)), None
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    existing: Body = api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
        read(name, namespace))
    owner = manifest["metadata"]["ownerReferences"][0]["uid"]
    if owner not in {ref.get("uid") for ref in existing["metadata"].get("ownerReferences") or []}:
        raise NameTakenError(f"{kind} {name} exists and belongs to someone else; "
                             f"rename the StreamingTrainingJob or delete that {kind}")
    return None, existing


def set_suspend(api: kubernetes.client.ApiClient, existing: Body | None, suspend: bool) -> None:
    """Align an existing child Job's `suspend`; a missing one is left missing (never created)."""
    if existing is not None:
        _align_suspend(kubernetes.client.BatchV1Api(api), existing, suspend)


def _align_suspend(batch: Any, existing: Body, suspend: bool) -> None:
    """Set the Job's `suspend`; a Job queued in Kueue is Kueue's to suspend and resume, so it is
    left alone, or deleted when it is to stop (see `kueue`)."""
    meta = existing["metadata"]
    if _true_condition(existing, "Complete"):
        return
    if kueue.is_queued(meta.get("labels")):
        if suspend and _owned_by_a_job(existing):
            # In the foreground: the Job stays until its pods and Kueue's Workload are gone, so
            # a Job of the same name made on resume is never matched to that stale Workload
            # (Kueue finds a Job's Workload by the Job's name).
            _delete_job(batch, meta["name"], meta["namespace"], "Foreground")
        return
    if bool((existing.get("spec") or {}).get("suspend")) != suspend:
        batch.patch_namespaced_job(meta["name"], meta["namespace"], {"spec": {"suspend": suspend}})


def _owned_by_a_job(existing: Body) -> bool:
    """Whether a StreamingTrainingJob controls the object (so the operator may delete it)."""
    return any(ref.get("kind") == KIND and ref.get("controller")
               for ref in existing["metadata"].get("ownerReferences") or [])


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
    created, _ = create_or_own(api, manifest, "Service", core.create_namespaced_service,
                               core.read_namespaced_service)
    return created is not None


def delete_children(api: kubernetes.client.ApiClient, jobs: Sequence[Body]) -> int:
    """Delete the job's child Jobs and their pods (TTL after the job finished); how many."""
    batch: Any = kubernetes.client.BatchV1Api(api)
    for job in jobs:
        _delete_job(batch, job["metadata"]["name"], job["metadata"]["namespace"])
    return len(jobs)
