"""What a prediction says, per task: the JSON a served record carries, and what a model got right.

One small class per task (`model.task`; binary today), so serving and the
promotion gate ask the same questions whatever the task:
- `payloads`: each record's prediction as a JSON object (text), the
  `prediction` field of a served record;
- `errors`: per labelled record, how wrong the model was (binary and
  multiclass: 1 for a wrong class, 0 for a right one; regression: the
  squared error), what two models are compared on.

A binary model outputs the probability of class 1 (a sigmoid unit); its
prediction is `{"class": 1, "probabilities": {"0": 0.28, "1": 0.72}}`, the
class being the one above 0.5.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]

Task = Literal["binary"]
"""The tasks a model may have (`spec.model.task`)."""

PROBABILITY_DIGITS = 6
"""Significant digits of a probability in a served record (float32 holds about 7)."""


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
        digits = PROBABILITY_DIGITS
        return [f'{{"class":{int(p > 0.5)},"probabilities":{{"0":{1.0 - p:.{digits}g},'
                f'"1":{p:.{digits}g}}}}}' for p in ones.tolist()]

    def errors(self, outputs: Floats, labels: Floats) -> Floats:
        """1 where the class (probability above 0.5) differs from the label, else 0."""
        predicted = np.asarray(outputs).reshape(-1) > 0.5
        wrong: Floats = (predicted != (np.asarray(labels).reshape(-1) > 0.5)).astype(np.float32)
        return wrong


TASKS: dict[Task, TaskPredictions] = {"binary": BinaryPredictions()}
"""The predictions of each task."""


def predictions_for(task: Task = "binary") -> TaskPredictions:
    """The predictions of `task`."""
    return TASKS[task]
