"""What a prediction says, per task: the JSON a served record carries, and what a model got right.

One small class per task (`model.task`: binary, multiclass, regression), so
serving and the promotion gate ask the same questions whatever the task:
- `payloads`: each record's prediction as a JSON object (text), the
  `prediction` field of a served record;
- `errors`: per labelled record, how wrong the model was (binary and
  multiclass: 1 for a wrong class, 0 for a right one; regression: the
  squared error), what two models are compared on.

A binary model outputs the probability of class 1 (a sigmoid unit); its
prediction is `{"class": 1, "probabilities": {"0": 0.28, "1": 0.72}}`, the
class being the one above 0.5. A multiclass model outputs one probability
per class (softmax); its prediction names the class:
`{"class": "refund", "probabilities": {"billing": 0.1, "refund": 0.9}}`. A
regression model's last layer already answers in the label's units; its
prediction is `{"value": 41.7}`.

Which task a model file has is read from its own config (`model_task`: the
`TaskHead` layer that records the task and the class names), with no
TensorFlow, so a serving replica on LiteRT knows it too; a model without
that layer is binary.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

Task = Literal["binary", "multiclass", "regression"]
"""The tasks a model may have (`spec.model.task`)."""

PROBABILITY_DIGITS = 6
"""Significant digits of a probability in a served record (float32 holds about 7)."""

PROBABILITY = f"%.{PROBABILITY_DIGITS}g"
"""A probability's printf format: records are formatted with `%`, whose fixed formats cost
0.8 µs a binary record against 1.3 µs for f-strings with the digits as a parameter."""


class TaskPredictions(Protocol):
    """The per-task questions about a model's outputs."""

    classifies: ClassVar[bool]
    """Whether errors are right-or-wrong (classification) rather than amounts (regression)."""

    def payloads(self, outputs: Floats) -> list[str]:
        """Each record's prediction as a JSON object (text), from the model's outputs."""
        ...

    def errors(self, outputs: Floats, labels: Floats) -> Floats:
        """Per record, how wrong the outputs are for the labels (0 = right)."""
        ...


class BinaryPredictions:
    """A sigmoid output: the probability of class 1."""

    classifies: ClassVar[bool] = True

    def payloads(self, outputs: Floats) -> list[str]:
        """`{"class": c, "probabilities": {"0": 1 - p, "1": p}}` per record."""
        ones = np.asarray(outputs, np.float64).reshape(-1)
        template = ('{"class":%d,"probabilities":{"0":' + PROBABILITY + ',"1":' + PROBABILITY
                    + '}}')
        return [template % fields for fields in zip(
            (ones > 0.5).tolist(), (1.0 - ones).tolist(), ones.tolist(), strict=True)]

    def errors(self, outputs: Floats, labels: Floats) -> Floats:
        """1 where the class (probability above 0.5) differs from the label, else 0."""
        predicted = np.asarray(outputs).reshape(-1) > 0.5
        wrong: Floats = (predicted != (np.asarray(labels).reshape(-1) > 0.5)).astype(np.float32)
        return wrong


class MulticlassPredictions:
    """A softmax output: one probability per class, in the order of the class names."""

    classifies: ClassVar[bool] = True

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = [json.dumps(str(name)) for name in classes]
        """Each class name as a JSON string."""

    def payloads(self, outputs: Floats) -> list[str]:
        """`{"class": name, "probabilities": {name: p, ...}}` per record."""
        rows = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
        if rows.shape[1] != len(self.classes):
            raise ValueError(f"the model gives {rows.shape[1]} probabilities for "
                             f"{len(self.classes)} classes")
        template = '{"class":%s,"probabilities":{' + ",".join(
            f"{name.replace('%', '%%')}:{PROBABILITY}" for name in self.classes) + "}}"
        best = rows.argmax(axis=1).tolist()
        return [template % (self.classes[top], *row)
                for top, row in zip(best, rows.tolist(), strict=True)]

    def errors(self, outputs: Floats, labels: Floats) -> Floats:
        """1 where the most probable class differs from the label (a class index), else 0."""
        rows = np.asarray(outputs).reshape(len(outputs), -1)
        wrong: Floats = (rows.argmax(axis=1) != np.asarray(labels).reshape(-1).astype(np.int64)
                         ).astype(np.float32)
        return wrong


class RegressionPredictions:
    """A value in the label's units."""

    classifies: ClassVar[bool] = False

    def payloads(self, outputs: Floats) -> list[str]:
        """`{"value": v}` per record."""
        values = np.asarray(outputs, np.float64).reshape(-1)
        template = '{"value":%.' + str(VALUE_DIGITS) + 'g}'
        return [template % value for value in values.tolist()]

    def errors(self, outputs: Floats, labels: Floats) -> Floats:
        """The squared error per record, in the label's units squared."""
        errors: Floats = np.square(np.asarray(outputs, np.float32).reshape(-1)
                                   - np.asarray(labels, np.float32).reshape(-1))
        return errors


VALUE_DIGITS = 7
"""Significant digits of a regression value in a served record (float32 holds about 7)."""

TASK_LAYER = "TaskHead"
"""The class name of the layer that records a model's task, classes and target scale."""


def predictions_for(task: Task = "binary", classes: Sequence[str] | None = None
                    ) -> TaskPredictions:
    """The predictions of `task` (`classes`: the class names of a multiclass model)."""
    if task == "multiclass":
        if not classes:
            raise ValueError("a multiclass model must name its classes")
        return MulticlassPredictions(classes)
    if task == "regression":
        return RegressionPredictions()
    return BinaryPredictions()


def model_task(path: Path) -> tuple[Task, list[str] | None]:
    """The task and class names a Keras model file records (its `TaskHead` layer's config),
    read from the file's `config.json` without TensorFlow; binary when it records none."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        return "binary", None
    found = _task_layer(config)
    if found is None:
        return "binary", None
    task = found.get("task", "binary")
    if task not in get_args(Task):
        raise ValueError(f"{path.name}: unknown task {task!r}")
    classes = found.get("classes")
    return task, [str(name) for name in classes] if classes else None


def _task_layer(node: Any) -> dict[str, Any] | None:
    """The config of the first `TaskHead` layer anywhere in a Keras config tree."""
    if isinstance(node, dict):
        if node.get("class_name") == TASK_LAYER and isinstance(node.get("config"), dict):
            found: dict[str, Any] = node["config"]
            return found
        children: list[Any] = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found_below = _task_layer(child)
        if found_below is not None:
            return found_below
    return None
