"""Exactly-once evaluation survives SIGKILLs at random points and a broker restart."""

from __future__ import annotations

from pathlib import Path

from tests.faults.evaluate_faults import evaluator_kills_and_broker_restart
from tests.faults.figures import describe, unmet


def test_evaluator_counts_every_record_once_through_kills_and_a_broker_restart(
        tmp_path: Path) -> None:
    figures = evaluator_kills_and_broker_restart(tmp_path)
    assert len(figures) == 8
    assert not unmet(figures), describe(figures)
