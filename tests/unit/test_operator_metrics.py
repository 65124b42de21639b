"""The jobs-by-phase gauge follows each job's phase, and forgets a deleted job."""

from __future__ import annotations

from streamtrain_operator.metrics import OperatorMetrics


def _by_phase(metrics: OperatorMetrics) -> dict[str, float]:
    return {sample.labels["phase"]: sample.value
            for metric in metrics.jobs.collect() for sample in metric.samples if sample.value}


def test_jobs_are_counted_by_their_current_phase() -> None:
    metrics = OperatorMetrics()
    for key in ("ns/a", "ns/b", "ns/c"):
        metrics.observe_phase(key, "Training")
    metrics.observe_phase("ns/a", "Evaluating")
    metrics.observe_phase("ns/a", "Evaluating")  # the same phase again: counted once
    metrics.observe_phase("ns/b", None)
    metrics.observe_phase("ns/gone", None)
    assert _by_phase(metrics) == {"Training": 1.0, "Evaluating": 1.0}
