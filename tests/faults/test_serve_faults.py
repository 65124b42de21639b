"""A serving replica, SIGKILLed and its broker restarted mid-stream, answers each record once."""

from __future__ import annotations

from pathlib import Path

from tests.faults.figures import describe, unmet
from tests.faults.serve_faults import serve_kills_and_broker_restart


def test_serving_killed_and_broker_restarted_predicts_each_good_record_exactly_once(
        tmp_path: Path) -> None:
    figures = serve_kills_and_broker_restart(tmp_path, rows=12_000, kills=3)
    assert len(figures) == 3
    assert not unmet(figures), describe(figures)
