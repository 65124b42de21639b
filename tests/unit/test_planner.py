"""The state machine: next status from spec, last status and observed children."""

from __future__ import annotations

from streamtrain_operator.builders import ClaimFolder
from streamtrain_operator.failures import failure_text, one_sentence
from streamtrain_operator.planner import (
    ChildObservation,
    KafkaState,
    Plan,
    SourceState,
    current_mode,
    invalid_spec,
    next_plan,
)

from workload.spec import parse_spec
from workload.status import (
    Metrics,
    PodReport,
    Progress,
    RoleStatus,
    StreamingTrainingJobStatus,
)

SPEC = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "susy-train"},
    "evaluate": {"topic": "susy-test"}})
READY = KafkaState(True, "Resolved", bootstrap_servers="kafka:9092")
NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"

TRAIN_REPORT = PodReport(mode="train", ok=True, epoch=10,
                         metrics=Metrics(train_loss=0.4000000059604645, train_accuracy=0.8),
                         model_uri="/m")
EVAL_REPORT = PodReport(mode="evaluate", ok=True,
                        metrics=Metrics(eval_accuracy=0.79, eval_auc=0.86, records_evaluated=400))


def _step(status: StreamingTrainingJobStatus, children: dict[str, ChildObservation],
          spec: object = SPEC, kafka: KafkaState = READY, now: str = NOW) -> Plan:
    return next_plan(spec, "susy", 1, status, children, kafka, now)  # type: ignore[arg-type]


def _conditions(plan: Plan) -> dict[str, str]:
    return {condition.type: condition.status for condition in plan.status.conditions}


def _assert_consistent(plan: Plan) -> None:
    """Conditions never contradict the phase."""
    phase, held = plan.status.phase, _conditions(plan)
    assert (held["Ready"] == "True") == (phase == "Succeeded")
    assert (held["Failed"] == "True") == (phase == "Failed")
    assert (held["Suspended"] == "True") == (phase == "Suspended")
    assert (held["Queued"] == "True") == (phase == "Queued")
    assert (held.get("Training") == "True") == (phase == "Training")


def test_new_job_starts_training_and_records_start_time() -> None:
    plan = _step(StreamingTrainingJobStatus(), {})
    assert (plan.status.phase, plan.run, plan.suspend) == ("Training", "train", False)
    assert plan.status.start_time == NOW
    assert plan.status.trainer is not None and plan.status.trainer.job == "susy-train"
    assert [event.reason for event in plan.events] == ["Training"]
    _assert_consistent(plan)


def test_full_life_cycle_reaches_succeeded_with_metrics() -> None:
    plan = _step(StreamingTrainingJobStatus(), {})
    plan = _step(plan.status, {"train": ChildObservation(succeeded=1, complete=True,
                                                         report=TRAIN_REPORT)})
    assert (plan.status.phase, plan.run) == ("Evaluating", "evaluate")
    assert _conditions(plan)["Training"] == "False"
    _assert_consistent(plan)
    plan = _step(plan.status, {"evaluate": ChildObservation(active=1)})
    assert plan.status.evaluator is not None and plan.status.evaluator.active == 1
    plan = _step(plan.status, {"evaluate": ChildObservation(succeeded=1, complete=True,
                                                            report=EVAL_REPORT)}, now=LATER)
    assert plan.status.phase == "Succeeded" and plan.run is None
    assert plan.status.metrics is not None
    assert (plan.status.metrics.eval_accuracy, plan.status.metrics.train_loss) == (0.79, 0.4)
    assert plan.status.model is not None and plan.status.model.uri == "/m"
    assert plan.status.completion_time == LATER and plan.status.start_time == NOW
    assert _conditions(plan)["Evaluated"] == "True"
    _assert_consistent(plan)


