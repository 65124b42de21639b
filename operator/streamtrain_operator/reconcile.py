"""One reconcile pass: parse, resolve Kafka, observe children, plan, act.

Called by the controller's workers with the job's body as the watch last
showed it; the job's children (and a job `model.source` names) are read from
the same watches (`store.py`), so a pass makes no read of its own but a
Strimzi resource's. Returns the plan whose status the controller writes
through the status subresource. Side effects (creating or suspending the
current phase's Job, topics, clean-up after the TTL) happen here; the
decisions come from the pure `planner.next_plan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kubernetes

from streamtrain_operator import children, kueue, serving_children, sources, strimzi
from streamtrain_operator.builders import (
    DEFAULT_PODS,
    ClaimFolder,
    KafkaAccess,
    PodDefaults,
    build_job_manifest,
    build_service_manifest,
)
from streamtrain_operator.clock import parse_time
from streamtrain_operator.deployment import build_deployment_manifest
from streamtrain_operator.planner import (
    TERMINAL,
    ChildObservation,
    Event,
    Plan,
    invalid_spec,
    next_plan,
)
from streamtrain_operator.store import Store
from streamtrain_operator.tls import CaPublisher
from workload.contract import Mode
from workload.spec import SpecError, StreamingTrainingJobSpec, parse_spec
from workload.status import StreamingTrainingJobStatus


def ttl_expired(status: StreamingTrainingJobStatus, ttl_seconds: int | None, now: str) -> bool:
    """Whether a finished job's children are due for deletion."""
    due = _ttl_due(status.phase, status.completion_time, ttl_seconds, now)
    return due is not None and due <= 0


def ttl_due_in(job: Mapping[str, Any], now: str) -> float | None:
    """Seconds until a finished job's children are due for deletion (<= 0: now), from the raw
    resource; `None` when the job is not finished or has no TTL."""
    status = job.get("status") or {}
    ttl = ((job.get("spec") or {}).get("runPolicy") or {}).get("ttlSecondsAfterFinished")
    return _ttl_due(status.get("phase"), status.get("completionTime"), ttl, now)


def _ttl_due(phase: str | None, completion_time: str | None, ttl_seconds: int | None,
             now: str) -> float | None:
    if ttl_seconds is None or phase not in TERMINAL or not completion_time:
        return None
    due = parse_time(completion_time) + timedelta(seconds=ttl_seconds)
    return (due - parse_time(now)).total_seconds()


