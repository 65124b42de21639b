"""Two evaluators give one evaluator's figures, and count each record once though one is killed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import KafkaHandle
from tests.faults.evaluate_group_faults import evaluators_merge_and_survive_kills
from tests.faults.figures import describe, unmet


def test_two_evaluators_equal_one_and_count_each_record_once_through_five_kills(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    figures = evaluators_merge_and_survive_kills(kafka.bootstrap_servers, tmp_path)
    assert len(figures) == 5
    assert not unmet(figures), describe(figures)
