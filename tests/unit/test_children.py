"""Reading a child Job's pods (as the API serves them in JSON): which report speaks for a phase of
several replicas."""

from __future__ import annotations

from typing import Any

from streamtrain_operator.children import COMPLETION_INDEX, failure_cause, observe
from streamtrain_operator.kueue import QUEUE_LABEL

from workload.contract import PEER_LOST_EXIT
from workload.status import PodReport


def pod(index: int | None, code: int, report: PodReport | str, finished: str) -> dict[str, Any]:
    message = report if isinstance(report, str) else report.to_message()
    terminated = {"exitCode": code, "message": message, "finishedAt": finished}
    annotations = {} if index is None else {COMPLETION_INDEX: str(index)}
    return {"metadata": {"annotations": annotations},
            "status": {"containerStatuses": [{"state": {"terminated": terminated}}]}}


def job(succeeded: int, failed: int = 0, suspend: bool = False,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    complete = {"type": "Complete", "status": "True", "reason": "", "message": ""}
    return {"metadata": {"uid": "job-uid", "labels": labels or {}},
            "spec": {"suspend": suspend},
            "status": {"active": 0, "succeeded": succeeded, "failed": failed,
                       "conditions": [complete] if succeeded else []}}


def test_replica_zeros_report_speaks_for_the_phase_even_when_another_ends_last() -> None:
    chief = PodReport(mode="train", ok=True, model_uri="pvc://m/model.keras", epoch=3)
    other = PodReport(mode="train", ok=True, epoch=3)
    seen = observe(job(2), [pod(0, 0, chief, "2026-01-01T00:00:01Z"),
                            pod(1, 0, other, "2026-01-01T00:00:09Z")])
    assert seen.report == chief and seen.complete


def test_a_lone_pods_report_is_read_as_before() -> None:
    report = PodReport(mode="evaluate", ok=True)
    assert observe(job(1), [pod(None, 0, report, "2026-01-01T00:00:01Z")]).report == report


def test_the_failure_told_is_the_failed_workers_not_its_peers() -> None:
    lost = PodReport(mode="train", ok=False, message="a worker of the group went away")
    crashed = PodReport(mode="train", ok=False, message="worker 1: out of memory")
    seen = observe(job(0, failed=2), [pod(1, 1, crashed, "2026-01-01T00:00:01Z"),
                                      pod(0, PEER_LOST_EXIT, lost, "2026-01-01T00:00:09Z")])
    assert seen.failure_message == "worker 1: out of memory"


def failed_job() -> dict[str, Any]:
    failed = {"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
              "message": "Container train for pod ns/susy-train-x failed with exit code 6 "
                         "matching FailJob rule at index 0"}
    return {"metadata": {}, "status": {"active": 0, "succeeded": 0, "failed": 1,
                                       "conditions": [failed]}}


def test_a_pod_that_failed_for_good_gives_its_reason_and_its_one_sentence() -> None:
    missing = PodReport(mode="train", ok=False, reason="TopicNotFound",
                        message="topic 'nowhere' (spec.train.topic) does not exist on k:9092")
    seen = observe(failed_job(), [pod(None, 6, missing, "2026-01-01T00:00:01Z")])
    assert seen.failed_for_good and seen.failure_cause == "TopicNotFound"
    assert seen.failure_message == missing.message


def test_a_reason_is_taken_from_the_exit_code_when_the_report_names_none() -> None:
    assert failure_cause(7, "Traceback (most recent call last):\n...") == "TooManyBadRecords"
    assert failure_cause(6, PodReport(mode="train", ok=False).to_message()) == "TopicNotFound"


def test_a_crash_or_an_unknown_reason_gives_no_cause_so_the_jobs_own_reason_shows() -> None:
    assert failure_cause(1, "Traceback (most recent call last):\nMemoryError") == ""
    assert failure_cause(137, "") == ""
    forged = '{"mode": "train", "ok": false, "reason": "Injected: reason"}'
    assert failure_cause(1, forged) == ""


def test_a_job_kueue_holds_reads_as_waiting_for_admission() -> None:
    held = observe(job(0, suspend=True, labels={QUEUE_LABEL: "team"}), [])
    assert (held.uid, held.queue, held.suspended, held.waits_for_admission) == (
        "job-uid", "team", True, True)
    assert not observe(job(0, suspend=True), []).waits_for_admission  # the operator's own
    assert not observe(job(0, labels={QUEUE_LABEL: "team"}), []).waits_for_admission  # admitted
