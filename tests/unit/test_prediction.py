"""What a served record says: the per-task prediction payload, and what a model got wrong."""

from __future__ import annotations

import json

import numpy as np

from workload.modes.prediction import predictions_for
from workload.modes.serve import transactional_id


def test_a_binary_prediction_names_the_class_above_one_half_and_both_probabilities() -> None:
    payloads = predictions_for("binary").payloads(np.array([[0.72], [0.1], [0.5]], np.float32))
    parsed = [json.loads(payload) for payload in payloads]
    assert [p["class"] for p in parsed] == [1, 0, 0]
    assert parsed[0]["probabilities"]["1"] == np.float32(0.72).item().__round__(6)
    assert abs(parsed[0]["probabilities"]["0"] - 0.28) < 1e-6
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-6 for p in parsed)


def test_binary_errors_count_a_wrong_class_as_one() -> None:
    errors = predictions_for().errors(np.array([0.9, 0.2, 0.6], np.float32),
                                      np.array([1.0, 1.0, 0.0], np.float32))
    assert errors.tolist() == [0.0, 1.0, 1.0]


def test_a_replicas_transactional_id_is_its_jobs_and_its_own_across_restarts() -> None:
    assert transactional_id("6f1c", "susy-serve-7d9f-x2") == transactional_id(
        "6f1c", "susy-serve-7d9f-x2")
    assert transactional_id("6f1c", "a") != transactional_id("6f1c", "b")
    assert transactional_id("6f1c", "a") != transactional_id("77aa", "a")
