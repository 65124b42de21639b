"""The evaluator's ledger: aggregates and the Kafka offsets they cover, saved together.

An evaluation is "exactly once" when every record of the topic is counted
once in the final figures, however often the evaluator is killed and
restarted. Offsets committed to Kafka alone cannot promise that: they are
written apart from the figures, so a crash between the two either loses or
double-counts records. The ledger keeps both in one JSON file, replaced
atomically (`write_json_atomic`): whatever file a restarted evaluator finds
holds figures that cover exactly the offsets written next to them.

A ledger is continued only when it carries this job's uid and spec digest
(`workload.identity`); any other found in the folder is ignored with a
warning and scoring starts again from each partition's first record.

Everything here is pure Python and numpy (no TensorFlow, no Kafka), so it is
unit-tested directly. AUC is computed from score histograms (fixed bins in
logit space, fine enough for 1e-3 agreement with an exact rank computation)
so the ledger stays small however many records are scored.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from workload.artifacts import write_json_atomic
from workload.identity import RunIdentity

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
"""Layout version of the ledger file."""

SCORE_BINS = 8192
"""Histogram bins of scores, evenly spaced in logit space over [-LOGIT_RANGE, LOGIT_RANGE]."""

LOGIT_RANGE = 16.0
"""Scores are binned by logit; sigmoid(±16) is within 1.2e-7 of 0 and 1 (Keras clips at 1e-7)."""

EPSILON = 1e-7
"""Scores are clipped to [EPSILON, 1 - EPSILON] before the log loss, as Keras does."""

THRESHOLD = 0.5
"""A score above this is a positive prediction (Keras' `binary_accuracy`)."""


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
class Tally:
    """Running aggregates of an evaluation: confusion counts, loss, score histograms, bad ones."""

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
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    """Malformed records by reason (never scored)."""

    @property
    def records(self) -> int:
        """Records scored."""
        return (self.true_positives + self.false_positives
                + self.true_negatives + self.false_negatives)

    @property
    def bad_records(self) -> int:
        """Records set aside as malformed."""
        return sum(self.bad_by_reason.values())

    def add_scores(self, labels: npt.NDArray[np.floating[Any]],
                   scores: npt.NDArray[np.floating[Any]]) -> None:
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

    def add_bad(self, counts: dict[str, int]) -> None:
        """Count malformed records by reason."""
        for reason, count in counts.items():
            if count:
                self.bad_by_reason[reason] = self.bad_by_reason.get(reason, 0) + count

    def merged(self, other: Tally) -> Tally:
        """A new tally holding both."""
        bad = dict(self.bad_by_reason)
        for reason, count in other.bad_by_reason.items():
            bad[reason] = bad.get(reason, 0) + count
        return Tally(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.true_negatives + other.true_negatives,
            self.false_negatives + other.false_negatives,
            self.loss_sum + other.loss_sum,
            self.positive_bins + other.positive_bins,
            self.negative_bins + other.negative_bins,
            bad,
        )

    def auc(self) -> float:
        """ROC AUC: the chance a positive outscores a negative (ties in a bin count half)."""
        positives = int(self.positive_bins.sum())
        negatives = int(self.negative_bins.sum())
        if positives == 0 or negatives == 0:
            return math.nan
        negatives_below = np.cumsum(self.negative_bins) - self.negative_bins
        wins = self.positive_bins * (negatives_below + 0.5 * self.negative_bins)
        return float(wins.sum() / (positives * negatives))

    def summary(self) -> dict[str, Any]:
        """The figures users read: loss, accuracy, AUC, precision, recall, confusion matrix."""
        records = self.records
        predicted_positive = self.true_positives + self.false_positives
        actual_positive = self.true_positives + self.false_negatives
        return {
            "records": records,
            "loss": self.loss_sum / records if records else math.nan,
            "accuracy": (self.true_positives + self.true_negatives) / records
            if records else math.nan,
            "auc": self.auc(),
            "precision": self.true_positives / predicted_positive if predicted_positive else 0.0,
            "recall": self.true_positives / actual_positive if actual_positive else 0.0,
            "confusionMatrix": {
                "truePositives": self.true_positives,
                "falsePositives": self.false_positives,
                "trueNegatives": self.true_negatives,
                "falseNegatives": self.false_negatives,
            },
            "badRecords": self.bad_records,
            "badRecordsByReason": dict(sorted(self.bad_by_reason.items())),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form; histograms are stored sparsely (bin -> count)."""
        return {
            "truePositives": self.true_positives,
            "falsePositives": self.false_positives,
            "trueNegatives": self.true_negatives,
            "falseNegatives": self.false_negatives,
            "lossSum": self.loss_sum,
            "positiveBins": _sparse(self.positive_bins),
            "negativeBins": _sparse(self.negative_bins),
            "badByReason": dict(sorted(self.bad_by_reason.items())),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Tally:
        """Read back `to_json`."""
        return cls(
            int(document["truePositives"]),
            int(document["falsePositives"]),
            int(document["trueNegatives"]),
            int(document["falseNegatives"]),
            float(document["lossSum"]),
            _dense(document["positiveBins"]),
            _dense(document["negativeBins"]),
            {str(k): int(v) for k, v in document["badByReason"].items()},
        )


def _sparse(bins: npt.NDArray[np.int64]) -> dict[str, int]:
    return {str(index): int(bins[index]) for index in np.flatnonzero(bins)}


def _dense(sparse: dict[str, int]) -> npt.NDArray[np.int64]:
    bins = _zero_bins()
    for index, count in sparse.items():
        bins[int(index)] = count
    return bins


class LedgerMismatch(ValueError):
    """A ledger written for another topic or model: its figures cannot be continued."""


@dataclass(frozen=True)
class Ledger:
    """One consumer group's evaluation: its tally and, per partition, the next offset to score."""

    topic: str
    consumer_group: str
    model_digest: str
    """SHA-256 of the model file the figures were computed with."""
    next_offsets: dict[int, int] = field(default_factory=dict)
    """Per partition, the first offset not yet in the tally."""
    tally: Tally = field(default_factory=Tally)
    job_uid: str = ""
    """The job whose evaluator wrote it (see `workload.identity`); empty in old ledgers."""
    spec_digest: str = ""
    """Digest of the spec's data, train and model settings it was written with."""
    finished: bool = False
    """The evaluator that keeps it has scored its share (several evaluators: it may be merged)."""

    def advanced(self, chunk: Tally, next_offsets: dict[int, int]) -> Ledger:
        """The ledger after a chunk: its tally added and the offsets it covered moved past."""
        for partition, offset in next_offsets.items():
            if offset < self.next_offsets.get(partition, 0):
                raise ValueError(f"partition {partition}: offset {offset} moves backwards")
        return replace(self, tally=self.tally.merged(chunk),
                       next_offsets={**self.next_offsets, **next_offsets})

    def check(self, topic: str, consumer_group: str, model_digest: str) -> None:
        """Refuse to continue figures of another topic, group or model."""
        if self.topic != topic or self.consumer_group != consumer_group:
            raise LedgerMismatch(
                f"the ledger covers topic {self.topic!r} and group {self.consumer_group!r}, "
                f"not {topic!r} and {consumer_group!r}")
        if self.model_digest != model_digest:
            raise LedgerMismatch(
                f"consumer group {consumer_group!r} already holds figures of another model; "
                "evaluate a new model with a new consumer group (or delete the ledger)")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "version": LEDGER_VERSION,
            "topic": self.topic,
            "consumerGroup": self.consumer_group,
            "modelDigest": self.model_digest,
            "nextOffsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
            "tally": self.tally.to_json(),
            "jobUid": self.job_uid,
            "specDigest": self.spec_digest,
            "finished": self.finished,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Ledger:
        """Read back `to_json`."""
        if document.get("version") != LEDGER_VERSION:
            raise ValueError(f"unknown ledger version {document.get('version')!r}")
        return cls(
            str(document["topic"]),
            str(document["consumerGroup"]),
            str(document["modelDigest"]),
            {int(p): int(o) for p, o in document["nextOffsets"].items()},
            Tally.from_json(document["tally"]),
            str(document.get("jobUid") or ""),
            str(document.get("specDigest") or ""),
            bool(document.get("finished", False)),
        )

    def save(self, path: Path) -> None:
        """Replace the ledger file atomically (a crash leaves the old or the new one)."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Ledger | None:
        """The ledger at `path`, or `None` when there is none yet."""
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text()))

    @classmethod
    def load_own(cls, path: Path, identity: RunIdentity) -> tuple[Ledger | None, str | None]:
        """This job's ledger at `path` (or `None`), and why one found there was ignored."""
        ledger = cls.load(path)
        if ledger is None:
            return None, None
        why = identity.mismatch(ledger.job_uid, ledger.spec_digest)
        if why is None:
            return ledger, None
        message = f"ignored the ledger {path}: {why}; scoring starts again at the first record"
        log.warning(message)
        return None, message


def merge_ledgers(ledgers: Sequence[Ledger]) -> Ledger:
    """One ledger for the records of several (evaluators that scored disjoint shares of a topic
    with the same model): confusion counts, loss sums, score histograms and bad records by
    reason add up, so the merged figures (AUC included) are those one evaluator would have
    computed on the same records; each partition's next offset is the furthest any reached."""
    if not ledgers:
        raise ValueError("no ledger to merge")
    first = ledgers[0]
    for other in ledgers[1:]:
        other.check(first.topic, first.consumer_group, first.model_digest)
    tally = Tally()
    offsets: dict[int, int] = {}
    for ledger in ledgers:
        tally = tally.merged(ledger.tally)
        for partition, offset in ledger.next_offsets.items():
            offsets[partition] = max(offset, offsets.get(partition, offset))
    return replace(first, next_offsets=dict(sorted(offsets.items())), tally=tally,
                   finished=all(ledger.finished for ledger in ledgers))
