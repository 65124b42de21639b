"""Evaluate mode: score each record of a topic exactly once per consumer group, across crashes.

Why not `KafkaGroupIODataset` as in TensorFlow's tutorial: it yields only
(message, key), never a partition or an offset, and its consumer commits
offsets as records are read, before the model has scored them. A process
killed between the two loses those records; one restarted without commits
counts them twice. No checkpoint built on it can say which records it covers.

How exactly-once is kept here:
- The **ledger** (`Artifacts.ledger(group)`, see `workload.modes.ledger`) is
  the source of truth: the aggregates (confusion counts, loss sum, score
  histograms for AUC, bad records by reason) together with, per partition,
  the next offset they cover, in one file replaced atomically.
- At start the evaluator captures each partition's end offset, then resumes
  from the ledger's offsets (or the start of the topic when there is none).
- It reads exact offset ranges (`workload.kafka.ranges`) in chunks of
  `chunk_records` per partition (a chunk that comes back short fails the run
  rather than being counted as covered); after each chunk it saves the ledger, THEN
  commits the same offsets to the consumer group. The group's committed
  offsets are the public cursor (`kafka-consumer-groups --describe`, lag).
- A kill before the save re-reads the chunk (its figures were never saved);
  a kill between save and commit only leaves the commit behind, and the next
  run (which starts from the ledger) commits it again. Re-running a finished
  group scores nothing and reports the same figures.
- The ledger remembers the model's SHA-256: figures of another model are
  never continued (a new model needs a new consumer group). It also carries
  the job's uid and spec digest: a ledger of another job, or of other data
  or model settings, is ignored with a warning (`Ledger.load_own`).
- The model is the job's own trained one, or with `spec.model.source` the
  other job's, read from its read-only folder (`Artifacts.source_model`).
- Bad records are counted by reason in the ledger (exactly once too) and
  never scored. When a dead-letter topic is set they are sent there before
  the ledger is saved, so a kill may send a chunk's bad records twice
  (at-least-once); counts in the figures stay exact.

`evaluate.streamTimeoutMs`: `0` stops at the end offsets captured at start.
A positive value keeps following the topic after that: end offsets are
polled, new records are scored as above, and the run ends once no new record
has arrived for that many milliseconds (as `KafkaGroupIODataset` waits after
its last record). `-1` follows the topic until stopped (SIGTERM, or
`stop_event`). A stop is honoured between chunks: the figures so far are
reported with the remaining lag, and a later run continues from the ledger.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workload import progress as live
from workload.artifacts import Artifacts, write_json_atomic
from workload.contract import FailureReason
from workload.identity import RunIdentity
from workload.kafka.admin import TopicMissing
from workload.kafka.connection import KafkaConnection
from workload.kafka.group_cursor import GroupCursor
from workload.modes.evaluate_group import (
    GroupMismatch,
    agreed_bounds,
    check_lone_evaluator,
    check_no_lone_ledger,
    merged_when_all_finished,
    share_of,
    whole_topic,
)
from workload.modes.ledger import Ledger, LedgerMismatch
from workload.modes.signals import stop_on_sigterm
from workload.modes.tally import Tally, new_tally
from workload.permanent import ShapeMismatch, reason_of
from workload.replica import SINGLE, Replica
from workload.spec import FOREVER, StreamingTrainingJobSpec
from workload.status import Metrics, PodReport

if TYPE_CHECKING:
    from workload.data.decode import BadRecord
    from workload.modes.scoring import BadRecordSink

DEFAULT_CHUNK_RECORDS = 16384
"""Records per partition scored between two ledger saves: bounds the work a kill can cost."""

POLL_INTERVAL_S = 0.5
"""How often end offsets are polled while waiting for new records (streamTimeoutMs != 0)."""

log = logging.getLogger(__name__)


class EvaluationFailed(RuntimeError):
    """The evaluation cannot produce trustworthy figures; the message says why."""


def model_digest(path: Path) -> str:
    """SHA-256 of a model file (ties a ledger to the model that produced its figures)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_evaluate(name: str, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
                 artifacts: Artifacts, progress: bool = True, *,
                 chunk_records: int = DEFAULT_CHUNK_RECORDS,
                 stop_event: threading.Event | None = None,
                 job_uid: str | None = None, replica: Replica = SINGLE) -> PodReport:
    """Score the evaluation topic with the trained model; a failed report says why it could not.

    `job_uid` is the job's uid (`None` for a local run): only its own ledger is continued.
    `replica` is this evaluator's place among several (`workload.modes.evaluate_group`).
    """
    identity = RunIdentity.of(name, spec, job_uid)
    try:
        with stop_on_sigterm(stop_event or threading.Event()) as stop:
            return _evaluate(name, spec, identity, connection, artifacts, progress,
                             chunk_records, stop, replica)
    except (EvaluationFailed, LedgerMismatch, TopicMissing, GroupMismatch, ShapeMismatch) as error:
        return PodReport(mode="evaluate", ok=False, message=str(error), reason=reason_of(error))


