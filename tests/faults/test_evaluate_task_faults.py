"""Exactly-once evaluation of the other tasks survives SIGKILLs: the confusion matrix of a
multiclass model and the error sums of a regression model equal an uninterrupted run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import KafkaHandle
from tests.faults.evaluate_task_faults import evaluator_kills_for_task
from tests.faults.figures import describe, unmet
from workload.data.decoded import Task


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_evaluator_of_the_task_counts_every_record_once_through_kills(
        kafka: KafkaHandle, tmp_path: Path, task: Task) -> None:
    figures = evaluator_kills_for_task(kafka.bootstrap_servers, tmp_path, task)
    assert len(figures) == 5
    assert not unmet(figures), describe(figures)
