"""The online learner, SIGKILLed and rebalanced mid-stream, ends with every record learned once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from tests.conftest import KafkaHandle
from tests.faults.figures import describe, unmet
from tests.faults.online_kills import lineage, online_kills_and_rebalances
from tests.integration.online_child import LEARNED, fingerprints


def test_online_learner_killed_and_rebalanced_learns_each_record_once(
        kafka: KafkaHandle, tmp_path: Path) -> None:
    figures = online_kills_and_rebalances(kafka.bootstrap_servers, tmp_path, rows=30_000,
                                          kills=3, rebalances=2)
    assert len(figures) == 3
    assert not unmet(figures), describe(figures)


def test_a_killed_runs_records_past_its_successors_resume_point_are_not_in_the_model() -> None:
    produced = fingerprints([b"a", b"b", b"c", b"d"])
    where = (np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    first = np.array([(int(produced[i]), 1.0) for i in (0, 1, 2, 3)], dtype=LEARNED)
    second = np.array([(int(produced[i]), 2.0) for i in (2,)], dtype=LEARNED)
    counts = lineage(produced, where, [first, second], [{0: 1, 1: 2}])
    assert counts == Counter({int(p): 1 for p in produced})
