"""Generated data families: deterministic rows, exact posteriors, the traits each one promises."""

from __future__ import annotations

import numpy as np
import pytest

from workload.datagen.families import FAMILIES, IMBALANCED, WIDE_RANGE, data_spec
from workload.datagen.records import encode
from workload.datagen.task_families import DEMAND, TICKETS

BINARY = [name for name, family in FAMILIES.items() if name not in (TICKETS.name, DEMAND.name)]


@pytest.mark.parametrize("name", BINARY)
def test_the_bayes_rule_on_fresh_rows_scores_the_computed_bayes_rate(name: str) -> None:
    family = FAMILIES[name]
    rows = family.generate(200_000, seed=5)
    assert rows.features.shape == (200_000, len(family.columns))
    assert np.array_equal(family.generate(50, seed=5).features, family.generate(50, 5).features)
    # The posterior is recomputed from the rows (float32) alone; its accuracy on them must
    # match the Monte Carlo rate of fresh latents within sampling noise (4 standard errors).
    rule = np.mean((family.posterior(rows) > 0.5) == (rows.labels == 1))
    bayes, error = family.bayes_optimal_accuracy(400_000, seed=6)
    noise = np.sqrt(bayes * (1 - bayes) / 200_000)
    assert abs(rule - bayes) < 4 * np.hypot(noise, error), (rule, bayes)
    assert 0.75 < bayes < 0.9


def test_wide_range_features_each_span_six_orders_of_magnitude_at_scales_1e_3_to_1e3() -> None:
    features = WIDE_RANGE.generate(100_000).features.astype(np.float64)
    low, median, high = np.quantile(features, [0.001, 0.5, 0.999], axis=0)
    assert np.all(high / low >= 1e6)
    assert median.min() < 1e-2 and median.max() > 1e2


def test_imbalanced_has_30_percent_positives_and_near_constant_columns() -> None:
    rows = IMBALANCED.generate(100_000)
    assert abs(rows.labels.mean() - 0.3) < 0.01
    for index, constant in enumerate(IMBALANCED.constants, start=len(IMBALANCED.latents)):
        share = np.mean(rows.features[:, index] == np.float32(constant.value))
        assert 0.99 < share < 1.0, constant.name


def test_tickets_route_to_six_queues_two_rare_and_the_bayes_rule_scores_the_computed_rate() -> None:
    rows = TICKETS.generate(200_000, seed=5)
    shares = np.bincount(rows.labels, minlength=6) / rows.rows
    np.testing.assert_allclose(shares, TICKETS.priors, atol=0.005)
    assert sorted(shares)[:2] == pytest.approx([0.03, 0.05], abs=0.005)
    assert rows.categories is not None and rows.categories.shape == (200_000, 3)
    assert [len(set(rows.categories[:, column])) for column in range(3)] == [4, 12, 50]
    rule = np.mean(TICKETS.posterior(rows).argmax(axis=1) == rows.labels)
    bayes, error = TICKETS.bayes_optimal_accuracy(400_000, seed=6)
    noise = np.sqrt(bayes * (1 - bayes) / 200_000)
    assert abs(rule - bayes) < 4 * np.hypot(noise, error), (rule, bayes)
    assert 0.6 < bayes < 0.9


def test_demand_has_heavy_tails_and_its_optimum_misses_by_exactly_the_noise() -> None:
    rows = DEMAND.generate(200_000, seed=5)
    assert rows.targets is not None
    rmse = np.sqrt(np.mean((DEMAND.optimum(rows) - rows.targets) ** 2))
    assert rmse == pytest.approx(DEMAND.noise, rel=0.01)  # sampling noise of 200,000 rows: 0.2 %
    features = rows.features.astype(np.float64)
    low, q1, q3, high = np.quantile(features[:, :3], [0.0005, 0.25, 0.75, 0.9995], axis=0)
    assert np.all((high - low) / (q3 - q1) > 10)  # heavier than any normal's 4.9


def test_each_family_writes_records_its_own_layout_reads() -> None:
    from workload.data.decode import LabelRule, make_decoder

    for family in (TICKETS, DEMAND):
        spec = data_spec(family)
        rows = family.generate(200, seed=1)
        messages = encode(rows, spec)
        decoded = make_decoder(spec, LabelRule(family.task, getattr(family, "classes", None)))(
            [m.key or b"" for m in messages], [m.value for m in messages])
        assert not decoded.reasons.any()
        np.testing.assert_allclose(decoded.features, rows.features, rtol=1e-6)
        expected = rows.targets if rows.targets is not None else rows.labels
        np.testing.assert_allclose(decoded.labels, expected, rtol=1e-6)
