"""What the training range says about the data: everything the model takes from it.

Read batch by batch as training reads Kafka (`RunningProfile`), and merged
over the workers of a training group (`merge_profiles`), so one trainer and
a group of any size build the same model:

- the numeric features' statistics (`workload.model.statistics`), behind the
  preprocessing;
- per categorical field, how many records hold each value: its vocabulary is
  the `data.maxTokens` most frequent (ties in text order), the rest share the
  out-of-vocabulary bucket;
- multiclass: how many records hold each label, when the classes are learned
  (`model.classes` absent): the classes are every label seen, in numeric
  order when all are integers, else in text order;
- regression: the count, sum and sum of squares of the labels, whose mean and
  standard deviation standardise the target inside the model.

`TaskFacts` is what a saved model says about its task (kept in its task
layer, `workload.model.task`): the evaluator and the online learner read
the classes and the target's scale from the model itself. No TensorFlow.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from workload.data.decoded import Decoded, Task, class_order
from workload.model.statistics import FeatureStatistics, RunningStatistics, merge_statistics
from workload.spec import MAX_CLASSES, DataSpec

OOV_TOKEN = "[UNK]"
"""Keras' out-of-vocabulary token: never a vocabulary entry of its own."""

MAX_DISTINCT_VALUES = 1_000_000
"""Distinct values counted per categorical field at most; beyond it the rarest are dropped
from the count (they could not be among the kept ones anyway unless `maxTokens` is near it)."""

TINY_SPREAD = 1e-12
"""A target standard deviation below this is taken as 1 (a constant target)."""


class ProfileError(ValueError):
    """The training range cannot define the model (too many or too few classes)."""


@dataclass(frozen=True)
class TaskFacts:
    """A model's task as the model itself records it."""

    task: Task = "binary"
    classes: tuple[str, ...] | None = None
    """Multiclass: the class names, in output order."""
    target_mean: float = 0.0
    """Regression: the training labels' mean (the model's output is in the label's units)."""
    target_std: float = 1.0
    """Regression: their standard deviation (the unit the loss is computed in)."""

    @property
    def outputs(self) -> int:
        """Units of the model's output: one per class, else one."""
        return len(self.classes) if self.task == "multiclass" and self.classes else 1


@dataclass(frozen=True)
class TrainingProfile:
    """The training range's figures (see the module docstring)."""

    statistics: FeatureStatistics
    values: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per categorical field: records per value."""
    labels: dict[str, int] = field(default_factory=dict)
    """Multiclass: records per label text."""
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Regression: count, sum and sum of squares of the labels."""

    def vocabulary(self, name: str, max_tokens: int) -> list[str]:
        """The kept values of categorical field `name`: most frequent first, ties in text order."""
        counts = self.values.get(name, {})
        ranked = sorted((value for value in counts if value != OOV_TOKEN),
                        key=lambda value: (-counts[value], value))
        return ranked[:max_tokens]

    def facts(self, task: Task, classes: Sequence[str] | None = None) -> TaskFacts:
        """The task's facts: `classes` as named (or learned from the labels), the target's scale."""
        if task == "multiclass":
            found = tuple(classes) if classes is not None else class_order(self.labels)
            if len(found) > MAX_CLASSES:
                raise ProfileError(
                    f"the training range holds {len(found)} distinct labels, more than the "
                    f"{MAX_CLASSES} classes a multiclass job takes: name the classes in "
                    "model.classes (other labels are then set aside as unknown_class)")
            if len(found) < 2:
                raise ProfileError(
                    f"the training range holds {len(found)} distinct label(s) "
                    f"({', '.join(found) or 'none'}): a multiclass model needs at least 2 classes")
            return TaskFacts("multiclass", found)
        if task == "regression":
            count, total, squares = self.target
            mean = total / count if count else 0.0
            spread = math.sqrt(max(squares / count - mean * mean, 0.0)) if count else 1.0
            return TaskFacts("regression", None, mean, spread if spread > TINY_SPREAD else 1.0)
        return TaskFacts(task)


class RunningProfile:
    """A `TrainingProfile` accumulated batch by batch."""

    def __init__(self, data: DataSpec, task: Task) -> None:
        self._task = task
        self._statistics = RunningStatistics(len(data.numeric_names))
        self._names = data.categorical_names
        self._values: list[Counter[str]] = [Counter() for _ in self._names]
        self._labels: Counter[str] = Counter()
        self._target = np.zeros(3, np.float64)

    def add(self, decoded: Decoded) -> None:
        """Account for a decoded batch's good records."""
        self._statistics.add(decoded.features)
        if decoded.categories is not None:
            for column, counter in enumerate(self._values):
                counter.update(decoded.categories[:, column].tolist())
                if len(counter) > MAX_DISTINCT_VALUES:
                    _keep_most_common(counter, MAX_DISTINCT_VALUES // 2)
        if decoded.tokens is not None:
            self._labels.update(decoded.tokens.tolist())
        if self._task == "regression":
            labels = decoded.labels.astype(np.float64)
            self._target += (len(labels), labels.sum(), np.square(labels).sum())

    def result(self) -> TrainingProfile:
        """The profile of every batch so far."""
        return TrainingProfile(
            self._statistics.result(),
            {name: dict(counter) for name, counter in zip(self._names, self._values, strict=True)},
            dict(self._labels), (float(self._target[0]), float(self._target[1]),
                                 float(self._target[2])))


def merge_profiles(parts: Sequence[TrainingProfile]) -> TrainingProfile:
    """The profile of the rows of every part (disjoint rows, e.g. each training worker's), as one
    `RunningProfile` over all of them gives it (up to float rounding)."""
    values: dict[str, Counter[str]] = {}
    for part in parts:
        for name, counts in part.values.items():
            values.setdefault(name, Counter()).update(counts)
    labels: Counter[str] = Counter()
    for part in parts:
        labels.update(part.labels)
    count, total, squares = (float(sum(part.target[index] for part in parts)) for index in range(3))
    return TrainingProfile(merge_statistics([part.statistics for part in parts]),
                           {name: dict(counter) for name, counter in values.items()},
                           dict(labels), (count, total, squares))


def with_labels(profile: TrainingProfile, others: Iterable[TrainingProfile]) -> TrainingProfile:
    """`profile` whose label counts also hold `others`' (classes are learned from the held-out
    records too, so none of them is an unknown class)."""
    labels = Counter(profile.labels)
    for other in others:
        labels.update(other.labels)
    return TrainingProfile(profile.statistics, profile.values, dict(labels), profile.target)


def _keep_most_common(counter: Counter[str], keep: int) -> None:
    """Drop all but the `keep` most frequent values of `counter`."""
    kept = dict(counter.most_common(keep))
    counter.clear()
    counter.update(kept)
