"""Generated data families: deterministic rows, exact posteriors, the traits each one promises."""

from __future__ import annotations

import numpy as np
import pytest

from workload.datagen.families import FAMILIES, IMBALANCED, WIDE_RANGE


@pytest.mark.parametrize("name", list(FAMILIES))
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
