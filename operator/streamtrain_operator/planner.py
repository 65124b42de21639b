"""The state machine: from the spec, the last status and the observed children to the next status.

Pure functions only. The phase moves Pending -> Training -> Evaluating ->
(Online) -> Succeeded | Failed, with Suspended while `runPolicy.suspend` is
set, and Queued while the phase's Job waits for Kueue to admit it (reason
`WaitingForAdmission`, Kueue's message; again after a preemption). Which
phase the job is in follows from the status itself (a phase is done once
its role reports a succeeded pod), so a child Job deleted after
it finished (TTL) never makes a phase run twice. Conditions are recomputed
from the phase every time, so they cannot contradict it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from streamtrain_operator.builders import ClaimFolder, child_job_name
from streamtrain_operator.clock import seconds_between
from streamtrain_operator.failures import (
    DEADLINE_REASON,
    MESSAGE_LIMIT,
    deadline_message,
    failure_message,
    seconds_left,
)
from streamtrain_operator.kueue import ADMISSION_REASON, default_message
from streamtrain_operator.serving import (
    ServingObservation,
    serving_condition,
    serving_replicas,
    serving_status,
    should_serve,
)
from workload.contract import KAFKA_FAILURES, MODE, MODE_TABLE, TERMINAL_PHASES, Mode, Phase
from workload.spec import StreamingTrainingJobSpec
from workload.status import (
    BadRecords,
    Condition,
    Metrics,
    ModelStatus,
    PodReport,
    Progress,
    RoleStatus,
    StreamingTrainingJobStatus,
    with_headline,
)

TERMINAL = TERMINAL_PHASES

FIGURE_DIGITS = 4
"""Decimals of the metrics copied into status."""

WAIT_CONDITIONS = {"KafkaReady": "False", "ModelSourceReady": "False", "Queued": "True"}
"""Conditions that, with this status, say the job waits for what no watch of the operator
reports: an object it does not own, or Kueue's word on a queued Job (its Workload)."""

WAIT_RECHECK_S = (2.0, 60.0)
"""Least and most seconds between two looks at a waiting job."""
REPORT_GRACE_S = 30.0
"""How long a succeeded phase waits for its pod's report to be seen before it ends without
the pod's figures (seconds from the Job's completion)."""

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class ChildObservation:
    """What the operator saw of one child Job and its pods."""

    active: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    """The Job's `Complete` condition is true."""
    failed_for_good: bool = False
    """The Job's `Failed` condition is true (backoff limit or deadline reached)."""
    failure_reason: str = ""
    """The Job's `Failed` condition reason, e.g. `BackoffLimitExceeded`."""
    failure_message: str = ""
    """Why, in one sentence: the failed pod's report message, the gist of its termination text,
    or the Job's condition."""
    failure_cause: str = ""
    """The failed pod's report `reason`, when it named one (e.g. `KafkaUnreachable`)."""
    started_at: str | None = None
    """When the Job started its (current run of) pods (RFC 3339): a progress deadline counts
    from here until the first post."""
    completed_at: str | None = None
    """When the Job completed (RFC 3339), if it has."""
    report: PodReport | None = None
    """The report of the pod that completed."""
    uid: str = ""
    """The Job's `metadata.uid`."""
    deleting: bool = False
    """The Job is being deleted (its `deletionTimestamp` is set): it counts as gone, and a new
    one is made once it is."""
    suspended: bool = False
    """The Job's `spec.suspend`."""
    queue: str = ""
    """The Kueue LocalQueue the Job was submitted to (its `kueue.x-k8s.io/queue-name` label);
    empty when Kueue does not manage it."""
    waiting_message: str = ""
    """Kueue's word on why the Job waits for admission (from its Workload), if it said one."""

    @property
    def waits_for_admission(self) -> bool:
        """Whether Kueue holds the Job: queued and suspended (not yet admitted, or preempted)."""
        return bool(self.queue) and self.suspended and not (self.complete or self.deleting)


