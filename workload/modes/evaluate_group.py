"""Evaluation by several evaluators (`spec.evaluator.replicas` > 1): shares, ledgers, one result.

- The plan: the topic's bounds, captured once by whichever evaluator comes
  first and written to the job's folder (created once: linked into place,
  which fails for every later evaluator, who reads it instead). Every
  evaluator cuts the same bounds with `workload.slices` (whole partitions, or
  offset slices of a partition when there are fewer partitions than
  evaluators). Records written after the capture belong to the evaluator
  that reads the end of their partition.
- Each evaluator keeps a ledger of its own and scores its share exactly
  once, as one evaluator scores a topic (`workload.modes.evaluate`). It
  commits the consumer group's offsets of the partitions it reads whole; a
  partition shared by several is committed when all its slices are scored,
  by the evaluator of its last slice.
- The merge: an evaluator that has scored its share marks its ledger
  finished and waits until every evaluator's is, then merges them
  (`ledger.merge_ledgers`: counts, loss sums, score histograms and bad
  records add up) and reports the merged figures, which are those one
  evaluator computes on the same records (AUC from the merged histograms).
  Every evaluator's report is the whole evaluation's; the operator reads
  replica 0's.

The plan and the ledgers carry the evaluator count: a consumer group begun
with another count cannot be continued (its ledgers cover other shares).
No TensorFlow here.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from workload.artifacts import Artifacts, read_json
from workload.identity import RunIdentity
from workload.kafka.bounds import PartitionOffsets
from workload.modes.ledger import Ledger, merge_ledgers
from workload.replica import Replica
from workload.slices import readers, replica_ranges

WAIT_S = 0.5
"""Seconds between looks at the other evaluators' ledgers."""


class GroupMismatch(RuntimeError):
    """The consumer group's evaluation was begun with another number of evaluators."""


@dataclass(frozen=True)
class Share:
    """What one evaluator scores: its ranges of the captured bounds, and the partitions whose
    later records it follows or whose offsets it commits."""

    ranges: PartitionOffsets
    follows: frozenset[int]
    """Partitions whose records after the captured end are this evaluator's."""
    whole: frozenset[int]
    """Partitions it reads whole: it commits their offsets as it goes."""
    last_slices: frozenset[int]
    """Partitions shared with others whose last slice is its own: it commits them at the end."""

    def limit(self, ends: dict[int, int]) -> dict[int, int]:
        """How far it reads each of its partitions, given their end offsets now."""
        return {p: ends.get(p, stop) if p in self.follows else min(ends.get(p, stop), stop)
                for p, (_, stop) in self.ranges.items()}


def whole_topic(bounds: PartitionOffsets) -> Share:
    """The share of a lone evaluator: everything."""
    every = frozenset(bounds)
    return Share(dict(bounds), every, every, frozenset())


def share_of(bounds: PartitionOffsets, replica: Replica) -> Share:
    """Evaluator `replica.index`'s share of `bounds`."""
    ranges = replica_ranges(bounds, replica.count)[replica.index]
    who = readers(bounds, replica.count)
    return Share(ranges,
                 follows=frozenset(p for p in ranges if who[p][-1] == replica.index),
                 whole=frozenset(p for p in ranges if who[p] == [replica.index]),
                 last_slices=frozenset(p for p in ranges
                                       if len(who[p]) > 1 and who[p][-1] == replica.index))


def plan_key(identity: RunIdentity, topic: str) -> str:
    """Names the plans of one job, spec and topic (no other's ever match)."""
    text = f"{identity.job_uid}\n{identity.spec_digest}\n{topic}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def agreed_bounds(artifacts: Artifacts, topic: str, consumer_group: str,
                  identity: RunIdentity, replica: Replica,
                  capture: PartitionOffsets) -> PartitionOffsets:
    """The plan's bounds: those already written, or `capture` written now if none is."""
    path = artifacts.evaluation_plan(consumer_group, plan_key(identity, topic))
    if not path.exists():
        document = {"evaluators": replica.count, "jobUid": identity.job_uid,
                    "bounds": {str(p): list(span) for p, span in sorted(capture.items())}}
        _create_once(path, document)
    plan = read_json(path)
    if int(plan["evaluators"]) != replica.count:
        raise GroupMismatch(
            f"consumer group {consumer_group!r} was begun by {plan['evaluators']} evaluators; "
            f"continue it with evaluator.replicas {plan['evaluators']}, or evaluate with a new "
            "consumer group")
    return {int(p): (int(start), int(stop)) for p, (start, stop) in plan["bounds"].items()}


def check_lone_evaluator(artifacts: Artifacts, topic: str, consumer_group: str,
                         identity: RunIdentity) -> None:
    """Refuse to continue with one evaluator what several began."""
    plan = read_json(artifacts.evaluation_plan(consumer_group, plan_key(identity, topic)))
    if plan is not None:
        raise GroupMismatch(
            f"consumer group {consumer_group!r} was begun by {plan['evaluators']} evaluators; "
            f"continue it with evaluator.replicas {plan['evaluators']}, or evaluate with a new "
            "consumer group")


def check_no_lone_ledger(artifacts: Artifacts, consumer_group: str,
                         identity: RunIdentity) -> None:
    """Refuse to continue with several evaluators what one began."""
    lone, _ = Ledger.load_own(artifacts.ledger(consumer_group), identity)
    if lone is not None:
        raise GroupMismatch(
            f"consumer group {consumer_group!r} was begun by 1 evaluator; continue it with "
            "evaluator.replicas 1, or evaluate with a new consumer group")


def _create_once(path: Path, document: dict[str, object]) -> None:
    """Write `path` unless it exists; of evaluators racing, exactly one wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    try:
        with temporary.open("w") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)


def merged_when_all_finished(artifacts: Artifacts, consumer_group: str, replica: Replica,
                             identity: RunIdentity, model_digest: str,
                             stop: threading.Event) -> Ledger | None:
    """Every evaluator's ledger merged, once all are finished; `None` if stopped first."""
    paths = [artifacts.ledger(consumer_group, index, replica.count)
             for index in range(replica.count)]
    while not stop.is_set():
        ledgers = [Ledger.load(path) for path in paths]
        if all(ledger is not None and ledger.finished and ledger.model_digest == model_digest
               and identity.mismatch(ledger.job_uid, ledger.spec_digest) is None
               for ledger in ledgers):
            return merge_ledgers([ledger for ledger in ledgers if ledger is not None])
        stop.wait(WAIT_S)
    return None
