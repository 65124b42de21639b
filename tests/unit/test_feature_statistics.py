"""Training statistics and the robust per-feature preprocessing chosen from them (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from workload.model.statistics import (
    RunningStatistics,
    feature_statistics,
    plan_features,
    signed_log,
)

Features = npt.NDArray[np.float32]


def _columns(rows: int = 20_000, seed: int = 1) -> Features:
    rng = np.random.default_rng(seed)
    constant = np.full(rows, 250.0)
    constant[rng.random(rows) < 0.004] = 1e6
    columns = [rng.normal(5.0, 2.0, rows),            # plain
               np.exp(rng.normal(0.0, 2.3, rows)),    # log-normal over 6 orders of magnitude
               100.0 * np.sinh(rng.normal(0.0, 2.0, rows)),   # heavy on both sides
               constant,                              # near-constant
               rng.uniform(-1.0, 1.0, rows)]
    features: Features = np.stack(columns, axis=1).astype(np.float32)
    return features


def test_running_statistics_match_the_whole_table_and_sample_uniformly() -> None:
    table = _columns(rows=300_000)
    running = RunningStatistics(table.shape[1])
    for start in range(0, len(table), 7_777):
        running.add(table[start:start + 7_777])
    statistics = running.result()
    np.testing.assert_allclose(statistics.mean, table.mean(axis=0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(statistics.variance, table.var(axis=0, dtype=np.float64),
                               rtol=1e-5)
    assert statistics.rows == 300_000 and len(statistics.sample) == running.capacity
    # The same sample whatever order the rows arrive in (partitions read in parallel).
    shuffled = RunningStatistics(table.shape[1])
    for start in range(0, len(table), 10_000):
        shuffled.add(table[::-1][start:start + 10_000])
    assert np.array_equal(shuffled.result().sample, statistics.sample)
    # A uniform sample: its rows come from the whole table, not its start.
    first_column = statistics.sample[:, 0]
    np.testing.assert_allclose(np.quantile(first_column, [0.1, 0.5, 0.9]),
                               np.quantile(table[:, 0], [0.1, 0.5, 0.9]), atol=0.05)


def test_robust_plan_logs_heavy_tails_drops_near_constants_and_standardises_the_rest() -> None:
    plan = plan_features(feature_statistics(_columns()))
    assert plan.transforms == ("standardize", "signed-log", "signed-log", "drop", "standardize")
    assert plan.summary() == "2 standardize, 2 signed-log, 1 drop"
    assert "near-constant" in plan.reasons[3] and "heavy-tailed" in plan.reasons[1]
    assert plan.center[1] == 0.0 and plan.scale[1] > 0  # positive: log1p(x / low quantile)
    assert abs(plan.center[2]) < 20.0  # both signs: around the median


def test_transformed_features_are_clipped_and_standardised() -> None:
    table = _columns()
    plan = plan_features(feature_statistics(table))
    for index in (0, 1, 2, 4):
        values = table[:, index].astype(np.float64)
        if plan.transforms[index] == "signed-log":
            values = signed_log(values, plan.center[index], plan.scale[index])
        values = np.clip(values, plan.low[index], plan.high[index])
        standard = (values - plan.mean[index]) / plan.std[index]
        assert abs(standard.mean()) < 1e-6 and abs(standard.std() - 1.0) < 1e-6
        assert np.abs(standard).max() < 6.0  # no wild inputs left after the log and the clip


def test_signed_log_is_monotone_and_odd_around_its_center() -> None:
    values = np.array([-1e6, -10.0, -1.0, 0.0, 1.0, 10.0, 1e6])
    logged = signed_log(values, 0.0, 1.0)
    assert np.all(np.diff(logged) > 0)
    np.testing.assert_allclose(logged, -logged[::-1])
    assert logged[-1] < 14.0  # six orders of magnitude become a range of about 14