@dataclass(frozen=True)
class KafkaState:
    """Whether the Kafka address is known, and if not, what the operator waits for."""

    ready: bool
    reason: str
    message: str = ""
    bootstrap_servers: str | None = None


@dataclass(frozen=True)
class SourceState:
    """Whether the model `model.source` names can be mounted, and if not, what the job waits for."""

    ready: bool
    reason: str
    message: str = ""
    folder: ClaimFolder | None = None
    """Where the model is, once ready."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the job."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """The next status and what the edge must do: which child Job should exist, suspended or not."""

    status: StreamingTrainingJobStatus
    run: Mode | None = None
    suspend: bool = False
    events: list[Event] = field(default_factory=list)
    wake_after_s: float | None = None
    """Seconds until the job must be looked at again without an event (a TTL or a deadline
    coming due); `None` = only on events."""
    serve_replicas: int | None = None
    """Pods the serving Deployment should have (`serving.serving_replicas`); `None` = leave it
    as it is (or uncreated)."""


def done_modes(status: StreamingTrainingJobStatus) -> set[Mode]:
    """Modes whose child Job has completed, according to the status."""
    done: set[Mode] = set()
    for row in MODE_TABLE:
        if not row.phase_of_run:
            continue
        role: RoleStatus | None = getattr(status, row.status_field)
        if role is not None and role.succeeded >= max(role.replicas, 1):
            done.add(row.mode)
    return done


def current_mode(spec: StreamingTrainingJobSpec, status: StreamingTrainingJobStatus) -> Mode | None:
    """The first mode of the spec not yet completed (`None` when all are)."""
    done = done_modes(status)
    for mode in spec.phases:
        if mode not in done:
            return mode
    return None


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """`conditions` with `new` in place of its type; the transition time moves only on change."""
    result: list[Condition] = []
    for existing in conditions:
        if existing.type != new.type:
            result.append(existing)
        elif existing.status == new.status:
            new = new.model_copy(update={"last_transition_time": existing.last_transition_time})
    return [*result, new]


def _condition(kind: str, holds: bool, reason: str, message: str, generation: int,
               now: str) -> Condition:
    return Condition.model_validate({
        "type": kind, "status": "True" if holds else "False", "reason": reason,
        "message": message, "lastTransitionTime": now, "observedGeneration": generation})


def phase_conditions(spec: StreamingTrainingJobSpec | None, status: StreamingTrainingJobStatus,
                     message: str, generation: int, now: str) -> list[Condition]:
    """Every phase-derived condition, consistent with `status.phase` by construction."""
    phase = status.phase
    done = done_modes(status)
    failed = phase == "Failed"
    wanted = [
        _condition("Ready", phase == "Succeeded", "Succeeded" if phase == "Succeeded" else phase,
                   message, generation, now),
        _condition("Failed", failed, (status.reason or "Failed") if failed else "NotFailed",
                   message if failed else "", generation, now),
        _condition("Suspended", phase == "Suspended",
                   "Suspended" if phase == "Suspended" else "NotSuspended", "", generation, now),
        _condition("Queued", phase == "Queued",
                   ADMISSION_REASON if phase == "Queued" else "NotQueued",
                   message if phase == "Queued" else "", generation, now),
    ]
    for mode in spec.phases if spec is not None else []:
        row = MODE[mode]
        holds = phase == row.phase if row.condition_while_running else mode in done
        reason = row.done_reason if mode in done else phase
        wanted.append(_condition(row.condition, holds, reason, "", generation, now))
    conditions = list(status.conditions)
    for condition in wanted:
        conditions = set_condition(conditions, condition)
    return conditions


FINAL_FIGURES: dict[Mode, dict[str, str]] = {
    "train": {"loss": "train_loss", "accuracy": "train_accuracy"},
    "evaluate": {"loss": "eval_loss", "accuracy": "eval_accuracy", "auc": "eval_auc"},
    "online": {"accuracy": "online_accuracy"},
}
"""For each mode, which `status.metrics` figure a finished phase's `status.progress` figure
shows: the phase ends with the figures of its whole group (a training group's, every evaluator's
merged), whatever its replica 0 last posted."""


def _bad_records(metrics: Metrics, report: PodReport) -> dict[str, object]:
    """`metrics`' bad-record figures with the reported phase's in place: by phase, and over every
    phase (a later phase no longer hides an earlier one's)."""
    by_phase = dict(metrics.bad_records_by_phase or {})
    reported = report.metrics
    if reported.bad_records is not None or reported.bad_records_by_reason:
        by_reason = dict(reported.bad_records_by_reason or {})
        by_phase[report.mode] = BadRecords(
            records=reported.bad_records if reported.bad_records is not None
            else sum(by_reason.values()), by_reason=by_reason)
    if not by_phase:
        return {}
    total: dict[str, int] = {}
    for phase in by_phase.values():
        for reason, count in phase.by_reason.items():
            total[reason] = total.get(reason, 0) + count
    return {"bad_records_by_phase": dict(sorted(by_phase.items())),
            "bad_records": sum(phase.records for phase in by_phase.values()),
            "bad_records_by_reason": dict(sorted(total.items()))}


def _merge_report(status: StreamingTrainingJobStatus, report: PodReport, now: str) -> None:
    # Four decimals are what `kubectl get stj` should show; the pods' artefacts keep the rest.
    figures = {key: round(value, FIGURE_DIGITS) if isinstance(value, float) else value
               for key, value in report.metrics.model_dump(
                   exclude_none=True, exclude={"bad_records", "bad_records_by_reason",
                                               "bad_records_by_phase"}).items()}
    if report.mode == "train" and report.epoch is not None:
        figures["epochs_trained"] = report.epoch
    metrics = status.metrics or Metrics()
    figures.update(_bad_records(metrics, report))
    status.metrics = with_headline(metrics.model_copy(update=figures))
    # The phase is done: its live figures stand, completed, and agree with `status.metrics`.
    last = status.progress if status.progress is not None and status.progress.mode == report.mode \
        else Progress(mode=report.mode)
    final = {field: getattr(status.metrics, source)
             for field, source in FINAL_FIGURES[report.mode].items()
             if getattr(status.metrics, source) is not None}
    status.progress = last.model_copy(update={
        "percent": 100.0, "eta_seconds": 0, "last_update_time": now, **final,
        **({"epoch": report.epoch} if report.epoch is not None else {})})
    if report.model_uri:
        kept = status.model.preprocessing if status.model is not None else None
        classes = report.classes or (status.model.classes if status.model is not None else None)
        status.model = ModelStatus(uri=report.model_uri, saved_at=now,
                                   preprocessing=report.preprocessing or kept, classes=classes)


def _live_progress(status: StreamingTrainingJobStatus, run: Mode | None, suspended: bool,
                   now: str) -> None:
    """`status.progress` as the running phase may show it: from zero when the phase is new (not
    the last phase's completed figures), and without a time left while the job is suspended."""
    progress = status.progress
    if run is not None and progress is not None and progress.mode != run:
        status.progress = Progress(mode=run, records=0, percent=0.0, last_update_time=now)
    elif suspended and progress is not None:
        status.progress = progress.model_copy(update={"eta_seconds": None,
                                                      "records_per_second": None})


def _transition(status: StreamingTrainingJobStatus, phase: Phase, message: str,
                events: list[Event]) -> None:
    if status.phase != phase:
        kind: EventType = "Warning" if phase == "Failed" else "Normal"
        events.append(Event(kind, phase, message or f"job is {phase}"))
    status.phase = phase


def invalid_spec(current: StreamingTrainingJobStatus, generation: int, message: str,
                 now: str, reason: str = "InvalidSpec") -> Plan:
    """A job that can never work: Failed, with the offending field (or object) named."""
    status = current.model_copy(deep=True)
    events: list[Event] = []
    status.observed_generation = generation
    status.reason = reason
    _transition(status, "Failed", message, events)
    status.completion_time = status.completion_time or now
    status.conditions = phase_conditions(None, status, message, generation, now)
    return Plan(status, events=events)


def _readiness(status: StreamingTrainingJobStatus, current: StreamingTrainingJobStatus,
               kind: str, ready: bool, reason: str, message: str, generation: int, now: str,
               events: list[Event]) -> None:
    """Set a readiness condition; a Warning event when it turns (or starts) False."""
    previous = {str(condition.type): condition.status for condition in current.conditions}
    if not ready and previous.get(kind) != "False":
        events.append(Event("Warning", reason, message))
    status.conditions = set_condition(status.conditions,
                                      _condition(kind, ready, reason, message, generation, now))


def next_plan(spec: StreamingTrainingJobSpec, job_name: str, generation: int,
              current: StreamingTrainingJobStatus, children: Mapping[Mode, ChildObservation],
              kafka: KafkaState, now: str, source: SourceState | None = None,
              watch_progress: bool = False, queue: str = "",
              serving: ServingObservation | None = None) -> Plan:
    """The next status of the job and the child Job that should exist (`source`: the state of
    `model.source`, when the job names one; `watch_progress`: pods post live progress, so
    `runPolicy.progressDeadlineSeconds` applies; `queue`: the Kueue LocalQueue the job's new
    child Jobs are submitted to, if any; `serving`: the serving Deployment, if one exists)."""
    status = current.model_copy(deep=True)
    status.observed_generation = generation
    if current.phase in TERMINAL:
        return Plan(status)
    events: list[Event] = []
    message = ""
    _readiness(status, current, "KafkaReady", kafka.ready, kafka.reason, kafka.message,
               generation, now, events)
    if source is not None:
        _readiness(status, current, "ModelSourceReady", source.ready, source.reason,
                   source.message, generation, now, events)
    blocked = not kafka.ready or (source is not None and not source.ready)
    status.reason = (kafka.reason if not kafka.ready else
                     source.reason if source is not None and not source.ready else None)
    if kafka.bootstrap_servers:
        status.bootstrap_servers = kafka.bootstrap_servers
    run: Mode | None = None
    stop = False
    deadline: float | None = None
    mode = current_mode(spec, status)
    while mode is not None:
        child = children.get(mode)
        if child is not None and child.deleting and not child.complete:
            child = None
        name = child_job_name(job_name, mode)
        role = RoleStatus(job=name, replicas=getattr(spec, MODE[mode].template).replicas)
        if child is not None:
            role = role.model_copy(update={"active": child.active, "succeeded": child.succeeded,
                                           "failed": child.failed})
        # Every replica succeeded: done, also in the moment before the Job says Complete (a
        # pass then would record the count, and the next take the phase as done unread).
        done = child is not None and (child.complete or child.succeeded >= role.replicas)
        wait = report_wait(child, now) if child is not None and done else None
        if wait is not None:
            # Its pod's report is on its way: the phase ends with its figures, not before (the
            # role's counts too: a succeeded count in status would end the phase unread).
            deadline = wait
            break
        if child is not None and done:
            role = role.model_copy(update={"succeeded": max(role.replicas, child.succeeded)})
            setattr(status, MODE[mode].status_field, role)
            if child.report is not None:
                _merge_report(status, child.report, now)
                if child.report.resume_ignored:
                    events.append(Event("Warning", "ResumeStateIgnored",
                                        child.report.resume_ignored[-MESSAGE_LIMIT:]))
            mode = current_mode(spec, status)
            continue
        setattr(status, MODE[mode].status_field, role)
        if child is not None and child.failed_for_good:
            status.reason = child.failure_cause or child.failure_reason or "Failed"
            message = failure_message(mode, status.reason, child.failure_message, name)
            if child.failure_cause in KAFKA_FAILURES:
                status.conditions = set_condition(status.conditions, _condition(
                    "KafkaReady", False, child.failure_cause, child.failure_message,
                    generation, now))
            _transition(status, "Failed", message, events)
            break
        if child is None and blocked:
            break  # no pods until Kafka and the source are known; running pods keep theirs
        run = mode
        if not spec.run_policy.suspend and (child.waits_for_admission if child is not None
                                            else bool(queue)):
            status.reason = ADMISSION_REASON
            message = (child.waiting_message if child is not None else "") or default_message(
                name, child.queue if child is not None else queue)
            _transition(status, "Queued", message, events)
            break
        status.start_time = status.start_time or now
        left = seconds_left(spec, mode, child.started_at if child is not None else None,
                            status.progress, now) if watch_progress else None
        if left is not None and left <= 0:
            status.reason, stop = DEADLINE_REASON, True  # suspending the child stops its pods
            message = deadline_message(mode, spec, name)
            _transition(status, "Failed", message, events)
            break
        deadline = left
        _transition(status, "Suspended" if spec.run_policy.suspend else MODE[mode].phase,
                    "", events)
        break
    _live_progress(status, run, status.phase == "Suspended", now)
    if mode is None and spec.serve is not None:  # serving runs on until the job is deleted
        _transition(status, "Suspended" if spec.run_policy.suspend else "Serving",
                    "every phase completed; serving", events)
    elif mode is None:
        _transition(status, "Succeeded", "every phase completed", events)
    if status.phase in TERMINAL:
        status.completion_time = status.completion_time or now
    status.conditions = phase_conditions(spec, status, message, generation, now)
    serve_replicas = None
    if spec.serve is not None:
        serve = should_serve(spec, "train" in done_modes(status),
                             source is not None and source.ready, kafka.ready)
        serve_replicas = serving_replicas(spec, serve, spec.run_policy.suspend,
                                          status.phase == "Failed", serving)
        status.serving = serving_status(spec, job_name, status.serving, serve_replicas, serving)
        status.conditions = set_condition(status.conditions, serving_condition(
            status, serve_replicas, generation, now))
    looks = [wake for wake in (deadline, waiting_recheck(status, now)) if wake is not None]
    return Plan(status, run, spec.run_policy.suspend or stop, events,
                wake_after_s=min(looks) if looks and status.phase not in TERMINAL else None,
                serve_replicas=serve_replicas)


def report_wait(child: ChildObservation, now: str) -> float | None:
    """Seconds to wait for the report of a child Job that has succeeded before its pod's
    terminated state is seen (the watches deliver Jobs and pods apart, e.g. as the operator
    starts); `None` when the report is in or the wait is over (its pods are gone for good)."""
    if child.report is not None:
        return None
    if child.completed_at is None:
        return REPORT_GRACE_S
    left = REPORT_GRACE_S - seconds_between(child.completed_at, now)
    return left if left > 0 else None


def waiting_recheck(status: StreamingTrainingJobStatus, now: str) -> float | None:
    """Seconds until a job that waits for what it does not watch is looked at again.

    A Strimzi `Kafka` or `KafkaUser`, the job `model.source` names, and Kueue's
    Workload of a queued Job are not watched (they may not even have a CRD
    yet; Kueue's admission itself shows as the Job's resume, which is
    watched); a waiting job looks again after half the time it has waited so
    far, within `WAIT_RECHECK_S`.
    """
    waiting = [condition for condition in status.conditions
               if WAIT_CONDITIONS.get(condition.type) == condition.status]
    if not waiting:
        return None
    waited = max(seconds_between(condition.last_transition_time, now) for condition in waiting)
    low, high = WAIT_RECHECK_S
    return min(max(waited / 2, low), high)
