"""Running aggregates of scored records, one kind per task: what an exact metric needs, no more.

A tally holds counts and sums that add up: the tally of a topic is the sum of
its chunks' tallies, and of several evaluators' shares, so figures computed
from it are exact however the records were split, killed and resumed (the
evaluator's ledger, `workload.modes.ledger`), and a training group sums its
workers' tallies of the validation slice (`arrays` / `from_arrays`).

- `BinaryTally`: the confusion counts, the log loss sum and score histograms
  (fixed bins in logit space, for an AUC within 1e-3 of the exact rank one);
- `MulticlassTally`: the K x K confusion matrix (rows: true class, columns:
  predicted) and the log loss sum; accuracy, macro-F1 (the mean F1 over the
  classes that occur as a label or a prediction, as scikit-learn's
  `f1_score(average="macro")`) and log loss follow;
- `RegressionTally`: the count and the float64 sums of errors, squared and
  absolute errors, labels and squared labels; RMSE, MAE and R² follow.

Every tally also counts bad records by reason. Pure Python and numpy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from workload.data.decoded import Task

SCORE_BINS = 8192
"""Histogram bins of scores, evenly spaced in logit space over [-LOGIT_RANGE, LOGIT_RANGE]."""

LOGIT_RANGE = 16.0
"""Scores are binned by logit; sigmoid(±16) is within 1.2e-7 of 0 and 1 (Keras clips at 1e-7)."""

EPSILON = 1e-7
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before the log loss, as Keras does."""

THRESHOLD = 0.5
"""A score above this is a positive prediction (Keras' `binary_accuracy`)."""

Numbers = npt.NDArray[Any]


def _zero_bins() -> npt.NDArray[np.int64]:
    return np.zeros(SCORE_BINS, dtype=np.int64)


def score_bins(scores: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.int64]:
    """The histogram bin of each score (probabilities in [0, 1])."""
    clipped = np.clip(scores.astype(np.float64), EPSILON, 1.0 - EPSILON)
    logits = np.log(clipped) - np.log1p(-clipped)
    position = (logits + LOGIT_RANGE) / (2 * LOGIT_RANGE) * SCORE_BINS
    bins: npt.NDArray[np.int64] = np.clip(np.floor(position), 0, SCORE_BINS - 1).astype(np.int64)
    return bins


