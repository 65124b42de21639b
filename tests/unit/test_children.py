"""Reading a child Job's pods: which report speaks for a phase of several replicas."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streamtrain_operator.children import COMPLETION_INDEX, observe

from workload.contract import PEER_LOST_EXIT
from workload.status import PodReport


def pod(index: int | None, code: int, report: PodReport | str, finished: str) -> Any:
    message = report if isinstance(report, str) else report.to_message()
    terminated = SimpleNamespace(exit_code=code, message=message, finished_at=finished)
    annotations = {} if index is None else {COMPLETION_INDEX: str(index)}
    return SimpleNamespace(
        metadata=SimpleNamespace(annotations=annotations),
        status=SimpleNamespace(container_statuses=[
            SimpleNamespace(state=SimpleNamespace(terminated=terminated))]))


def job(succeeded: int, failed: int = 0) -> Any:
    complete = SimpleNamespace(type="Complete", status="True", reason="", message="")
    return SimpleNamespace(status=SimpleNamespace(start_time=None, active=0, succeeded=succeeded,
                                                  failed=failed, conditions=[complete]))


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