def model_to_evaluate(spec: StreamingTrainingJobSpec, artifacts: Artifacts) -> Path:
    """The model file: the one `spec.model.source` names, else the job's own trained one."""
    model = artifacts.source_model if spec.model.source is not None else artifacts.keras_model
    if model is None:
        raise EvaluationFailed("spec.model.source is set but no source folder is mounted")
    if not model.exists():
        hint = ("the source has not trained a model there" if spec.model.source is not None
                else "run train first")
        raise EvaluationFailed(f"no trained model at {model}: {hint}")
    return model


def _evaluate(name: str, spec: StreamingTrainingJobSpec, identity: RunIdentity,
              connection: KafkaConnection, artifacts: Artifacts, progress: bool,
              chunk_records: int, stop_event: threading.Event, replica: Replica) -> PodReport:
    # TensorFlow loads only when there is something to evaluate.
    from workload.model.build import load_model
    from workload.model.task import task_of
    from workload.model.user import register_user_layers
    from workload.modes.scoring import Scorer, ScoringError

    evaluate = spec.evaluate
    if evaluate is None:
        raise EvaluationFailed("spec.evaluate is not set: nothing to evaluate")
    group = evaluate.consumer_group
    if replica.grouped:
        check_no_lone_ledger(artifacts, group, identity)
    else:
        check_lone_evaluator(artifacts, evaluate.topic, group, identity)
    model = model_to_evaluate(spec, artifacts)
    digest = model_digest(model)
    register_user_layers(spec.model)  # a `UserModelError` is permanent: the runner reports it
    network = load_model(model, spec.data)
    facts = task_of(network)
    if facts.task != spec.model.task:
        raise EvaluationFailed(f"the model at {model} predicts task {facts.task}, "
                               f"spec.model.task says {spec.model.task}")
    ledger_path = artifacts.ledger(group, replica.index, replica.count)
    saved, ignored = Ledger.load_own(ledger_path, identity)
    ledger = saved or Ledger(evaluate.topic, group, digest,
                             tally=new_tally(facts.task, facts.classes),
                             job_uid=identity.job_uid, spec_digest=identity.spec_digest)
    ledger.check(evaluate.topic, group, digest)
    if ledger.finished:
        ledger = replace(ledger, finished=False)
        ledger.save(ledger_path)  # the merge waits for this run, not the last one

    merged: Ledger | None = None
    started = time.monotonic()
    scored_now = 0
    with GroupCursor(connection, evaluate.topic, group) as cursor:
        bounds = cursor.bounds()
        ends = {p: end for p, (_, end) in bounds.items()}
        share = whole_topic(bounds)
        if replica.grouped:
            bounds = agreed_bounds(artifacts, evaluate.topic, group, identity, replica, bounds)
            share = share_of(bounds, replica)
            ends = share.limit(ends)
        position = _resume_positions(ledger, share.ranges)
        scorer = Scorer(network, spec.data, connection, evaluate.topic, share.ranges,
                        position, evaluate.batch_size, spec.kafka.client,
                        dead_letter_sink(spec, connection))
        of_group = _group_progress(artifacts, group, replica, bounds)
        bar = _ProgressBar(progress, sum(ends[p] - position[p] for p in ends), of_group)
        last_arrival = time.monotonic()
        try:
            while True:
                while any(position[p] < ends[p] for p in ends) and not stop_event.is_set():
                    ranges = {p: (position[p], min(ends[p], position[p] + chunk_records))
                              for p in ends}
                    try:
                        chunk = scorer.score(ranges)
                    except ScoringError as error:
                        raise EvaluationFailed(str(error)) from None
                    scored_now += chunk.records + chunk.bad_records
                    position = {p: stop for p, (_, stop) in ranges.items()}
                    ledger = ledger.advanced(chunk, position)
                    ledger.save(ledger_path)  # first the figures with their offsets ...
                    _commit(cursor, position, share.whole)  # ... then the public cursor
                    bar.advance(sum(stop - start for start, stop in ranges.values()),
                                ledger.tally.summary())
                grown, last_arrival = _wait_for_records(
                    cursor, ends, share.limit, last_arrival, evaluate.stream_timeout_ms,
                    stop_event, bar)
                if grown is None:
                    break
                ends = grown
        finally:
            bar.close()
        _commit(cursor, position, share.whole)  # a run killed after its last save left this
        final_ends = cursor.end_offsets()
        if replica.grouped and not stop_event.is_set():
            ledger = replace(ledger, finished=True)
            ledger.save(ledger_path)
            merged = merged_when_all_finished(artifacts, group, replica, identity, digest,
                                              stop_event)
            if merged is not None:
                _commit(cursor, merged.next_offsets, share.last_slices)
                if of_group is not None:  # every evaluator has finished: the group's last figures
                    done, total, figures = of_group()
                    live.report(records=done, records_total=total, loss=figures.get("loss"),
                                accuracy=figures.get("accuracy"), auc=figures.get("auc"))
    elapsed = time.monotonic() - started
    left = (sum(max(0, end - position[p]) for p, end in share.limit(final_ends).items())
            if stop_event.is_set() else 0)
    if replica.grouped:
        if merged is None:
            return PodReport(mode="evaluate", ok=False, resume_ignored=ignored, message=(
                f"stopped before every evaluator finished ({left} records of its own share "
                "unscored); a rerun continues from the ledgers"))
        ledger = merged
    return _report(name, spec, artifacts, model, ledger, bounds, final_ends, scored_now,
                   elapsed, left, ignored, replica)


