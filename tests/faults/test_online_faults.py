"""The online learner goes on through a rebalance and a broker restart, keeps cadence and memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.faults.figures import describe, unmet
from tests.faults.learned_records import generation_record, learned_records
from tests.faults.online_faults import online_broker_restart
from tests.integration.online_child import LEARNED, fingerprints


def test_online_learner_survives_a_rebalance_and_a_broker_restart_with_flat_memory(tmp_path: Path) -> None:
    figures = online_broker_restart(tmp_path)
    assert len(figures) == 6
    assert not unmet(figures), describe(figures)


def test_a_record_learned_again_counts_as_within_a_generation_only_with_no_boundary_between() -> None:
    produced = fingerprints([b"a", b"b", b"c", b"d"])
    a, b, c, _ = (int(p) for p in produced)
    learned = np.array([(a, 1.0), (b, 1.0), (c, 1.0), (a, 3.0), (b, 5.0), (c, 1.5)],
                       dtype=LEARNED)

    records = learned_records(produced, learned, [(2.0, "rebalance"), (4.0, "broker restart")])

    assert records.missing == 1 and records.foreign == 0
    assert records.learnings == 6 and records.learned_distinct == 3
    assert records.twice_within_generation == 1  # c: 1.0 and 1.5, nothing between
    assert records.again_across_generations == {"rebalance": 2}  # a and b; first boundary after 1.0


def test_generation_records_of_the_group_are_read_from_consumer_offsets_entries() -> None:
    key = b"\x00\x02\x00\x01g"
    classic = b"\x00\x03\x00\x08consumer\x00\x00\x00\x07rest"
    flexible = b"\x00\x04\x09consumer\x00\x00\x00\x07rest"

    assert generation_record(key, classic, "g") == 7
    assert generation_record(key, flexible, "g") == 7
    assert generation_record(key, classic, "other") is None
    assert generation_record(b"\x00\x01\x00\x01g", classic, "g") is None  # an offset commit
    assert generation_record(key, None, "g") is None  # a tombstone
