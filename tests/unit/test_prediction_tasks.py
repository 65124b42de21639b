"""What a served record says for each task, and how the promotion gate counts errors: a
multiclass prediction names the class and every class's probability, a regression prediction
is the value in the label's units; the task comes from the model file's own config (its task
layer), read without TensorFlow, and a model without one is binary."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from workload.modes.prediction import (
    BinaryPredictions,
    MulticlassPredictions,
    RegressionPredictions,
    model_task,
    predictions_for,
)


def test_a_multiclass_prediction_names_the_most_probable_class_and_all_probabilities() -> None:
    task = predictions_for("multiclass", ["billing", "100%s refund", 'say "hi"'])
    outputs = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [0.0, 0.1, 0.9]], np.float32)
    served = [json.loads(text) for text in task.payloads(outputs)]
    assert [record["class"] for record in served] == ["100%s refund", "billing", 'say "hi"']
    assert served[0]["probabilities"] == pytest.approx({"billing": 0.1, "100%s refund": 0.7,
                                                        'say "hi"': 0.2}, abs=1e-6)
    labels = np.array([1, 2, 2], np.float32)  # class indices
    assert task.errors(outputs, labels).tolist() == [0.0, 1.0, 0.0]
    assert task.classifies


def test_a_multiclass_model_whose_outputs_do_not_match_its_classes_is_refused() -> None:
    with pytest.raises(ValueError, match="3 probabilities for 2 classes"):
        MulticlassPredictions(["a", "b"]).payloads(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="name its classes"):
        predictions_for("multiclass")


def test_a_regression_prediction_is_the_value_and_its_error_the_squared_difference() -> None:
    task = predictions_for("regression")
    outputs = np.array([[41.75], [-3.0e6]], np.float32)
    assert [json.loads(text) for text in task.payloads(outputs)] == [{"value": 41.75},
                                                                    {"value": -3.0e6}]
    assert task.errors(outputs, np.array([40.75, -3.0e6], np.float32)).tolist() == [1.0, 0.0]
    assert not task.classifies and isinstance(task, RegressionPredictions)


def _keras_file(path: Path, config: dict[str, Any]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    return path


def test_the_task_is_read_from_the_model_files_task_layer_without_tensorflow(
        tmp_path: Path) -> None:
    head = {"class_name": "TaskHead", "registered_name": "streamtrain>TaskHead",
            "config": {"name": "task", "task": "multiclass", "classes": ["a", "b", "c"],
                       "target_mean": 0.0, "target_std": 1.0}}
    nested = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "InputLayer", "config": {}}, {"class_name": "Dense", "config": {}},
        head]}}
    assert model_task(_keras_file(tmp_path / "m.keras", nested)) == ("multiclass",
                                                                     ["a", "b", "c"])
    regression = {"class_name": "Sequential", "config": {"layers": [
        {**head, "config": {**head["config"], "task": "regression", "classes": None}}]}}
    assert model_task(_keras_file(tmp_path / "r.keras", regression)) == ("regression", None)
    plain = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}}
    assert model_task(_keras_file(tmp_path / "b.keras", plain)) == ("binary", None)
    assert isinstance(predictions_for(*model_task(tmp_path / "b.keras")), BinaryPredictions)
    odd = {"class_name": "TaskHead", "config": {"task": "ranking"}}
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        model_task(_keras_file(tmp_path / "o.keras", odd))
