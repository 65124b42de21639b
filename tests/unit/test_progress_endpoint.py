"""What the progress endpoint writes: the pod's figures, and when work last moved on."""

from __future__ import annotations

from typing import Any

import kubernetes
from streamtrain_operator.controller import Controller
from streamtrain_operator.metrics import OperatorMetrics
from streamtrain_operator.progress import ProgressEndpoint, progress_status, stepped
from streamtrain_operator.settings import OperatorSettings

from workload.status import Progress, ProgressReport

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"


def test_the_first_report_starts_the_progress_clock() -> None:
    report = ProgressReport(mode="train", records=10, records_total=100, percent=10.0)
    progress = progress_status(report, None, T0)
    assert (progress.mode, progress.records, progress.percent) == ("train", 10, 10.0)
    assert progress.last_update_time == progress.last_progress_time == T0


def test_only_growing_records_move_the_progress_clock() -> None:
    before = Progress(mode="evaluate", records=10, last_update_time=T0, last_progress_time=T0)
    same = progress_status(ProgressReport(mode="evaluate", records=10), before, T1)
    assert (same.last_update_time, same.last_progress_time) == (T1, T0)
    grown = progress_status(ProgressReport(mode="evaluate", records=11), before, T1)
    assert grown.last_progress_time == T1
    next_phase = progress_status(ProgressReport(mode="online", records=0), before, T1)
    assert next_phase.last_progress_time == T1


def test_what_was_written_is_forgotten_when_its_job_is_gone_or_made_again() -> None:
    controller = Controller(kubernetes.client.ApiClient(), OperatorSettings(), OperatorMetrics())
    endpoint = ProgressEndpoint(kubernetes.client.ApiClient(), controller)
    progress = Progress(mode="train", records=1, last_update_time=T0, last_progress_time=T0)

    def job(name: str, uid: str) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": name, "uid": uid, "generation": 1}}

    controller.observe_job("ADDED", job("kept", "u1"))
    controller.observe_job("ADDED", job("renewed", "u2"))
    controller.observe_job("ADDED", job("deleted", "u3"))
    endpoint._written.update({("ns", name): (uid, 0.0, progress) for name, uid in
                              [("kept", "u1"), ("renewed", "u2"), ("deleted", "u3")]})
    controller.observe_job("DELETED", job("deleted", "u3"))
    controller.observe_job("ADDED", job("renewed", "u4"))
    endpoint._forget_gone()
    assert list(endpoint._written) == [("ns", "kept")]


def test_a_new_phase_or_a_new_step_of_its_percent_is_written_at_once() -> None:
    """However fast a machine trains, each 10 % step reaches the resource (the 2 s limit holds
    only within a step), and no more than that: a percent going back is no new step."""
    before = Progress(mode="train", records=500, records_total=5000, percent=10.0)
    assert stepped(ProgressReport(mode="train", records=1000, records_total=5000, percent=20.0),
                   before)
    assert not stepped(ProgressReport(mode="train", records=990, records_total=5000,
                                      percent=19.8), before)
    assert not stepped(ProgressReport(mode="train", records=100, records_total=5000, percent=2.0),
                       before)
    assert stepped(ProgressReport(mode="evaluate", records=0, records_total=80, percent=0.0),
                   before)
    assert stepped(ProgressReport(mode="train", records=1), None)
    online = Progress(mode="online", records=10)
    assert not stepped(ProgressReport(mode="online", records=5000), online)