def test_succeeded_phase_waits_for_its_pods_report_then_ends_with_its_figures() -> None:
    evaluating = _step(_step(StreamingTrainingJobStatus(), {}).status, {"train": ChildObservation(
        succeeded=1, complete=True, report=TRAIN_REPORT)}).status
    unseen = ChildObservation(succeeded=1, complete=True, completed_at=NOW)
    held = _step(evaluating, {"evaluate": unseen}, now="2026-01-01T00:00:05Z")
    assert (held.status.phase, held.run, held.wake_after_s) == ("Evaluating", None, 25.0)
    assert held.status.metrics is not None and held.status.metrics.eval_accuracy is None
    seen = _step(held.status, {"evaluate": ChildObservation(
        succeeded=1, complete=True, completed_at=NOW, report=EVAL_REPORT)},
        now="2026-01-01T00:00:06Z")
    assert seen.status.phase == "Succeeded"
    assert seen.status.metrics is not None and seen.status.metrics.eval_accuracy == 0.79
    # Pods gone for good: the phase ends without them once the grace is over.
    gone = _step(evaluating, {"evaluate": unseen}, now=LATER)
    assert gone.status.phase == "Succeeded"


def test_finished_phase_is_not_rerun_after_its_job_is_deleted() -> None:
    plan = _step(StreamingTrainingJobStatus(), {"train": ChildObservation(
        succeeded=1, complete=True, report=TRAIN_REPORT)})
    again = _step(plan.status, {})
    assert again.run == "evaluate"


def test_suspend_keeps_the_phase_job_suspended_and_resume_continues() -> None:
    suspended_spec = parse_spec({"kafka": {"bootstrapServers": "k:1"}, "train": {"topic": "susy-train"},
        "evaluate": {"topic": "susy-test"},
                                 "runPolicy": {"suspend": True}})
    plan = _step(StreamingTrainingJobStatus(), {}, spec=suspended_spec)
    assert (plan.status.phase, plan.run, plan.suspend) == ("Suspended", "train", True)
    _assert_consistent(plan)
    resumed = _step(plan.status, {"train": ChildObservation()})
    assert (resumed.status.phase, resumed.run, resumed.suspend) == ("Training", "train", False)
    _assert_consistent(resumed)


def test_failed_child_fails_the_job_with_the_pods_message() -> None:
    running = _step(StreamingTrainingJobStatus(), {})
    failed = _step(running.status, {"train": ChildObservation(
        failed=4, failed_for_good=True, failure_reason="BackoffLimitExceeded",
        failure_message="spec.data: topic empty")})
    assert failed.status.phase == "Failed" and failed.run is None
    failed_condition = next(c for c in failed.status.conditions if c.type == "Failed")
    assert "BackoffLimitExceeded" in failed_condition.message
    assert "topic empty" in failed_condition.message
    assert failed.events[-1].type == "Warning"
    assert failed.status.completion_time == NOW
    _assert_consistent(failed)
    assert _step(failed.status, {}).status.phase == "Failed"


def test_waiting_for_kafka_creates_nothing_and_says_why() -> None:
    waiting = KafkaState(False, "KafkaNotReady", "Kafka my-cluster has no Ready condition")
    plan = _step(StreamingTrainingJobStatus(), {}, kafka=waiting)
    assert (plan.status.phase, plan.run) == ("Pending", None)
    kafka = next(c for c in plan.status.conditions if c.type == "KafkaReady")
    assert (kafka.status, kafka.reason) == ("False", "KafkaNotReady")
    assert [event.reason for event in plan.events] == ["KafkaNotReady"]
    assert _step(plan.status, {}, kafka=waiting).events == []


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    first = _step(StreamingTrainingJobStatus(), {})
    second = _step(first.status, {"train": ChildObservation(active=1)}, now=LATER)
    times = {c.type: c.last_transition_time for c in second.status.conditions}
    assert times["Training"] == NOW


