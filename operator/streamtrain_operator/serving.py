"""Serving's part of the state machine: whether its Deployment runs, how many pods, what status says.

Pure functions, called by `planner.next_plan`. Serving starts once there is
a model to serve (the job's training has completed, or the model that
`model.source` names is there) and Kafka's address is known; it then runs
beside the phases that follow (evaluation, online learning) and after them,
when the job's phase is `Serving` (a job that serves never reaches
`Succeeded`: it runs until deleted). Its pods stop (the Deployment scales
to 0) while the job is suspended and once it has failed.

`status.serving` holds the Deployment's name and pod counts; the model
version, since when it serves and the records served come from the pods'
live posts (`progress.py`) and are kept here as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamtrain_operator.deployment import serving_name
from workload.spec import StreamingTrainingJobSpec
from workload.status import Condition, ServingStatus, StreamingTrainingJobStatus


@dataclass(frozen=True)
class ServingObservation:
    """What the operator saw of the serving Deployment."""

    replicas: int = 0
    """Pods its spec asks for."""
    ready: int = 0
    """Pods running and ready."""


def should_serve(spec: StreamingTrainingJobSpec, trained: bool, source_ready: bool,
                 kafka_ready: bool) -> bool:
    """Whether serving pods should run now (unless suspended): a model exists and Kafka is
    known. `trained`: the job's training has completed; `source_ready`: the model of
    `model.source` is there (false when the job names none)."""
    if spec.serve is None or not kafka_ready:
        return False
    return trained if spec.train is not None else source_ready


def serving_replicas(spec: StreamingTrainingJobSpec, serve: bool, suspended: bool,
                     failed: bool, observed: ServingObservation | None) -> int | None:
    """How many pods the Deployment should have; `None` to leave it as it is: none made yet
    (no model, or Kafka unknown), or running pods kept while Kafka's address is unknown."""
    if spec.serve is None:
        return None
    if failed or suspended:
        return 0 if observed is not None else None
    return spec.serve.replicas if serve else None


def serving_status(spec: StreamingTrainingJobSpec, job_name: str,
                   current: ServingStatus | None, replicas: int | None,
                   observed: ServingObservation | None) -> ServingStatus | None:
    """`status.serving`: the Deployment's name and counts; the pods' own figures kept."""
    if spec.serve is None:
        return None
    kept = current or ServingStatus()
    return kept.model_copy(update={
        "deployment": serving_name(job_name) if replicas is not None else kept.deployment,
        "replicas": replicas if replicas is not None else (
            observed.replicas if observed is not None else 0),
        "ready_replicas": observed.ready if observed is not None else 0,
    })


def serving_condition(status: StreamingTrainingJobStatus, replicas: int | None,
                      generation: int, now: str) -> Condition:
    """The `Serving` condition: true while at least one serving pod is ready."""
    ready = status.serving.ready_replicas if status.serving is not None else 0
    if ready:
        reason, message = "Serving", f"{ready} of {replicas or 0} serving pods ready"
    elif replicas:
        reason, message = "Starting", f"0 of {replicas} serving pods ready"
    elif replicas == 0:
        reason, message = "Stopped", "serving is stopped (the job is suspended or has failed)"
    else:
        reason, message = "WaitingForModel", "serving starts once the model is trained"
    return Condition.model_validate({
        "type": "Serving", "status": "True" if ready else "False", "reason": reason,
        "message": message, "lastTransitionTime": now, "observedGeneration": generation})
