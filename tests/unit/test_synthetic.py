"""The synthetic SUSY-like generator: schema, look, determinism, and its Bayes-optimal accuracy."""

from __future__ import annotations

import math
import sys

import numpy as np
import numpy.typing as npt
import pytest

from workload.datagen import synthetic
from workload.datagen.table import SUSY_COLUMNS, split


@pytest.fixture(scope="module")
def rows() -> synthetic.SusyData:
    return synthetic.generate(200_000, seed=7)


def column(data: synthetic.SusyData, name: str) -> npt.NDArray[np.float32]:
    return data.features[:, data.columns.index(name)]


def test_same_seed_gives_identical_rows_and_other_seeds_differ() -> None:
    first, again, other = (synthetic.generate(1000, seed) for seed in (3, 3, 4))
    assert np.array_equal(first.features, again.features)
    assert np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.features, other.features)


def test_rows_have_the_susy_schema_and_signal_share(rows: synthetic.SusyData) -> None:
    assert rows.features.shape == (200_000, 18)
    assert rows.features.dtype == np.float32
    assert rows.columns == SUSY_COLUMNS
    assert set(np.unique(rows.labels).tolist()) == {0, 1}
    assert abs(rows.labels.mean() - synthetic.SIGNAL_FRACTION) < 0.005
    assert np.isfinite(rows.features).all()


def test_momenta_are_positive_and_heavy_tailed(rows: synthetic.SusyData) -> None:
    for name in ("lepton1_pt", "lepton2_pt", "met"):
        values = column(rows, name)
        assert (values > 0).all(), name
        median, p99 = np.percentile(values, [50, 99])
        assert p99 > 3.5 * median, f"{name}: tail too light ({p99=:.1f}, {median=:.1f})"
    assert (column(rows, "lepton1_pt") >= column(rows, "lepton2_pt")).all()


def test_azimuths_are_uniform_and_pseudorapidities_centred(rows: synthetic.SusyData) -> None:
    for name in ("lepton1_phi", "lepton2_phi", "met_phi"):
        counts, _ = np.histogram(column(rows, name), bins=8, range=(-math.pi, math.pi))
        assert counts.sum() == rows.rows, f"{name} leaves [-pi, pi]"
        assert counts.min() > 0.95 * rows.rows / 8, name
    for name in ("lepton1_eta", "lepton2_eta"):
        values = column(rows, name)
        assert abs(float(values.mean())) < 0.02 and 0.8 < float(values.std()) < 1.4, name


def test_columns_span_several_orders_of_magnitude(rows: synthetic.SusyData) -> None:
    typical = np.median(np.abs(rows.features), axis=0)
    assert typical.max() / typical.min() > 300
    assert np.percentile(column(rows, "r"), 5) < 0.05
    assert np.percentile(column(rows, "m_r"), 99) > 400


def test_derived_features_follow_from_the_low_level_ones(rows: synthetic.SusyData) -> None:
    low = [rows.features[:, index].astype(np.float64) for index in range(8)]
    recomputed = np.stack(synthetic._derived(low), axis=1)
    assert np.allclose(rows.features[:, 8:], recomputed, rtol=1e-3, atol=1e-3)
    correlation = np.corrcoef(column(rows, "met"), column(rows, "met_rel"))[0, 1]
    assert correlation > 0.6


def test_bayes_accuracy_is_in_the_target_band_with_a_small_error() -> None:
    accuracy, error = synthetic.bayes_optimal_accuracy(samples=400_000, seed=1)
    assert 0.78 < accuracy < 0.85
    assert 0 < error < 1e-3


def test_bayes_rule_on_generated_rows_reaches_the_reported_accuracy(
    rows: synthetic.SusyData,
) -> None:
    reported, error = synthetic.bayes_optimal_accuracy(samples=400_000, seed=2)
    posterior = synthetic.bayes_predictions(rows)
    achieved = float(((posterior > 0.5) == rows.labels).mean())
    sampling = math.sqrt(reported * (1 - reported) / rows.rows)
    assert abs(achieved - reported) < 4 * (sampling + error)


def test_class_evidence_lives_partly_in_spreads_not_means(rows: synthetic.SusyData) -> None:
    signal, background = rows.labels == 1, rows.labels == 0
    eta = column(rows, "lepton1_eta")
    assert abs(float(eta[signal].mean() - eta[background].mean())) < 0.02
    assert float(eta[background].std()) > 1.3 * float(eta[signal].std())


def python_calls(rows: int) -> int:
    """Python and C function calls made to generate `rows` rows."""
    calls = 0

    def count(frame: object, event: str, argument: object) -> None:
        nonlocal calls
        calls += event in ("call", "c_call")

    sys.setprofile(count)
    try:
        synthetic.generate(rows, seed=1)
    finally:
        sys.setprofile(None)
    return calls


def test_rows_are_generated_whole_arrays_at_a_time() -> None:
    """A hundred times the rows costs not one more Python call: no work per row in Python, so
    generation runs at numpy's speed on any machine (`make bench` times `produce_rps`)."""
    python_calls(10)  # imports and first-use set-up
    assert python_calls(100_000) == python_calls(1_000)


def test_split_keeps_order_and_sizes() -> None:
    data = synthetic.generate(1000, seed=1)
    train, test = split(data, train_rows=600)
    assert (train.rows, test.rows) == (600, 400)
    assert np.array_equal(test.features[0], data.features[600])
    with pytest.raises(ValueError, match="train_rows"):
        split(data, train_rows=1000)