def test_invalid_spec_fails_with_the_field_named() -> None:
    plan = invalid_spec(StreamingTrainingJobStatus(), 3, "spec.train.epochs: too small", NOW)
    assert plan.status.phase == "Failed" and plan.status.observed_generation == 3
    failed = next(c for c in plan.status.conditions if c.type == "Failed")
    assert (failed.reason, failed.message) == ("InvalidSpec", "spec.train.epochs: too small")


def test_online_only_job_goes_straight_to_online() -> None:
    spec = parse_spec({"kafka": {"bootstrapServers": "k:1"},
                       "online": {"topic": "susy-train"}})
    assert current_mode(spec, StreamingTrainingJobStatus()) == "online"
    plan = _step(StreamingTrainingJobStatus(), {}, spec=spec)
    assert (plan.status.phase, plan.run) == ("Online", "online")
    assert _conditions(plan)["Online"] == "True"


def test_failure_text_prefers_the_report_message_then_raw_text_then_job() -> None:
    report = PodReport(mode="train", ok=False, message="no records").to_message()
    assert failure_text(report, "job says") == "no records"
    assert failure_text("Traceback: boom\n", "job says") == "Traceback: boom"
    assert failure_text(None, "job says") == "job says"


def test_state_a_pod_ignored_is_told_in_a_warning_event() -> None:
    ignored = TRAIN_REPORT.model_copy(update={
        "resume_ignored": "ignored the checkpoint in /m/checkpoints: it belongs to job uid x"})
    plan = _step(StreamingTrainingJobStatus(), {})
    plan = _step(plan.status, {"train": ChildObservation(succeeded=1, complete=True,
                                                         report=ignored)})
    warnings = [(e.type, e.reason, e.message) for e in plan.events if e.reason != "Evaluating"]
    assert warnings == [("Warning", "ResumeStateIgnored", ignored.resume_ignored)]


def test_waiting_for_the_source_model_creates_nothing_and_says_why() -> None:
    spec = parse_spec({"kafka": {"bootstrapServers": "k:9092"}, "evaluate": {"topic": "susy-test"},
                       "model": {"source": {"job": "a"}}})
    waiting = SourceState(False, "SourceNotTrained", "waiting for job a to finish training")
    plan = next_plan(spec, "b", 1, StreamingTrainingJobStatus(), {}, READY, NOW, waiting)
    assert plan.run is None and plan.status.phase == "Pending"
    assert _conditions(plan)["ModelSourceReady"] == "False"
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "SourceNotTrained")]
    again = next_plan(spec, "b", 1, plan.status, {}, READY, LATER, waiting)
    assert again.events == []
    ready = SourceState(True, "Resolved", "", ClaimFolder("models", "ns/a/uid-a"))
    plan = next_plan(spec, "b", 1, again.status, {}, READY, LATER, ready)
    assert (plan.run, plan.status.phase) == ("evaluate", "Evaluating")
    assert _conditions(plan)["ModelSourceReady"] == "True"


def test_a_job_waiting_for_kafka_looks_again_sooner_first_then_at_most_every_minute() -> None:
    waiting = KafkaState(False, "KafkaNotReady", "Kafka my-cluster has no Ready condition")
    first = _step(StreamingTrainingJobStatus(), {}, kafka=waiting)
    assert first.wake_after_s == 2.0
    later = _step(first.status, {}, kafka=waiting, now=LATER)  # waited five minutes
    assert later.wake_after_s == 60.0
    assert _step(StreamingTrainingJobStatus(), {}).wake_after_s is None  # nothing to wait for


def test_a_pod_that_cannot_reach_kafka_sets_kafka_ready_false_with_its_reason() -> None:
    running = _step(StreamingTrainingJobStatus(), {})
    failed = _step(running.status, {"train": ChildObservation(
        failed=1, failed_for_good=True, failure_reason="PodFailurePolicy",
        failure_cause="KafkaUnreachable",
        failure_message="no broker answered at kafka:9092 within 60 s")})
    conditions = {c.type: c for c in failed.status.conditions}
    assert (conditions["KafkaReady"].status, conditions["KafkaReady"].reason) == (
        "False", "KafkaUnreachable")
    assert failed.status.reason == conditions["Failed"].reason == "KafkaUnreachable"
    assert conditions["Failed"].message.startswith(
        "train failed (KafkaUnreachable): no broker answered at kafka:9092 within 60 s; ")
    _assert_consistent(failed)


