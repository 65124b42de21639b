"""A trainer killed mid-epoch resumes at its last batch checkpoint and ends with the same model."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import KafkaHandle
from tests.faults.figures import describe, unmet
from tests.faults.train_faults import trainer_killed_mid_epoch


def test_trainer_killed_mid_epoch_resumes_at_its_checkpoint_and_learns_as_well(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    figures = trainer_killed_mid_epoch(kafka.bootstrap_servers, tmp_path)
    assert len(figures) == 5
    assert not unmet(figures), describe(figures)