@dataclass
class Tally(ABC):
    """What every task's tally shares: bad records by reason, and the interface."""

    task: ClassVar[Task]
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    """Malformed records by reason (never scored)."""

    @property
    @abstractmethod
    def records(self) -> int:
        """Records scored."""

    @abstractmethod
    def add(self, labels: Numbers, outputs: Numbers) -> None:
        """Count a batch of scored records: labels as decoded, the model's outputs."""

    @abstractmethod
    def arrays(self) -> list[Numbers]:
        """The counts and sums as arrays (shapes fixed by the task), to be summed over a group."""

    @abstractmethod
    def from_arrays(self, arrays: list[Numbers]) -> Tally:
        """A tally like this one holding `arrays` (as `arrays` gives them), bad records aside."""

    @abstractmethod
    def figures(self) -> dict[str, float]:
        """The task's figures (NaN when undefined): `loss`, and `accuracy`, `auc`, `macroF1`
        or `rmse`, `mae`, `r2`."""

    @abstractmethod
    def details(self) -> dict[str, Any]:
        """What the results show beyond the figures (the confusion matrix, ...)."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The counts and sums as JSON (without the task and the bad records)."""

    @property
    def headline(self) -> tuple[str, float]:
        """The task's one figure for a table: accuracy, or RMSE for regression."""
        name = "rmse" if self.task == "regression" else "accuracy"
        return name, self.figures()[name]

    @property
    def bad_records(self) -> int:
        """Records set aside as malformed."""
        return sum(self.bad_by_reason.values())

    def add_bad(self, counts: dict[str, int]) -> None:
        """Count malformed records by reason."""
        for reason, count in counts.items():
            if count:
                self.bad_by_reason[reason] = self.bad_by_reason.get(reason, 0) + count

    def merged(self, other: Tally) -> Tally:
        """A new tally holding both (tallies of the same task and classes)."""
        if type(other) is not type(self):
            raise ValueError(f"cannot merge a {other.task} tally into a {self.task} one")
        whole = self.from_arrays([mine + theirs for mine, theirs
                                  in zip(self.arrays(), other.arrays(), strict=True)])
        whole.add_bad(self.bad_by_reason)
        whole.add_bad(other.bad_by_reason)
        return whole

    def summary(self) -> dict[str, Any]:
        """The figures users read, the details, and the bad records."""
        return {"task": self.task, "records": self.records, **self.figures(), **self.details(),
                "badRecords": self.bad_records,
                "badRecordsByReason": dict(sorted(self.bad_by_reason.items()))}

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (read back by `tally_from_json`)."""
        return {"task": self.task, **self.state(),
                "badByReason": dict(sorted(self.bad_by_reason.items()))}


@dataclass
class BinaryTally(Tally):
    """Confusion counts, the loss sum and score histograms of a binary classifier."""

    task: ClassVar[Task] = "binary"
    true_positives: int = 0
    false_positives: int = 0
    true_negatives: int = 0
    false_negatives: int = 0
    loss_sum: float = 0.0
    """Sum of per-record binary cross-entropy (natural log)."""
    positive_bins: npt.NDArray[np.int64] = field(default_factory=_zero_bins)
    """Score histogram of records labelled 1."""
    negative_bins: npt.NDArray[np.int64] = field(default_factory=_zero_bins)
    """Score histogram of records labelled 0."""

    @property
    def records(self) -> int:
        return (self.true_positives + self.false_positives
                + self.true_negatives + self.false_negatives)

    def add(self, labels: Numbers, outputs: Numbers) -> None:
        self.add_scores(labels, outputs)

    def add_scores(self, labels: Numbers, scores: Numbers) -> None:
        """Count a batch of scored records (labels 0/1, scores = predicted probability of 1)."""
        labels = np.asarray(labels).reshape(-1)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if labels.shape != scores.shape:
            raise ValueError(f"{labels.shape[0]} labels for {scores.shape[0]} scores")
        positive = labels > 0.5
        predicted = scores > THRESHOLD
        self.true_positives += int(np.count_nonzero(positive & predicted))
        self.false_positives += int(np.count_nonzero(~positive & predicted))
        self.true_negatives += int(np.count_nonzero(~positive & ~predicted))
        self.false_negatives += int(np.count_nonzero(positive & ~predicted))
        clipped = np.clip(scores, EPSILON, 1.0 - EPSILON)
        losses = np.where(positive, -np.log(clipped), -np.log1p(-clipped))
        self.loss_sum += float(losses.sum())
        bins = score_bins(scores)
        self.positive_bins += np.bincount(bins[positive], minlength=SCORE_BINS)
        self.negative_bins += np.bincount(bins[~positive], minlength=SCORE_BINS)

    def arrays(self) -> list[Numbers]:
        counts = np.array([self.true_positives, self.false_positives, self.true_negatives,
                           self.false_negatives], np.int64)
        return [counts, np.array([self.loss_sum]), self.positive_bins, self.negative_bins]

    def from_arrays(self, arrays: list[Numbers]) -> BinaryTally:
        counts, loss, positive, negative = arrays
        tp, fp, tn, fn = (int(count) for count in counts)
        return BinaryTally(true_positives=tp, false_positives=fp, true_negatives=tn,
                           false_negatives=fn, loss_sum=float(loss[0]),
                           positive_bins=np.asarray(positive, np.int64),
                           negative_bins=np.asarray(negative, np.int64))

    def auc(self) -> float:
        """ROC AUC: the chance a positive outscores a negative (ties in a bin count half)."""
        positives = int(self.positive_bins.sum())
        negatives = int(self.negative_bins.sum())
        if positives == 0 or negatives == 0:
            return math.nan
        negatives_below = np.cumsum(self.negative_bins) - self.negative_bins
        wins = self.positive_bins * (negatives_below + 0.5 * self.negative_bins)
        return float(wins.sum() / (positives * negatives))

    def figures(self) -> dict[str, float]:
        records = self.records
        return {
            "loss": self.loss_sum / records if records else math.nan,
            "accuracy": (self.true_positives + self.true_negatives) / records
            if records else math.nan,
            "auc": self.auc(),
        }

    def details(self) -> dict[str, Any]:
        predicted_positive = self.true_positives + self.false_positives
        actual_positive = self.true_positives + self.false_negatives
        return {
            "precision": self.true_positives / predicted_positive if predicted_positive else 0.0,
            "recall": self.true_positives / actual_positive if actual_positive else 0.0,
            "confusionMatrix": {
                "truePositives": self.true_positives,
                "falsePositives": self.false_positives,
                "trueNegatives": self.true_negatives,
                "falseNegatives": self.false_negatives,
            },
        }

    def state(self) -> dict[str, Any]:
        """Histograms are stored sparsely (bin -> count)."""
        return {
            "truePositives": self.true_positives,
            "falsePositives": self.false_positives,
            "trueNegatives": self.true_negatives,
            "falseNegatives": self.false_negatives,
            "lossSum": self.loss_sum,
            "positiveBins": _sparse(self.positive_bins),
            "negativeBins": _sparse(self.negative_bins),
        }

    @classmethod
    def from_state(cls, document: dict[str, Any]) -> BinaryTally:
        """Read back `state`."""
        return cls(true_positives=int(document["truePositives"]),
                   false_positives=int(document["falsePositives"]),
                   true_negatives=int(document["trueNegatives"]),
                   false_negatives=int(document["falseNegatives"]),
                   loss_sum=float(document["lossSum"]),
                   positive_bins=_dense(document["positiveBins"], SCORE_BINS),
                   negative_bins=_dense(document["negativeBins"], SCORE_BINS))


@dataclass
class MulticlassTally(Tally):
    """The confusion matrix and the loss sum of a classifier of several classes."""

    task: ClassVar[Task] = "multiclass"
    classes: tuple[str, ...] = ()
    """Class names, in output order."""
    confusion: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    """[true class, predicted class] counts."""
    loss_sum: float = 0.0
    """Sum of per-record categorical cross-entropy (natural log)."""

    def __post_init__(self) -> None:
        if self.confusion.shape != (len(self.classes),) * 2:
            self.confusion = np.zeros((len(self.classes),) * 2, np.int64)

    @property
    def records(self) -> int:
        return int(self.confusion.sum())

    def add(self, labels: Numbers, outputs: Numbers) -> None:
        """Count a batch: labels are class indices, outputs each record's class probabilities."""
        width = len(self.classes)
        truth = np.asarray(labels).reshape(-1).astype(np.int64)
        probabilities = np.asarray(outputs, np.float64).reshape(-1, width)
        if len(truth) != len(probabilities):
            raise ValueError(f"{len(truth)} labels for {len(probabilities)} outputs")
        predicted = probabilities.argmax(axis=1) if len(truth) else truth
        self.confusion += np.bincount(truth * width + predicted,
                                      minlength=width * width).reshape(width, width)
        chosen = np.clip(probabilities[np.arange(len(truth)), truth], EPSILON, 1.0)
        self.loss_sum += float(-np.log(chosen).sum())

    def arrays(self) -> list[Numbers]:
        return [self.confusion, np.array([self.loss_sum])]

    def from_arrays(self, arrays: list[Numbers]) -> MulticlassTally:
        return MulticlassTally(classes=self.classes,
                               confusion=np.asarray(arrays[0], np.int64),
                               loss_sum=float(arrays[1][0]))

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support of each class."""
        correct = np.diag(self.confusion).astype(np.float64)
        support = self.confusion.sum(axis=1).astype(np.float64)
        predicted = self.confusion.sum(axis=0).astype(np.float64)
        result = {}
        for index, name in enumerate(self.classes):
            precision = correct[index] / predicted[index] if predicted[index] else 0.0
            recall = correct[index] / support[index] if support[index] else 0.0
            f1 = (2 * precision * recall / (precision + recall)) if precision + recall else 0.0
            result[name] = {"precision": precision, "recall": recall, "f1": f1,
                            "support": int(support[index])}
        return result

    def figures(self) -> dict[str, float]:
        records = self.records
        occurring = (self.confusion.sum(axis=0) + self.confusion.sum(axis=1)) > 0
        f1 = np.array([figures["f1"] for figures in self.per_class().values()])
        return {
            "loss": self.loss_sum / records if records else math.nan,
            "accuracy": float(np.trace(self.confusion)) / records if records else math.nan,
            "macroF1": float(f1[occurring].mean()) if occurring.any() else math.nan,
        }

    def details(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "perClass": self.per_class(),
                "confusionMatrix": {"rows": "true class", "columns": "predicted class",
                                    "counts": self.confusion.tolist()}}

    def state(self) -> dict[str, Any]:
        """The confusion matrix is stored sparsely (`true,predicted` -> count)."""
        width, flat = len(self.classes), self.confusion.reshape(-1)
        return {"classes": list(self.classes), "lossSum": self.loss_sum,
                "confusion": {f"{index // width},{index % width}": int(flat[index])
                              for index in np.flatnonzero(flat).tolist()}}

    @classmethod
    def from_state(cls, document: dict[str, Any]) -> MulticlassTally:
        """Read back `state`."""
        classes = tuple(str(name) for name in document["classes"])
        confusion = np.zeros((len(classes),) * 2, np.int64)
        for cell, count in document["confusion"].items():
            row, column = (int(part) for part in cell.split(","))
            confusion[row, column] = int(count)
        return cls(classes=classes, confusion=confusion, loss_sum=float(document["lossSum"]))


REGRESSION_SUMS = ("count", "errorSum", "squaredErrorSum", "absoluteErrorSum", "labelSum",
                   "squaredLabelSum")
"""The float64 sums a regression tally keeps, in order (an error is prediction - label)."""


@dataclass
class RegressionTally(Tally):
    """Sums of errors and labels of a regressor (in the label's units)."""

    task: ClassVar[Task] = "regression"
    sums: npt.NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(len(REGRESSION_SUMS), np.float64))
    """`REGRESSION_SUMS`, in that order."""

    @property
    def records(self) -> int:
        return round(float(self.sums[0]))

    def add(self, labels: Numbers, outputs: Numbers) -> None:
        """Count a batch: labels and predictions in the label's units."""
        truth = np.asarray(labels, np.float64).reshape(-1)
        predicted = np.asarray(outputs, np.float64).reshape(-1)
        if truth.shape != predicted.shape:
            raise ValueError(f"{truth.shape[0]} labels for {predicted.shape[0]} predictions")
        error = predicted - truth
        self.sums += np.array([len(truth), error.sum(), np.square(error).sum(),
                               np.abs(error).sum(), truth.sum(), np.square(truth).sum()])

    def arrays(self) -> list[Numbers]:
        return [self.sums]

    def from_arrays(self, arrays: list[Numbers]) -> RegressionTally:
        return RegressionTally(sums=np.asarray(arrays[0], np.float64).copy())

    def figures(self) -> dict[str, float]:
        count, _, squares, absolute, total, total_squares = self.sums.tolist()
        if not count:
            return {"loss": math.nan, "rmse": math.nan, "mae": math.nan, "r2": math.nan}
        spread = total_squares - total * total / count
        return {"loss": math.nan, "rmse": math.sqrt(squares / count), "mae": absolute / count,
                "r2": 1.0 - squares / spread if spread > 0 else math.nan}

    def details(self) -> dict[str, Any]:
        count, errors = self.sums[0], self.sums[1]
        return {"meanError": float(errors / count) if count else math.nan,
                "labelMean": float(self.sums[4] / count) if count else math.nan}

    def state(self) -> dict[str, Any]:
        return dict(zip(REGRESSION_SUMS, self.sums.tolist(), strict=True))

    @classmethod
    def from_state(cls, document: dict[str, Any]) -> RegressionTally:
        """Read back `state`."""
        return cls(sums=np.array([float(document[name]) for name in REGRESSION_SUMS]))