def test_a_missing_topic_fails_the_job_with_its_cause_and_leaves_kafka_ready_alone() -> None:
    running = _step(StreamingTrainingJobStatus(), {})
    failed = _step(running.status, {"train": ChildObservation(
        failed=1, failed_for_good=True, failure_reason="PodFailurePolicy",
        failure_cause="TopicNotFound",
        failure_message="topic 'nowhere' (spec.train.topic) does not exist on kafka:9092")})
    conditions = {c.type: c for c in failed.status.conditions}
    assert failed.status.phase == "Failed"
    assert failed.status.reason == conditions["Failed"].reason == "TopicNotFound"
    assert conditions["Failed"].message.startswith(
        "train failed (TopicNotFound): topic 'nowhere' (spec.train.topic) does not exist on "
        "kafka:9092; ")
    assert "KafkaReady" not in conditions or conditions["KafkaReady"].status == "True"
    _assert_consistent(failed)


def test_a_phase_without_progress_past_its_deadline_fails_and_its_pods_stop() -> None:
    running = _step(StreamingTrainingJobStatus(), {})
    started = ChildObservation(active=1, started_at=NOW)
    within = next_plan(SPEC, "susy", 1, running.status, {"train": started}, READY,
                       "2026-01-01T00:10:00Z", watch_progress=True)
    assert within.status.phase == "Training" and within.wake_after_s == 300
    progressed = within.status.model_copy(update={"progress": Progress(
        mode="train", records=10, last_progress_time="2026-01-01T00:10:00Z")})
    still = next_plan(SPEC, "susy", 1, progressed, {"train": started}, READY,
                      "2026-01-01T00:20:00Z", watch_progress=True)
    assert still.status.phase == "Training" and still.wake_after_s == 300
    stuck = next_plan(SPEC, "susy", 1, progressed, {"train": started}, READY,
                      "2026-01-01T00:25:00Z", watch_progress=True)
    assert (stuck.status.phase, stuck.status.reason) == ("Failed", "ProgressDeadlineExceeded")
    assert (stuck.run, stuck.suspend) == ("train", True)
    assert "made no progress for 900 s" in stuck.events[-1].message
    _assert_consistent(stuck)


def test_no_deadline_without_a_progress_channel_or_for_a_stream_without_timeout() -> None:
    started = {"online": ChildObservation(active=1, started_at=NOW)}
    forever = parse_spec({"kafka": {"bootstrapServers": "k:1"},
                          "online": {"topic": "t", "streamTimeoutMs": -1}})
    late = "2026-01-02T00:00:00Z"
    assert next_plan(forever, "o", 1, StreamingTrainingJobStatus(), started, READY, late,
                     watch_progress=True).status.phase == "Online"
    bounded = parse_spec({"kafka": {"bootstrapServers": "k:1"}, "online": {"topic": "t"}})
    assert next_plan(bounded, "o", 1, StreamingTrainingJobStatus(), started, READY, late,
                     watch_progress=False).status.phase == "Online"


def test_a_crash_reads_as_its_exception_line_not_its_traceback() -> None:
    log = ("Traceback (most recent call last):\n  File \"x.py\", line 3, in <module>\n"
           "    connect()\n    ^^^^^^^^^\nkafka.errors.NoBrokersAvailable: NoBrokersAvailable\n")
    assert one_sentence(log) == "kafka.errors.NoBrokersAvailable: NoBrokersAvailable"
    assert failure_text(log) == "kafka.errors.NoBrokersAvailable: NoBrokersAvailable"


