"""The evaluator's ledger: aggregates agree with direct numpy figures and survive a round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from workload.modes.ledger import Ledger, LedgerMismatch
from workload.modes.tally import BinaryTally as Tally


def exact_auc(labels: npt.NDArray[np.float32], scores: npt.NDArray[np.float32]) -> float:
    """ROC AUC by ranks (Mann-Whitney), ties counted half."""
    positives = scores[labels == 1]
    negatives = scores[labels == 0]
    greater = (positives[:, None] > negatives[None, :]).sum()
    equal = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * equal) / (len(positives) * len(negatives)))


def sample(seed: int, rows: int = 3000) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, rows).astype(np.float32)
    logits = rng.normal(labels * 1.5 - 0.75, 1.2)
    return labels, (1 / (1 + np.exp(-logits))).astype(np.float32)


def test_tally_matches_numpy_figures() -> None:
    labels, scores = sample(1)
    tally = Tally()
    tally.add_scores(labels, scores)
    figures = tally.summary()

    clipped = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    loss = -(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped)).mean()
    predicted = scores > 0.5
    assert figures["records"] == len(labels)
    assert figures["loss"] == pytest.approx(loss, rel=1e-9)
    assert figures["accuracy"] == pytest.approx((predicted == (labels == 1)).mean())
    assert figures["auc"] == pytest.approx(exact_auc(labels, scores), abs=1e-3)
    tp = int((predicted & (labels == 1)).sum())
    assert figures["confusionMatrix"]["truePositives"] == tp
    assert figures["precision"] == pytest.approx(tp / predicted.sum())
    assert figures["recall"] == pytest.approx(tp / (labels == 1).sum())


def test_tally_of_chunks_equals_tally_of_whole() -> None:
    labels, scores = sample(2)
    whole = Tally()
    whole.add_scores(labels, scores)
    parts = Tally()
    for start in range(0, len(labels), 700):
        chunk = Tally()
        chunk.add_scores(labels[start:start + 700], scores[start:start + 700])
        parts = parts.merged(chunk)
    assert parts.summary()["confusionMatrix"] == whole.summary()["confusionMatrix"]
    assert parts.auc() == whole.auc()
    assert parts.loss_sum == pytest.approx(whole.loss_sum, rel=1e-12)


def test_auc_is_nan_with_one_class_only() -> None:
    tally = Tally()
    tally.add_scores(np.ones(5, np.float32), np.full(5, 0.9, np.float32))
    assert math.isnan(tally.auc())


def test_ledger_round_trips_through_its_file(tmp_path: Path) -> None:
    labels, scores = sample(3, rows=500)
    chunk = Tally()
    chunk.add_scores(labels, scores)
    chunk.add_bad({"field_count": 2, "empty": 1})
    ledger = Ledger("t", "g", "abc").advanced(chunk, {0: 300, 1: 203})
    path = tmp_path / "ledger.json"
    ledger.save(path)

    loaded = Ledger.load(path)
    assert loaded is not None
    assert loaded.next_offsets == {0: 300, 1: 203}
    assert loaded.tally.summary() == ledger.tally.summary()
    assert loaded.tally.bad_records == 3


def test_missing_ledger_loads_as_none(tmp_path: Path) -> None:
    assert Ledger.load(tmp_path / "absent.json") is None


def test_ledger_refuses_offsets_that_move_backwards() -> None:
    ledger = Ledger("t", "g", "abc").advanced(Tally(), {0: 10})
    with pytest.raises(ValueError, match="backwards"):
        ledger.advanced(Tally(), {0: 5})


def test_ledger_refuses_figures_of_another_model() -> None:
    ledger = Ledger("t", "g", "abc")
    ledger.check("t", "g", "abc")
    with pytest.raises(LedgerMismatch, match="another model"):
        ledger.check("t", "g", "def")
    with pytest.raises(LedgerMismatch, match="topic"):
        ledger.check("other", "g", "abc")