def new_tally(task: Task = "binary", classes: tuple[str, ...] | None = None) -> Tally:
    """An empty tally of `task` (multiclass: of `classes`)."""
    if task == "multiclass":
        if not classes:
            raise ValueError("a multiclass tally needs its classes")
        return MulticlassTally(classes=tuple(classes))
    return RegressionTally() if task == "regression" else BinaryTally()


def tally_from_json(document: dict[str, Any]) -> Tally:
    """Read back `Tally.to_json` (a tally without a task is binary: ledgers before tasks)."""
    task = document.get("task", "binary")
    kinds: dict[str, type[BinaryTally] | type[MulticlassTally] | type[RegressionTally]] = {
        "binary": BinaryTally, "multiclass": MulticlassTally, "regression": RegressionTally}
    if task not in kinds:
        raise ValueError(f"unknown task {task!r} in a tally")
    tally: Tally = kinds[task].from_state(document)
    tally.add_bad({str(k): int(v) for k, v in document.get("badByReason", {}).items()})
    return tally


def _sparse(bins: npt.NDArray[np.int64]) -> dict[str, int]:
    return {str(index): int(bins[index]) for index in np.flatnonzero(bins)}


def _dense(sparse: dict[str, int], size: int) -> npt.NDArray[np.int64]:
    bins = np.zeros(size, np.int64)
    for index, count in sparse.items():
        bins[int(index)] = count
    return bins