def test_the_last_phase_ends_with_its_progress_complete_and_equal_to_its_metrics() -> None:
    train_only = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"},
                             "train": {"topic": "susy-train"}})
    live = StreamingTrainingJobStatus(phase="Training", progress=Progress(
        mode="train", records=500, records_total=1000, percent=50.0, eta_seconds=30, loss=0.9,
        accuracy=0.6))
    done = _step(live, {"train": ChildObservation(succeeded=1, complete=True,
                                                  report=TRAIN_REPORT)}, spec=train_only)
    assert done.status.phase == "Succeeded" and done.status.progress is not None
    assert (done.status.progress.percent, done.status.progress.eta_seconds,
            done.status.progress.epoch) == (100.0, 0, 10)
    assert done.status.metrics is not None
    assert (done.status.progress.loss, done.status.progress.accuracy) == (
        done.status.metrics.train_loss, done.status.metrics.train_accuracy) == (0.4, 0.8)


def test_a_group_of_evaluators_ends_with_the_merged_figures_not_evaluator_0s() -> None:
    evaluating = StreamingTrainingJobStatus(
        phase="Evaluating", trainer=RoleStatus(succeeded=1),
        progress=Progress(mode="evaluate", records=390, records_total=400, percent=97.5,
                          accuracy=0.7874, auc=0.8709, loss=0.45))
    merged = PodReport(mode="evaluate", ok=True, metrics=Metrics(
        eval_accuracy=0.7882, eval_auc=0.8715, eval_loss=0.4432, records_evaluated=400))
    done = _step(evaluating, {"evaluate": ChildObservation(succeeded=2, complete=True,
                                                           report=merged)})
    progress, metrics = done.status.progress, done.status.metrics
    assert progress is not None and metrics is not None
    assert (progress.accuracy, progress.auc, progress.loss, progress.percent) == (
        metrics.eval_accuracy, metrics.eval_auc, metrics.eval_loss, 100.0) == (
        0.7882, 0.8715, 0.4432, 100.0)


def test_the_next_phase_starts_from_zero_not_the_last_phases_completed_figures() -> None:
    live = StreamingTrainingJobStatus(phase="Training", progress=Progress(
        mode="train", records=1000, records_total=1000, percent=99.0, eta_seconds=1))
    evaluating = _step(live, {"train": ChildObservation(succeeded=1, complete=True,
                                                        report=TRAIN_REPORT)})
    assert (evaluating.status.phase, evaluating.run) == ("Evaluating", "evaluate")
    progress = evaluating.status.progress
    assert progress is not None
    assert (progress.mode, progress.percent, progress.records, progress.eta_seconds,
            progress.loss, progress.last_progress_time) == ("evaluate", 0.0, 0, None, None, None)


def test_a_suspended_job_shows_no_time_left() -> None:
    suspended = parse_spec({"kafka": {"bootstrapServers": "k:1"}, "train": {"topic": "t"},
                            "runPolicy": {"suspend": True}})
    live = StreamingTrainingJobStatus(phase="Training", progress=Progress(
        mode="train", records=321, records_total=1000, percent=32.1, eta_seconds=40,
        records_per_second=8.0))
    plan = _step(live, {"train": ChildObservation(active=1)}, spec=suspended)
    assert plan.status.phase == "Suspended" and plan.status.progress is not None
    assert (plan.status.progress.percent, plan.status.progress.eta_seconds,
            plan.status.progress.records_per_second) == (32.1, None, None)