def _commit(cursor: GroupCursor, position: dict[int, int], partitions: frozenset[int]) -> None:
    """Commit the offsets of `partitions` (those this evaluator commits), if any."""
    offsets = {p: offset for p, offset in position.items() if p in partitions}
    if offsets:
        cursor.commit(offsets)


def dead_letter_sink(spec: StreamingTrainingJobSpec,
                     connection: KafkaConnection) -> BadRecordSink | None:
    """A sender of bad records to `data.deadLetterTopic` (reason in a header), if one is set."""
    topic = spec.data.dead_letter_topic
    if topic is None or spec.evaluate is None:
        return None
    from workload.kafka.dead_letter import send_dead_letters

    source = spec.evaluate.topic

    def send(records: list[BadRecord]) -> None:
        # Acknowledged before the ledger that counts them is saved.
        send_dead_letters(connection, topic, source, records)

    return send


def _resume_positions(ledger: Ledger, bounds: dict[int, tuple[int, int]]) -> dict[int, int]:
    """Where each partition resumes: the ledger's offset, or the partition's first record."""
    position = {}
    for partition, (start, _) in bounds.items():
        saved = ledger.next_offsets.get(partition, start)
        if saved < start:
            log.warning("partition %d: records %d..%d were deleted before being scored",
                        partition, saved, start - 1)
        position[partition] = max(saved, start)
    return position


def _wait_for_records(cursor: GroupCursor, ends: dict[int, int],
                      limit: Callable[[dict[int, int]], dict[int, int]], last_arrival: float,
                      stream_timeout_ms: int, stop_event: threading.Event,
                      bar: _ProgressBar) -> tuple[dict[int, int] | None, float]:
    """New end offsets (of the share: `limit`) once records arrive, or `None` when the stream
    timed out or was stopped."""
    if stream_timeout_ms == 0 or stop_event.is_set():
        return None, last_arrival
    while not stop_event.is_set():
        now_ends = limit(cursor.end_offsets())
        if any(now_ends[p] > ends.get(p, 0) for p in now_ends):
            bar.grow(sum(now_ends[p] - ends.get(p, 0) for p in now_ends))
            return now_ends, time.monotonic()
        waited_ms = (time.monotonic() - last_arrival) * 1000
        if stream_timeout_ms != FOREVER and waited_ms >= stream_timeout_ms:
            return None, last_arrival
        stop_event.wait(POLL_INTERVAL_S)
    return None, last_arrival


