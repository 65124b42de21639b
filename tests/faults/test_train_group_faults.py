"""A training group covers each record once per epoch and resumes after losing a worker."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import KafkaHandle
from tests.faults.figures import describe, unmet
from tests.faults.train_group_faults import group_worker_killed_mid_epoch


def test_a_group_trains_each_record_once_per_epoch_and_resumes_after_a_worker_is_killed(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    figures = group_worker_killed_mid_epoch(kafka.bootstrap_servers, tmp_path)
    assert len(figures) == 6
    assert not unmet(figures), describe(figures)
