"""The online learner goes on through a rebalance and a broker restart, keeps cadence and memory."""

from __future__ import annotations

from pathlib import Path

from tests.faults.figures import describe, unmet
from tests.faults.online_faults import online_broker_restart


def test_online_learner_survives_a_rebalance_and_a_broker_restart_with_flat_memory(tmp_path: Path) -> None:
    figures = online_broker_restart(tmp_path)
    assert len(figures) == 5
    assert not unmet(figures), describe(figures)
