"""Online mode: learn from a topic as records arrive, test-then-train, exporting as it goes.

Records come from the spec's consumer group, a mini-batch at a time. Each is
decoded (bad records counted by reason, sent to the dead-letter topic if one
is set, never trained on), scored with the current model BEFORE the model
trains on it (prequential accuracy: every record is a test record first),
then trained on.

The model starts from the learner's own checkpoint when there is one, else
from the job's trained one (`Artifacts.keras_model`) when it exists, else
from the model `spec.model.source` names; otherwise a fresh model from
`spec.model` is built at the first good batch, its normalisation taken from
that batch.

Exactly once (`client: librdkafka`, the default): the group's offsets are
committed after each mini-batch is learned (never before), checkpoints hold
the model with the offsets it has learned up to (at every export, before
partitions are taken away by a rebalance, and at the end), and a restarted
learner resumes from its checkpoint's offsets. A record is therefore learned
once by the model that is saved, across rebalances, broker restarts and
kills (`workload.kafka.group_reader`, `online_learner`). With
`client: tensorflow-io` the tutorial's `KafkaBatchIODataset` reads instead:
it commits as it reads, so a restart or a rebalance may learn again what was
learned since the last commit (at-least-once).

Exports go to `Artifacts.online` (Keras file and `state.json`, each written
atomically) every `exportEveryRecords` records or `exportEverySeconds`
seconds, and at the end (then also a SavedModel).

Stopping:
- `streamTimeoutMs`: the run ends when no record has arrived for that long,
  counted from the last record or from the group's first assignment (a join
  that never completes is given `JOIN_ALLOWANCE_S` more); `-1` runs until
  stopped.
- SIGTERM (or `stop_event`): the current batch is finished, a final
  checkpoint and export are written, and the run ends cleanly (ok). The
  reader polls every `POLL_S`, so a stop is noticed within that time even
  when idle.

Observing: `on_batch`, when given, is called with each batch's raw keys and
values right after the learner has taken it (e.g. to log which records were
learned, or to feed a monitor); it runs in the learning loop, so keep it cheap.

Memory stays flat: only counters are kept (no per-batch lists), and the
compiled predict function has a fixed input signature (no re-tracing).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from workload import progress as live
from workload.artifacts import Artifacts, write_json_atomic
from workload.identity import RunIdentity
from workload.kafka.connection import KafkaConnection
from workload.modes.signals import stop_on_sigterm
from workload.spec import FOREVER, OnlineSpec, StreamingTrainingJobSpec
from workload.status import Metrics, PodReport

POLL_MS = 1000
"""`message_poll_timeout` of the tensorflow-io stream: how often an idle stream hands control back."""

POLL_S = 0.5
"""Seconds one poll of the consumer group may wait for records."""

JOIN_ALLOWANCE_S = 60.0
"""Seconds a group join may take before idleness is counted anyway (librdkafka's default
`session.timeout.ms` is 45 s: a join waits up to that long for a member that left)."""

log = logging.getLogger(__name__)


class BatchObserver(Protocol):
    """Called after each batch has been learned: its raw Kafka keys and values.

    Both are lists of bytes of the same length (the batch's records, malformed
    ones included: those were counted and dead-lettered, not trained on).
    """

    def __call__(self, keys: list[bytes], values: list[bytes]) -> None: ...


def run_online(name: str, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
               artifacts: Artifacts, progress: bool = True,
               stop_event: threading.Event | None = None,
               on_batch: BatchObserver | None = None,
               job_uid: str | None = None) -> PodReport:
    """Learn from `spec.online.topic` until the stream times out or a stop is asked.

    `on_batch`, when given, sees every batch after it was learned (see `BatchObserver`).
    `job_uid` is the job's uid (`None` for a local run): only its own checkpoint is resumed.
    """
    if spec.online is None:
        return PodReport(mode="online", ok=False, message="spec.online is not set")
    stop = stop_event or threading.Event()
    with stop_on_sigterm(stop):
        from workload.modes.online_learner import OnlineError, OnlineLearner

        try:
            learner = OnlineLearner(spec, connection, artifacts,
                                    RunIdentity.of(name, spec, job_uid))
        except OnlineError as error:
            return PodReport(mode="online", ok=False, message=str(error))
        started = time.monotonic()
        _learn(spec, connection, learner, stop, progress, on_batch)
        learner.export(final=True)
        # The final export may decide on a challenger: the live channel's last post (made before
        # the pod ends, so before its phase does) carries that decision too.
        _report_live(learner.state())
        elapsed = time.monotonic() - started
    return _report(name, spec, artifacts, learner.state(), elapsed, learner.resume_ignored)


def _learn(spec: StreamingTrainingJobSpec, connection: KafkaConnection, learner: Any,
           stop: threading.Event, progress: bool, on_batch: BatchObserver | None) -> None:
    """Consume the stream into `learner` until idle for `streamTimeoutMs` or stopped."""
    if spec.kafka.client == "tensorflow-io":
        _learn_tensorflow_io(spec, connection, learner, stop, progress, on_batch)
    else:
        _learn_group(spec, connection, learner, stop, progress, on_batch)


def _idle(online: OnlineSpec, last_record: float, now: float) -> bool:
    return (online.stream_timeout_ms != FOREVER
            and (now - last_record) * 1000 >= online.stream_timeout_ms)


def _learn_group(spec: StreamingTrainingJobSpec, connection: KafkaConnection, learner: Any,
                 stop: threading.Event, progress: bool, on_batch: BatchObserver | None) -> None:
    """librdkafka: learn each polled batch, then commit it; checkpoint before a revoke."""
    from workload.kafka.group_reader import GroupReader

    online = spec.online
    assert online is not None
    reader = GroupReader(connection, online.topic, online.consumer_group,
                         resume_from=learner.resume_positions, before_revoke=learner.checkpoint,
                         on_assign=learner.ensure_checkpoint)
    joined = False
    last_record = time.monotonic() + JOIN_ALLOWANCE_S
    try:
        with _status(progress) as show:
            while not stop.is_set():
                batch = reader.poll(online.batch_size, POLL_S)
                now = time.monotonic()
                if not joined and reader.generations:
                    joined, last_record = True, min(last_record, now)
                if len(batch):
                    keys, values = batch.keys, batch.values
                    learner.learn(keys, values)
                    # A lineage's first commit never comes before its first checkpoint.
                    learner.ensure_checkpoint({**reader.positions, **batch.positions})
                    reader.done(batch)
                    if on_batch is not None:
                        on_batch(keys, values)
                    learner.export_if_due(reader.positions)
                    last_record = now
                    show(learner.state())
                elif _idle(online, last_record, now):
                    break
    finally:
        reader.close()  # a revoke: the learner checkpoints, the offsets are committed


def _learn_tensorflow_io(spec: StreamingTrainingJobSpec, connection: KafkaConnection,
                         learner: Any, stop: threading.Event, progress: bool,
                         on_batch: BatchObserver | None) -> None:
    """tensorflow-io: `KafkaBatchIODataset`, which commits as it reads (at-least-once)."""
    from workload.kafka.tfio import batch_stream, poll_timeout_ms

    online = spec.online
    assert online is not None
    stream = batch_stream(connection, online.topic, online.consumer_group,
                          FOREVER, message_poll_timeout_ms=POLL_MS)
    # Before the first record, allow the group join its time before counting idleness.
    last_record = time.monotonic() + poll_timeout_ms(connection) / 1000
    with _status(progress) as show:
        for mini in stream:
            arrived = 0
            for value_tensor, key_tensor in mini.batch(online.batch_size):
                keys, values = key_tensor.numpy().tolist(), value_tensor.numpy().tolist()
                arrived += learner.learn(keys, values)
                if on_batch is not None:
                    on_batch(keys, values)
                learner.export_if_due({})
            now = time.monotonic()
            if arrived:
                last_record = now
                show(learner.state())
            if stop.is_set() or _idle(online, last_record, now):
                break


def _report(name: str, spec: StreamingTrainingJobSpec, artifacts: Artifacts,
            state: dict[str, Any], elapsed: float, ignored: str | None) -> PodReport:
    """Write the results JSON; fail when malformed records exceed `data.maxBadRecordsRatio`."""
    records, bad = state["recordsOnline"], state["badRecords"]
    total = records + bad
    ok, message = True, ""
    if total and bad / total > spec.data.max_bad_records_ratio:
        reasons = ", ".join(f"{why} {n}" for why, n in sorted(state["badRecordsByReason"].items()))
        ok, message = False, (f"{bad} of {total} records ({100 * bad / total:.1f}%) are "
                              f"malformed ({reasons}), above data.maxBadRecordsRatio "
                              f"{spec.data.max_bad_records_ratio}")
    rate = total / elapsed if elapsed > 0 and total else None
    metrics = Metrics(online_accuracy=state["onlineAccuracy"], online_rmse=state["onlineRmse"],
                      records_online=records,
                      bad_records=bad, bad_records_by_reason=state["badRecordsByReason"])
    model_path = artifacts.online / "model.keras"
    write_json_atomic(artifacts.results("online"), {
        "job": name, "mode": "online", "ok": ok, "message": message,
        "topic": spec.online.topic if spec.online else None,
        "consumerGroup": spec.online.consumer_group if spec.online else None,
        "model": str(model_path), "state": state, "seconds": elapsed,
        "recordsPerSecond": rate, "resumeIgnored": ignored,
        "metrics": metrics.model_dump(mode="json", by_alias=True, exclude_none=True),
    })
    return PodReport(mode="online", ok=ok, message=message,
                     reason=None if ok else "TooManyBadRecords", metrics=metrics,
                     model_uri=artifacts.uri(model_path), records_per_second=rate,
                     resume_ignored=ignored)


def _report_live(state: dict[str, Any]) -> None:
    live.report(records=state["recordsOnline"], accuracy=state["onlineAccuracy"],
                promotions=state.get("recentDecisions"))


@contextlib.contextmanager
def _status(enabled: bool) -> Iterator[Any]:
    """A one-line live status (records, prequential accuracy) when enabled; the live progress
    channel (`workload.progress`) gets the same figures."""
    if not enabled:
        yield _report_live
        return
    from rich.progress import Progress, TextColumn

    with Progress(TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("online: waiting for records")

        def show(state: dict[str, Any]) -> None:
            _report_live(state)
            name, value = (("RMSE", state["onlineRmse"]) if state["onlineRmse"] is not None
                           else ("accuracy", state["onlineAccuracy"]))
            figure = f"{value:.4f}" if value is not None else "-"
            bar.update(task, description=f"online: {state['recordsOnline']} records, "
                                         f"prequential {name} {figure}")

        yield show