def _report(name: str, spec: StreamingTrainingJobSpec, artifacts: Artifacts, model: Path,
            ledger: Ledger, bounds: dict[int, tuple[int, int]], ends: dict[int, int],
            scored_now: int, elapsed: float, left_on_stop: int,
            ignored: str | None, replica: Replica) -> PodReport:
    """Write the results JSON (replica 0) and build the pod's report (failed above the
    bad-record ratio, or when stopped with records left to score)."""
    assert spec.evaluate is not None
    tally = ledger.tally
    figures = tally.summary()
    partitions = [
        {"partition": p, "start": bounds[p][0], "end": ends[p],
         "committed": ledger.next_offsets.get(p, bounds[p][0]),
         "lag": ends[p] - ledger.next_offsets.get(p, bounds[p][0])}
        for p in sorted(bounds)
    ]
    rate = scored_now / elapsed if elapsed > 0 and scored_now else None
    headline, value = tally.headline
    metrics = Metrics(
        **{name: _finite(figures.get(key, math.nan)) for name, key in EVAL_METRICS.items()},
        eval_metric=headline, eval_value=_finite(value), records_evaluated=tally.records,
        bad_records=tally.bad_records, bad_records_by_reason=figures["badRecordsByReason"],
    )
    ok, message = _bad_record_verdict(tally, spec.data.max_bad_records_ratio)
    reason: FailureReason | None = None if ok else "TooManyBadRecords"
    if ok and left_on_stop:
        ok, message = False, f"stopped with {left_on_stop} records unscored; a rerun continues"
    results: dict[str, Any] = {
        "job": name, "mode": "evaluate", "ok": ok, "message": message,
        "topic": spec.evaluate.topic, "consumerGroup": spec.evaluate.consumer_group,
        "model": str(model), "modelDigest": ledger.model_digest, "resumeIgnored": ignored,
        "figures": figures, "partitions": partitions, "recordsThisRun": scored_now,
        "recordsPerSecond": rate, "seconds": elapsed,
        "metrics": metrics.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    if replica.grouped:
        results["evaluators"] = replica.count
    if replica.chief:
        write_json_atomic(artifacts.results("evaluate"), results)
    model_uri = artifacts.uri(model) if model.is_relative_to(artifacts.root) else None
    return PodReport(mode="evaluate", ok=ok, message=message, reason=reason, metrics=metrics,
                     model_uri=model_uri, records_per_second=rate, resume_ignored=ignored)


def _bad_record_verdict(tally: Tally, max_ratio: float) -> tuple[bool, str]:
    """Fail when malformed records exceed `data.maxBadRecordsRatio` of all records read."""
    total = tally.records + tally.bad_records
    if not total or tally.bad_records / total <= max_ratio:
        return True, ""
    reasons = ", ".join(f"{why} {count}" for why, count in sorted(tally.bad_by_reason.items()))
    return False, (f"{tally.bad_records} of {total} records "
                   f"({100 * tally.bad_records / total:.1f}%) are malformed ({reasons}), "
                   f"above data.maxBadRecordsRatio {max_ratio}")


EVAL_METRICS = {"eval_loss": "loss", "eval_accuracy": "accuracy", "eval_auc": "auc",
                "eval_macro_f1": "macroF1", "eval_rmse": "rmse", "eval_mae": "mae",
                "eval_r2": "r2"}
"""`Metrics` fields of an evaluation, by the tally's figure names (a task has some of them)."""


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


GroupProgress = Callable[[], tuple[int, int, dict[str, Any]]]
"""(records covered, records planned, figures) of every evaluator of a group, from their ledgers:
the figures (loss, accuracy, AUC) of their tallies merged, as the group's result will be."""


def _group_progress(artifacts: Artifacts, group: str, replica: Replica,
                    bounds: dict[int, tuple[int, int]]) -> GroupProgress | None:
    """For evaluator 0 of several (which posts the live progress): what all the ledgers cover
    against the plan's records, and their merged figures; `None` otherwise."""
    if not (replica.grouped and replica.chief):
        return None
    paths = [artifacts.ledger(group, index, replica.count) for index in range(replica.count)]
    planned = sum(end - start for start, end in bounds.values())

    def covered() -> tuple[int, int, dict[str, Any]]:
        tally: Tally | None = None
        for found in (Ledger.load(path) for path in paths):
            if found is not None:
                tally = found.tally if tally is None else tally.merged(found.tally)
        if tally is None:
            return 0, planned, {}
        done = tally.records + tally.bad_records
        return done, max(planned, done), tally.summary()

    return covered


class _ProgressBar:
    """A rich progress bar over records to score (silent when disabled); its figures also go to
    the live progress channel (`workload.progress`): the group's records and merged figures when
    `group` says them (evaluator 0 of several)."""

    def __init__(self, enabled: bool, total: int, group: GroupProgress | None = None) -> None:
        self._progress: Any = None
        self._done, self._total, self._group = 0, total, group
        if enabled:
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task("evaluating", total=total)

    def advance(self, records: int, figures: dict[str, Any]) -> None:
        self._done += records
        done, total = self._done, self._total
        if self._group is not None:  # the group's records and figures, not this evaluator's
            done, total, figures = self._group()
        live.report(records=done, records_total=total, loss=figures.get("loss"),
                    accuracy=figures.get("accuracy"), auc=figures.get("auc"))
        if self._progress is not None:
            self._progress.advance(self._task, records)

    def grow(self, records: int) -> None:
        self._total += records
        if self._group is None:
            live.report(records_total=self._total)
        if self._progress is not None:
            self._progress.update(self._task, total=self._total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
