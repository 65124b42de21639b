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
unit-tested directly. The aggregates are the task's tally
(`workload.modes.tally`): confusion counts and score histograms (binary), a
confusion matrix (multiclass), sums of errors and squares (regression), each
small however many records are scored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workload.artifacts import write_json_atomic
from workload.identity import RunIdentity
from workload.modes.tally import BinaryTally, Tally, tally_from_json

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
"""Layout version of the ledger file (a tally without a task is a binary one)."""


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
    tally: Tally = field(default_factory=BinaryTally)
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
            tally_from_json(document["tally"]),
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
    tally = first.tally
    offsets: dict[int, int] = {}
    for ledger in ledgers[1:]:
        tally = tally.merged(ledger.tally)
    for ledger in ledgers:
        for partition, offset in ledger.next_offsets.items():
            offsets[partition] = max(offset, offsets.get(partition, offset))
    return replace(first, next_offsets=dict(sorted(offsets.items())), tally=tally,
                   finished=all(ledger.finished for ledger in ledgers))