def test_bad_records_are_kept_for_each_phase_and_counted_over_all() -> None:
    trained = PodReport(mode="train", ok=True, epoch=3, metrics=Metrics(
        train_accuracy=0.8, bad_records=55, bad_records_by_reason={"json": 50, "empty": 5}))
    evaluated = PodReport(mode="evaluate", ok=True, metrics=Metrics(
        eval_accuracy=0.79, records_evaluated=400, bad_records=30,
        bad_records_by_reason={"json": 30}))
    evaluating = _step(StreamingTrainingJobStatus(phase="Training"), {
        "train": ChildObservation(succeeded=1, complete=True, report=trained)})
    done = _step(evaluating.status, {
        "train": ChildObservation(succeeded=1, complete=True, report=trained),
        "evaluate": ChildObservation(succeeded=1, complete=True, report=evaluated)})
    metrics = done.status.metrics
    assert done.status.phase == "Succeeded" and metrics is not None
    assert metrics.bad_records == 85
    assert metrics.bad_records_by_reason == {"empty": 5, "json": 80}
    assert metrics.bad_records_by_phase is not None
    assert {mode: (found.records, found.by_reason)
            for mode, found in metrics.bad_records_by_phase.items()} == {
        "train": (55, {"json": 50, "empty": 5}), "evaluate": (30, {"json": 30})}


def test_a_phase_of_several_replicas_is_done_only_when_all_have_succeeded() -> None:
    group = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "t"},
                        "evaluate": {"topic": "e"}, "trainer": {"replicas": 2}})
    plan = _step(StreamingTrainingJobStatus(), {}, spec=group)
    assert plan.status.trainer is not None and plan.status.trainer.replicas == 2
    half = _step(plan.status, {"train": ChildObservation(active=1, succeeded=1)}, spec=group)
    assert (half.status.phase, half.run) == ("Training", "train")
    assert half.status.trainer is not None
    assert (half.status.trainer.active, half.status.trainer.succeeded) == (1, 1)
    again = _step(half.status, {"train": ChildObservation(active=1, succeeded=1)}, spec=group)
    assert again.run == "train"  # one succeeded pod of two does not end the phase
    done = _step(again.status, {"train": ChildObservation(succeeded=2, complete=True,
                                                          report=TRAIN_REPORT)}, spec=group)
    assert (done.status.phase, done.run) == ("Evaluating", "evaluate")
    assert done.status.evaluator is not None and done.status.evaluator.replicas == 1


def test_a_phase_whose_replicas_all_succeeded_is_read_before_the_job_says_complete() -> None:
    group = parse_spec({"kafka": {"bootstrapServers": "kafka:9092"}, "train": {"topic": "t"},
                        "evaluate": {"topic": "e"}, "evaluator": {"replicas": 2}})
    training = _step(StreamingTrainingJobStatus(), {}, spec=group)
    evaluating = _step(training.status, {"train": ChildObservation(
        succeeded=1, complete=True, report=TRAIN_REPORT)}, spec=group)
    # The Job controller counts both pods succeeded a moment before it sets Complete.
    counted = _step(evaluating.status, {"evaluate": ChildObservation(
        succeeded=2, report=EVAL_REPORT)}, spec=group)
    assert counted.status.phase == "Succeeded"
    assert counted.status.metrics is not None and counted.status.metrics.records_evaluated == 400


QUEUED = ChildObservation(uid="job-uid", suspended=True, queue="team-a")
"""A child Job that Kueue holds: submitted to LocalQueue team-a, suspended, not complete."""


def _queued_step(status: StreamingTrainingJobStatus, children: dict[str, ChildObservation],
                 spec: object = SPEC, now: str = NOW) -> Plan:
    return next_plan(spec, "susy", 1, status, children, READY, now,  # type: ignore[arg-type]
                     watch_progress=True, queue="team-a")


def test_a_queued_job_shows_queued_waiting_for_admission_from_its_first_pass() -> None:
    plan = _queued_step(StreamingTrainingJobStatus(), {})
    assert (plan.status.phase, plan.status.reason) == ("Queued", "WaitingForAdmission")
    assert (plan.run, plan.suspend) == ("train", False)  # the Job is made, suspended by the builder
    queued = next(c for c in plan.status.conditions if c.type == "Queued")
    assert (queued.status, queued.reason) == ("True", "WaitingForAdmission")
    assert queued.message == "Job susy-train waits for Kueue to admit it from LocalQueue team-a"
    assert plan.status.start_time is None  # no pod has started
    assert [event.reason for event in plan.events] == ["Queued"]
    _assert_consistent(plan)


