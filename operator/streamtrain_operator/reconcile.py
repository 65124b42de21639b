"""One reconcile pass: parse, resolve Kafka, observe children, plan, act.

Called by the handlers with the object's current body; returns the plan
whose status the handler writes through the status subresource. Side
effects (creating or suspending the current phase's Job, topics, clean-up)
happen here; the decisions come from the pure `status.next_plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes

from streamtrain_operator import children, sources, strimzi
from streamtrain_operator.builders import KafkaAccess, build_job_manifest
from streamtrain_operator.planner import TERMINAL, Event, Plan, invalid_spec, next_plan
from workload.spec import SpecError, parse_spec
from workload.status import StreamingTrainingJobStatus


def now_text() -> str:
    """The current time in RFC 3339 (seconds, UTC), as Kubernetes writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def ttl_expired(status: StreamingTrainingJobStatus, ttl_seconds: int | None, now: str) -> bool:
    """Whether a finished job's children are due for deletion."""
    if ttl_seconds is None or status.phase not in TERMINAL or not status.completion_time:
        return False
    due = _parse_time(status.completion_time) + timedelta(seconds=ttl_seconds)
    return _parse_time(now) >= due


def reconcile(api: kubernetes.client.ApiClient, name: str, namespace: str, uid: str,
              generation: int, spec_body: Mapping[str, Any],
              status_body: Mapping[str, Any] | None) -> Plan:
    """Bring the children in line with the spec; return the next status and events."""
    now = now_text()
    current = StreamingTrainingJobStatus.model_validate(dict(status_body or {}))
    try:
        spec = parse_spec(spec_body, in_cluster=True)
    except SpecError as error:
        if current.phase == "Failed":
            return Plan(current)
        return invalid_spec(current, generation, str(error), now)
    if current.phase in TERMINAL:
        if ttl_expired(current, spec.run_policy.ttl_seconds_after_finished, now):
            children.delete_children(api, namespace, name)
        return Plan(current.model_copy(update={"observed_generation": generation}))
    try:
        source = sources.resolve(api, namespace, spec)
    except SpecError as error:
        return invalid_spec(current, generation, str(error), now, reason="InvalidModelSource")
    folder = source.folder if source is not None else None
    resolution = strimzi.resolve(api, namespace, spec.kafka)
    observed = children.observe_children(api, namespace, name)
    plan = next_plan(spec, name, generation, current, observed, resolution.state, now, source)
    if plan.run is not None and resolution.access is not None:
        if spec.kafka.manage_topics and resolution.strimzi_version is not None:
            for topic in strimzi.ensure_topics(api, spec, resolution.strimzi_version, namespace):
                plan.events.append(Event("Normal", "TopicCreated", f"KafkaTopic {topic}"))
        manifest = build_job_manifest(name, namespace, uid, plan.run, spec, resolution.access,
                                      suspend=plan.suspend, source=folder)
        try:
            created = children.ensure_job(api, manifest, plan.suspend)
        except children.NameTakenError as error:
            return invalid_spec(current, generation, str(error), now, reason="JobNameTaken")
        if created:
            plan.events.append(Event("Normal", "JobCreated",
                                     f"created Job {manifest['metadata']['name']}"))
    elif plan.run is not None and plan.run in observed:
        # Kafka went away while a phase runs: keep the pods, still honour suspend.
        manifest = build_job_manifest(name, namespace, uid, plan.run, spec,
                                      KafkaAccess(""), suspend=plan.suspend, source=folder)
        try:
            children.ensure_job(api, manifest, plan.suspend)
        except children.NameTakenError as error:
            return invalid_spec(current, generation, str(error), now, reason="JobNameTaken")
    return plan
