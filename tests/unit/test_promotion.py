"""The promotion gate's decision: McNemar at 99 % for classes, a relative margin for values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from streamtrain_operator.serving_progress import JobServing

from workload.artifacts import Artifacts, write_json_atomic
from workload.model.inputs import InputLayout
from workload.modes.prediction import predictions_for
from workload.modes.promotion import MCNEMAR_CRITICAL_99, PairedWindow, decide, mcnemar
from workload.modes.serving_model import POINTER, ModelSource, ServedModel
from workload.status import PromotionReport


def _window(challenger: list[float], serving: list[float]) -> PairedWindow:
    window = PairedWindow(len(challenger))
    window.add(np.array(challenger), np.array(serving))
    return window


def test_mcnemar_counts_only_the_records_one_model_alone_got_right() -> None:
    assert mcnemar(0, 0) == 0.0
    assert mcnemar(30, 10) == (20 - 1) ** 2 / 40


def test_a_clearly_better_classifier_is_promoted_and_a_lucky_one_is_not() -> None:
    # 60 records only the challenger got right, 30 only the serving model: M = 9.34 > 6.635
    better = _window([0] * 60 + [1] * 30 + [0] * 910, [1] * 60 + [0] * 30 + [0] * 910)
    decision = decide(better, classifies=True, min_improvement=0.01)
    assert decision.promoted and decision.statistic is not None
    assert decision.statistic > MCNEMAR_CRITICAL_99 and decision.records == 1000
    assert decision.challenger_score > decision.serving_score
    # 45 against 30: better on these records, but not at 99 %
    lucky = _window([0] * 45 + [1] * 30 + [0] * 925, [1] * 45 + [0] * 30 + [0] * 925)
    assert not decide(lucky, classifies=True, min_improvement=0.01).promoted
    worse = _window([1] * 60 + [0] * 940, [0] * 1000)
    assert not decide(worse, classifies=True, min_improvement=0.01).promoted


def test_a_regressor_is_promoted_only_by_the_margin_on_its_mean_squared_error() -> None:
    serving = [4.0] * 100
    assert decide(_window([3.9] * 100, serving), False, 0.01).promoted
    assert not decide(_window([3.99] * 100, serving), False, 0.01).promoted
    assert decide(_window([3.0] * 100, serving), False, 0.01).metric == "rmse"


def test_the_window_keeps_the_last_pairs_and_clears_when_the_served_model_changes() -> None:
    window = PairedWindow(4)
    window.add(np.array([1, 1, 1]), np.array([0, 0, 0]))
    assert not window.full
    window.add(np.array([0, 0]), np.array([1, 1]))
    assert window.full and sorted(window.pairs()[:, 0].tolist()) == [0, 0, 1, 1]
    window.clear()
    assert window.count == 0 and not window.full


def test_a_replica_swaps_to_the_model_the_pointer_names_at_most_every_second(
        tmp_path: Path) -> None:
    artifacts = Artifacts(tmp_path).prepare()
    artifacts.keras_model.write_bytes(b"trained")
    loaded: list[str] = []

    def load(path: Path, version: str, layout: InputLayout) -> ServedModel:
        loaded.append(version)
        return ServedModel(version, path, lambda features: features, "test",
                           predictions_for("binary"))

    now = [0.0]
    source = ModelSource(artifacts, InputLayout(18, ()), load, clock=lambda: now[0])
    assert source.current.version.startswith("trained-")
    (artifacts.serving / "model-online-1.keras").parent.mkdir()
    (artifacts.serving / "model-online-1.keras").write_bytes(b"online")
    write_json_atomic(artifacts.serving / POINTER, {"version": "online-1",
                                                    "model": "model-online-1.keras"})
    now[0] = 0.5
    assert not source.refresh()  # looked less than a second ago
    now[0] = 1.5
    assert source.refresh() and source.current.version == "online-1"
    now[0] = 3.0
    assert not source.refresh() and len(loaded) == 2


def test_the_operator_takes_each_decision_of_the_learner_once() -> None:
    serving = JobServing("uid", base=0)
    first = PromotionReport(decisions=1, promotions=0, promoted=False, version="trained-a",
                            metric="accuracy", challenger_score=0.7, serving_score=0.71,
                            records=2000)
    assert serving.decided(first) and not serving.decided(first)
    second = first.model_copy(update={"decisions": 2, "promotions": 1, "promoted": True,
                                      "version": "online-b"})
    assert serving.decided(second)
    status = serving.status(None)
    assert (status.promotions, status.rejections, status.last_decision) == (1, 1, second)