def test_a_queued_job_shows_kueues_message_and_looks_again_for_a_newer_one() -> None:
    why = ("couldn't assign flavors to pod set main: insufficient unused quota for cpu in "
           "flavor default, 500m more needed")
    first = _queued_step(StreamingTrainingJobStatus(), {"train": QUEUED})
    waiting = _queued_step(first.status, {"train": ChildObservation(
        uid="job-uid", suspended=True, queue="team-a", waiting_message=why)})
    queued = next(c for c in waiting.status.conditions if c.type == "Queued")
    ready = next(c for c in waiting.status.conditions if c.type == "Ready")
    assert queued.message == why and (ready.reason, ready.message) == ("Queued", why)
    assert waiting.wake_after_s == 2.0  # Kueue's Workload is not watched
    assert _queued_step(waiting.status, {"train": QUEUED}, now=LATER).wake_after_s == 60.0
    _assert_consistent(waiting)


def test_an_admitted_job_trains_and_a_preempted_one_is_queued_again_without_a_deadline() -> None:
    queued = _queued_step(StreamingTrainingJobStatus(), {"train": QUEUED})
    admitted = ChildObservation(active=1, uid="job-uid", queue="team-a", started_at=NOW)
    running = _queued_step(queued.status, {"train": admitted})
    assert (running.status.phase, running.status.reason) == ("Training", None)
    assert running.status.start_time == NOW
    preempted = ChildObservation(active=1, uid="job-uid", suspended=True, queue="team-a",
                                 waiting_message="Preempted to accommodate a workload")
    # Long past runPolicy.progressDeadlineSeconds (900 s): waiting in the queue is no stall.
    again = _queued_step(running.status, {"train": preempted}, now="2026-01-01T02:00:00Z")
    assert (again.status.phase, again.status.reason) == ("Queued", "WaitingForAdmission")
    assert again.status.trainer is not None and again.status.trainer.active == 1
    assert again.events[-1].message == "Preempted to accommodate a workload"
    _assert_consistent(again)


def test_a_suspended_queued_job_is_suspended_not_queued() -> None:
    held = parse_spec({"kafka": {"bootstrapServers": "k:1"}, "train": {"topic": "susy-train"},
                       "runPolicy": {"suspend": True}})
    plan = _queued_step(StreamingTrainingJobStatus(), {"train": QUEUED}, spec=held)
    assert (plan.status.phase, plan.run, plan.suspend) == ("Suspended", "train", True)
    _assert_consistent(plan)


def test_a_job_kueue_does_not_hold_is_not_queued() -> None:
    # A queue label on the job but an existing child without one (made before the label): as
    # before; a Kueue-managed Job that completed: done, whatever its suspend says, and the next
    # phase's Job is queued in turn.
    plan = _queued_step(StreamingTrainingJobStatus(), {"train": ChildObservation(active=1)})
    assert plan.status.phase == "Training"
    done = _queued_step(StreamingTrainingJobStatus(), {"train": ChildObservation(
        succeeded=1, complete=True, suspended=True, queue="team-a", report=TRAIN_REPORT)})
    assert (done.status.phase, done.run) == ("Queued", "evaluate")
    assert done.status.trainer is not None and done.status.trainer.succeeded == 1


def test_a_job_being_deleted_counts_as_gone_and_a_queued_one_is_queued_anew() -> None:
    going = ChildObservation(active=1, uid="old", queue="team-a", deleting=True)
    plan = _queued_step(StreamingTrainingJobStatus(), {"train": going})
    assert (plan.status.phase, plan.run) == ("Queued", "train")
    assert plan.status.trainer is not None and plan.status.trainer.active == 0
    done = ChildObservation(succeeded=1, complete=True, deleting=True, report=TRAIN_REPORT)
    assert _step(StreamingTrainingJobStatus(), {"train": done}).run == "evaluate"
