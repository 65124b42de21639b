"""How replicas divide a topic and a batch, who each process is, and how evaluators' ledgers merge."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_ledger import exact_auc, sample
from workload.contract import WORKER_INDEX_ENV, WORKERS_ENV
from workload.model.statistics import (
    SAMPLE_ROWS,
    RunningStatistics,
    merge_statistics,
    plan_features,
)
from workload.modes.ledger import Ledger, LedgerMismatch, merge_ledgers
from workload.modes.tally import BinaryTally as Tally
from workload.replica import SINGLE, ReplicaError, replica_for
from workload.slices import batch_shares, readers, replica_ranges
from workload.spec import parse_spec

BOUNDS = st.dictionaries(st.integers(0, 40), st.tuples(st.integers(0, 50), st.integers(0, 3000))
                         .map(lambda span: (span[0], span[0] + span[1])), min_size=1,
                         max_size=12)


def offsets_read(bounds: dict[int, tuple[int, int]], replicas: int) -> Counter[tuple[int, int]]:
    """How often each (partition, offset) is read by all replicas together."""
    return Counter((p, offset) for share in replica_ranges(bounds, replicas)
                   for p, (start, stop) in share.items() for offset in range(start, stop))


@given(BOUNDS, st.integers(1, 9))
def test_replicas_read_every_offset_of_the_bounds_exactly_once(
        bounds: dict[int, tuple[int, int]], replicas: int) -> None:
    read = offsets_read(bounds, replicas)
    expected = {(p, offset) for p, (start, stop) in bounds.items() for offset in range(start, stop)}
    assert set(read) == expected and set(read.values()) <= {1}
    assert replica_ranges(bounds, replicas) == replica_ranges(dict(reversed(bounds.items())),
                                                              replicas)


def test_enough_partitions_are_dealt_whole_round_robin() -> None:
    bounds = {0: (0, 10), 1: (5, 20), 2: (0, 7)}
    assert replica_ranges(bounds, 2) == [{0: (0, 10), 2: (0, 7)}, {1: (5, 20)}]
    assert replica_ranges(bounds, 3) == [{0: (0, 10)}, {1: (5, 20)}, {2: (0, 7)}]
    assert replica_ranges(bounds, 1) == [bounds]
    assert readers(bounds, 2) == {0: [0], 1: [1], 2: [0]}


def test_fewer_partitions_than_replicas_are_cut_into_near_equal_offset_slices() -> None:
    assert replica_ranges({0: (100, 107)}, 2) == [{0: (100, 103)}, {0: (103, 107)}]
    # Two partitions, five replicas: partition 0 in three slices, partition 1 in two.
    shares = replica_ranges({3: (0, 9), 8: (0, 4)}, 5)
    assert shares == [{3: (0, 3)}, {8: (0, 2)}, {3: (3, 6)}, {8: (2, 4)}, {3: (6, 9)}]
    assert readers({3: (0, 9), 8: (0, 4)}, 5) == {3: [0, 2, 4], 8: [1, 3]}
    sizes = [stop - start for share in replica_ranges({0: (0, 1001)}, 4)
             for start, stop in share.values()]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 1001


def test_a_replica_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        replica_ranges({0: (0, 1)}, 0)


@given(st.integers(1, 4096), st.lists(st.integers(0, 100_000), min_size=1, max_size=8))
def test_batch_shares_follow_the_records_held_and_add_up_to_the_batch(
        batch_size: int, records: list[int]) -> None:
    shares = batch_shares(batch_size, records)
    holders = sum(1 for count in records if count)
    if holders and batch_size >= holders:
        assert sum(shares) == batch_size
    assert all(share >= 1 for share, count in zip(shares, records, strict=True) if count)
    total = sum(records) or 1
    for share, count in zip(shares, records, strict=True):
        assert share == 0 if not count else abs(share - batch_size * count / total) < 1 + holders


def test_equal_records_split_the_batch_evenly() -> None:
    assert batch_shares(64, [3000, 3000]) == [32, 32]
    assert batch_shares(65, [10, 10]) == [33, 32]
    assert batch_shares(64, [16000, 8000]) == [43, 21]
    assert batch_shares(3, [10**6, 1, 1]) == [1, 1, 1]
    assert batch_shares(2, [5, 5, 5]) == [1, 1, 1]
    assert batch_shares(8, [0, 4]) == [0, 8]


def test_each_process_learns_its_replica_and_a_worker_its_tf_config() -> None:
    job = parse_spec({"kafka": {"bootstrapServers": "k:9092"}, "train": {"topic": "t"},
                      "trainer": {"replicas": 2}, "evaluator": {"replicas": 3},
                      "evaluate": {"topic": "e"}})
    workers = "a-0.svc:2222,a-1.svc:2222"
    worker = replica_for("train", job, {WORKER_INDEX_ENV: "1", WORKERS_ENV: workers})
    assert (worker.index, worker.count, worker.chief, worker.grouped) == (1, 2, False, True)
    assert json.loads(json.dumps(worker.tf_config())) == {
        "cluster": {"worker": ["a-0.svc:2222", "a-1.svc:2222"]},
        "task": {"type": "worker", "index": 1}}
    evaluator = replica_for("evaluate", job, {WORKER_INDEX_ENV: "0"})
    assert (evaluator.index, evaluator.count, evaluator.chief) == (0, 3, True)
    lone = parse_spec({"kafka": {"bootstrapServers": "k:9092"}, "train": {"topic": "t"}})
    assert replica_for("train", lone, {}) is SINGLE


@pytest.mark.parametrize(("environment", "named"), [
    ({}, WORKER_INDEX_ENV), ({WORKER_INDEX_ENV: "2", WORKERS_ENV: "a:1,b:2"}, WORKER_INDEX_ENV),
    ({WORKER_INDEX_ENV: "x", WORKERS_ENV: "a:1,b:2"}, WORKER_INDEX_ENV),
    ({WORKER_INDEX_ENV: "0", WORKERS_ENV: "a:1"}, WORKERS_ENV)])
def test_a_replica_without_its_place_is_refused_naming_the_variable(
        environment: dict[str, str], named: str) -> None:
    job = parse_spec({"kafka": {"bootstrapServers": "k:9092"}, "train": {"topic": "t"},
                      "trainer": {"replicas": 2}})
    with pytest.raises(ReplicaError, match=named):
        replica_for("train", job, environment)


def test_evaluators_ledgers_merge_to_one_evaluators_figures() -> None:
    labels, scores = sample(7, rows=6000)
    one = Tally()
    one.add_scores(labels, scores)
    one.add_bad({"empty": 3, "bad_key": 2})
    pieces = []
    for index, (first, last) in enumerate(((0, 1000), (1000, 4500), (4500, 6000))):
        tally = Tally()
        tally.add_scores(labels[first:last], scores[first:last])
        tally.add_bad({"empty": index, "bad_key": 1 if index < 2 else 0})
        pieces.append(Ledger("t", "g", "model", {0: last}, tally, finished=True))
    merged = merge_ledgers(pieces)
    together, alone = merged.tally.summary(), one.summary()
    assert together["confusionMatrix"] == alone["confusionMatrix"]
    assert together["badRecordsByReason"] == alone["badRecordsByReason"] == {
        "bad_key": 2, "empty": 3}
    assert abs(together["auc"] - alone["auc"]) < 1e-9
    assert abs(together["loss"] - alone["loss"]) < 1e-9
    assert abs(alone["auc"] - exact_auc(labels, scores)) < 1e-3
    assert merged.next_offsets == {0: 6000} and merged.finished
    assert np.array_equal(merged.tally.positive_bins, one.positive_bins)


def test_ledgers_of_another_model_are_not_merged() -> None:
    with pytest.raises(LedgerMismatch, match="another model"):
        merge_ledgers([Ledger("t", "g", "model"), Ledger("t", "g", "other")])


def test_a_groups_merged_statistics_are_one_trainers_on_the_same_rows() -> None:
    rng = np.random.default_rng(3)
    # More rows than a sample keeps, heavy-tailed (signed-log), in three uneven parts.
    rows = np.exp(rng.normal(size=(SAMPLE_ROWS + 20_000, 4))).astype(np.float32)
    whole = RunningStatistics(4)
    whole.add(rows)
    parts = []
    for first, last in ((0, 50_000), (50_000, 50_001), (50_001, len(rows))):
        running = RunningStatistics(4)
        for batch in range(first, last, 8192):
            running.add(rows[batch:min(batch + 8192, last)])
        parts.append(running.result())
    merged, alone = merge_statistics(parts), whole.result()
    assert merged.rows == alone.rows == len(rows) and len(merged.sample) == SAMPLE_ROWS
    assert np.allclose(merged.mean, alone.mean) and np.allclose(merged.variance, alone.variance)
    assert np.array_equal(merged.sample, alone.sample)
    assert plan_features(merged).transforms == plan_features(alone).transforms