def reconcile(api: kubernetes.client.ApiClient, store: Store, name: str, namespace: str,
              uid: str, generation: int, spec_body: Mapping[str, Any],
              status_body: Mapping[str, Any] | None, now: str,
              pods: PodDefaults = DEFAULT_PODS,
              labels: Mapping[str, str] | None = None, ca: CaPublisher | None = None) -> Plan:
    """Bring the children in line with the spec; return the next status and events (`store`:
    what the watches hold; `pods`: the operator's settings for what a job's pod templates leave
    out; `labels`: the job's own, which may submit its child Jobs to a Kueue LocalQueue; `ca`:
    publishes the progress endpoint's CA in the namespace before pods are made there)."""
    current = StreamingTrainingJobStatus.model_validate(dict(status_body or {}))
    child_jobs, child_pods = store.children(namespace, uid)
    try:
        spec = parse_spec(spec_body, in_cluster=True)
    except SpecError as error:
        if current.phase == "Failed":
            return Plan(current)
        return invalid_spec(current, generation, str(error), now)
    if current.phase in TERMINAL:
        plan = Plan(current.model_copy(update={"observed_generation": generation}))
        due = _ttl_due(current.phase, current.completion_time,
                       spec.run_policy.ttl_seconds_after_finished, now)
        if due is not None and due <= 0:
            children.delete_children(api, child_jobs)
            serving_children.delete_serving(api, namespace, name,
                                            store.deployments(namespace, uid))
            return plan
        return dataclasses.replace(plan, wake_after_s=due)
    try:
        source = sources.resolve(namespace, spec,
                                 lambda other: store.get("StreamingTrainingJob",
                                                         (namespace, other)))
    except SpecError as error:
        return invalid_spec(current, generation, str(error), now, reason="InvalidModelSource")
    folder = source.folder if source is not None else None
    resolution = strimzi.resolve(api, namespace, spec.kafka)
    observed = _with_waiting_messages(api, namespace,
                                      children.observe_children(child_jobs, child_pods))
    existing = children.by_mode(child_jobs)
    deployments = store.deployments(namespace, uid)
    queue = kueue.queue_labels(labels)
    plan = next_plan(spec, name, generation, current, observed, resolution.state, now, source,
                     watch_progress=bool(pods.progress_url),
                     queue=queue.get(kueue.QUEUE_LABEL, ""),
                     serving=serving_children.observe_serving(deployments))
    try:
        _serve(api, store, (name, namespace, uid), spec, plan, resolution.access, folder, pods,
               deployments, ca)
    except children.NameTakenError as error:
        return invalid_spec(current, generation, str(error), now, reason="DeploymentNameTaken")
    if plan.run is not None and resolution.access is not None:
        if spec.kafka.manage_topics and resolution.strimzi_version is not None:
            for topic in strimzi.ensure_topics(api, spec, resolution.strimzi_version, namespace):
                plan.events.append(Event("Normal", "TopicCreated", f"KafkaTopic {topic}"))
        if ca is not None and pods.progress_url:
            ca.publish(api, namespace)
        manifest = build_job_manifest(name, namespace, uid, plan.run, spec, resolution.access,
                                      suspend=plan.suspend, source=folder, defaults=pods,
                                      queue=queue)
        if queue and plan.suspend:
            # Kueue would admit and resume a queued Job however it was created: none while held.
            children.set_suspend(api, existing.get(plan.run), True)
            return _with_ttl(plan, spec.run_policy.ttl_seconds_after_finished, now)
        try:
            if plan.run == "train" and spec.trainer.replicas > 1:
                children.ensure_service(api, build_service_manifest(name, namespace, uid,
                                                                    plan.run))
            created = children.ensure_job(api, manifest, plan.suspend, existing.get(plan.run))
        except children.NameTakenError as error:
            return invalid_spec(current, generation, str(error), now, reason="JobNameTaken")
        if created is not None:
            store.observe("Job", "CREATED", created)  # the next pass knows it before its event
            plan.events.append(Event("Normal", "JobCreated",
                                     f"created Job {manifest['metadata']['name']}"))
    elif plan.run is not None:
        # Kafka went away while a phase runs: keep its pods, honour suspend, create nothing.
        children.set_suspend(api, existing.get(plan.run), plan.suspend)
    return _with_ttl(plan, spec.run_policy.ttl_seconds_after_finished, now)


def _serve(api: kubernetes.client.ApiClient, store: Store, job: tuple[str, str, str],
           spec: StreamingTrainingJobSpec, plan: Plan, access: KafkaAccess | None,
           source: ClaimFolder | None, pods: PodDefaults,
           deployments: list[dict[str, Any]], ca: CaPublisher | None) -> None:
    """Create, update or scale the serving Deployment as the plan says (`job`: name,
    namespace, uid; `deployments`: the job's, as the store holds them; `ca`: published in the
    namespace first, since serving pods post their progress over TLS too)."""
    if plan.serve_replicas is None:
        return
    name, namespace, uid = job
    existing = deployments[0] if deployments else None
    if access is None:  # Kafka's address unknown: only a scale (to 0) is possible
        serving_children.scale_serving(api, existing, plan.serve_replicas)
        return
    if ca is not None and pods.progress_url:
        ca.publish(api, namespace)
    manifest = build_deployment_manifest(name, namespace, uid, spec, access, plan.serve_replicas,
                                         source, pods)
    written = serving_children.ensure_deployment(api, manifest, existing)
    if written is not None:
        store.observe("Deployment", "CREATED", written)  # the next pass knows it at once
    if existing is None and written is not None:
        plan.events.append(Event("Normal", "DeploymentCreated",
                                 f"created Deployment {manifest['metadata']['name']} "
                                 f"({plan.serve_replicas} serving pods)"))


def _with_waiting_messages(api: kubernetes.client.ApiClient, namespace: str,
                           observed: dict[Mode, ChildObservation]) -> dict[Mode, ChildObservation]:
    """The children, each Job that waits for Kueue with Kueue's word on why."""
    return {mode: dataclasses.replace(child, waiting_message=kueue.read_waiting_message(
                api, namespace, child.uid)) if child.waits_for_admission and child.uid else child
            for mode, child in observed.items()}


def _with_ttl(plan: Plan, ttl_seconds: int | None, now: str) -> Plan:
    """The plan, told to look again when the TTL of a job it just finished is due."""
    due = _ttl_due(plan.status.phase, plan.status.completion_time, ttl_seconds, now)
    return plan if due is None else dataclasses.replace(plan, wake_after_s=max(due, 0.0))
