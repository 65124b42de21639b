"""Train mode: replay a topic's fixed offset range for many epochs, checkpointed per epoch.

1. Capture each partition's (start, end) offsets; an epoch is exactly those
   records, however the topic grows meanwhile. A restart resumes with the
   offsets of its checkpoint.
2. Read every partition once (`record_batches`: librdkafka batches of each
   partition's exact range, in a fixed order, or tensorflow-io's reader with
   `client: tensorflow-io`), decoding each batch as it arrives into numpy
   arrays (`workload.data.decode`): bad records
   are counted per reason, sent to the dead-letter topic when one is set, and
   the run fails when their share is above `data.maxBadRecordsRatio`. With
   `train.cache` the decoded records stay in memory for the epochs; without
   it each epoch reads Kafka again.
   The last `train.validationFraction` of each partition's range is held
   out (the same records on every run) and kept in memory for validation.
3. Epochs: shuffle (`train.shuffleBuffer`, seeded by the epoch number, so
   a resumed epoch sees the same order), batch (`train.batchSize`),
   prefetch; validation loss, accuracy and AUC after each epoch (in the
   history, the training curve and TensorBoard); early stopping on the
   validation loss (`train.earlyStopping`); checkpoints inside and after each epoch
   (`workload.modes.checkpoint`) and TensorBoard logs. A restart skips the
   batches its checkpoint says are done (only a checkpoint of this job with
   the same data and model settings, see `workload.identity`); SIGTERM
   stops at the next batch with a checkpoint.
4. Restore the best epoch's weights (`earlyStopping.restoreBestWeights`),
   export the model (Keras file + SavedModel), draw the training curve, write
   `results-train.json` and return the pod's report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from workload import progress as live
from workload.artifacts import Artifacts, write_json_atomic
from workload.data.decode import BadRecord, Decoded, make_decoder, sum_counts
from workload.data.read_ahead import read_ahead
from workload.identity import RunIdentity
from workload.kafka.admin import TopicMissing
from workload.kafka.bounds import partition_bounds, record_count
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import send_dead_letters
from workload.kafka.ranges import KafkaReadError, read_ranges
from workload.model.build import (
    build_model,
    describe_preprocessing,
    feature_plan,
    model_summary,
)
from workload.model.export import export_model
from workload.model.statistics import FeatureStatistics, RunningStatistics
from workload.modes.checkpoint import (
    Checkpointer,
    CheckpointMismatch,
    TrainState,
    load_own_state,
    restore_best,
    restore_checkpoint,
)
from workload.modes.signals import stop_on_sigterm
from workload.modes.train_progress import TrainProgress
from workload.permanent import PermanentError, reason_of
from workload.plots import training_curve
from workload.replica import SINGLE, Replica
from workload.spec import DataSpec, KafkaClient, StreamingTrainingJobSpec
from workload.status import Metrics, PodReport

log = logging.getLogger(__name__)

Floats = npt.NDArray[np.float32]

BatchObserver = Callable[[int, npt.NDArray[np.float32]], None]
"""Sees each batch a worker of a group is about to train: the epoch (0-based) and the batch's
features (a record seen but never trained can only be one of a step cut short by a failure)."""

SHUFFLE_SEED = 1_000_003
"""Base of the per-epoch shuffle seed (epoch `e` uses `SHUFFLE_SEED + e`)."""


class TrainError(RuntimeError):
    """Training cannot go on with this data (an empty topic, too many bad records)."""


class TooManyBadRecords(TrainError, PermanentError):
    """More training records are malformed than `data.maxBadRecordsRatio` allows: the same
    records would be read again by another pod."""

    reason = "TooManyBadRecords"


@dataclass
class ReadSummary:
    """What one pass over the offset ranges found."""

    records: int = 0
    good: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    features: list[Floats] = field(default_factory=list)
    labels: list[Floats] = field(default_factory=list)
    dead_letters: list[BadRecord] = field(default_factory=list)
    statistics: FeatureStatistics | None = None

    @property
    def bad(self) -> int:
        """Records set aside."""
        return sum(self.bad_by_reason.values())


def record_batches(connection: KafkaConnection, topic: str, offsets: dict[int, tuple[int, int]],
                   client: KafkaClient = "librdkafka") -> Iterator[tuple[list[bytes], list[bytes]]]:
    """`(keys, values)` batches of every record in `offsets`, in the same order on every
    iteration (partitions in id order, each in offset order)."""
    if record_count(offsets) == 0:
        raise KafkaReadError(f"topic {topic!r} has no records in offsets {offsets}")
    if client == "tensorflow-io":
        from workload.kafka.tfio import replay_dataset

        for keys, values in replay_dataset(connection, topic, offsets):
            yield keys.numpy().tolist(), values.numpy().tolist()
        return
    for batch in read_ranges(connection, topic, offsets):
        yield batch.keys, batch.values


def decoded_batches(connection: KafkaConnection, topic: str,
                    offsets: dict[int, tuple[int, int]], data: DataSpec,
                    client: KafkaClient = "librdkafka"
                    ) -> Iterator[tuple[list[bytes], list[bytes], Decoded]]:
    """Kafka to decoded batches: each batch's keys and values with what they decoded to."""
    decode = make_decoder(data, topic)
    try:
        for keys, values in read_ahead(record_batches(connection, topic, offsets, client)):
            yield keys, values, decode(keys, values)
    except tf.errors.OpError as error:  # tensorflow-io's reader
        raise KafkaReadError(f"reading topic {topic!r} failed: {error.message}") from error


def read_all(connection: KafkaConnection, topic: str, offsets: dict[int, tuple[int, int]],
             data: DataSpec, keep: bool, display: TrainProgress,
             client: KafkaClient = "librdkafka") -> ReadSummary:
    """One pass: count good and bad records, keep them in memory when `keep`."""
    summary = ReadSummary()
    statistics = RunningStatistics(len(data.feature_names))
    expected = record_count(offsets)
    task = display.task("reading Kafka", expected)
    started = time.perf_counter()
    for keys, values, decoded in decoded_batches(connection, topic, offsets, data, client):
        summary.good += len(decoded.labels)
        summary.records += len(values)
        statistics.add(decoded.features)
        sum_counts(summary.bad_by_reason, decoded.counts())
        if keep:
            summary.features.append(decoded.features)
            summary.labels.append(decoded.labels)
        if data.dead_letter_topic is not None:
            summary.dead_letters.extend(decoded.bad_records(keys, values))
        display.update(task, summary.records, started)
    display.update(task, summary.records, started, force=True)
    summary.seconds = time.perf_counter() - started
    summary.statistics = statistics.result()
    return summary


def split_validation(offsets: dict[int, tuple[int, int]], fraction: float
                     ) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
    """(training, validation) ranges: the last `fraction` of each partition's range validates."""
    training, validation = {}, {}
    for partition, (start, end) in offsets.items():
        held = int((end - start) * fraction)
        training[partition] = (start, end - held)
        if held:
            validation[partition] = (end - held, end)
    return training, validation


def merged(first: ReadSummary, second: ReadSummary) -> ReadSummary:
    """Counts of both reads (for the bad-record check and the report); `first`'s rows."""
    bad = dict(first.bad_by_reason)
    for reason, count in second.bad_by_reason.items():
        bad[reason] = bad.get(reason, 0) + count
    return ReadSummary(first.records + second.records, first.good + second.good, bad,
                       first.seconds + second.seconds,
                       dead_letters=first.dead_letters + second.dead_letters)


def check_bad_records(summary: ReadSummary, topic: str, data: DataSpec) -> None:
    """Fail when malformed records exceed the allowed share, saying how many and why."""
    if summary.records == 0:
        raise TrainError(f"topic {topic!r} has no records to train on")
    ratio = summary.bad / summary.records
    if summary.good == 0 or ratio > data.max_bad_records_ratio:
        reasons = ", ".join(f"{reason}: {count}"
                            for reason, count in sorted(summary.bad_by_reason.items()))
        raise TooManyBadRecords(
            f"{summary.bad} of {summary.records} records of topic {topic!r} ({ratio:.1%}) are "
            f"malformed ({reasons}); data.maxBadRecordsRatio allows "
            f"{data.max_bad_records_ratio:.1%}")


def epoch_dataset(source: tf.data.Dataset, spec: StreamingTrainingJobSpec, epoch: int,
                  skip_batches: int = 0, batch_size: int | None = None) -> tf.data.Dataset:
    """Epoch `epoch`'s batches of (features, labels) rows, in an order fixed by `epoch` (a
    resumed epoch repeats it), without the first `skip_batches`; batches of `batch_size` rows
    (default `train.batchSize`; a worker of a group takes its share of it)."""
    assert spec.train is not None
    if spec.train.shuffle_buffer > 0:
        source = source.shuffle(spec.train.shuffle_buffer, seed=SHUFFLE_SEED + epoch,
                                reshuffle_each_iteration=False)
    size = batch_size or spec.train.batch_size
    return source.batch(size).skip(skip_batches).prefetch(tf.data.AUTOTUNE)


def training_rows(summary: ReadSummary, connection: KafkaConnection, topic: str,
                  offsets: dict[int, tuple[int, int]], data: DataSpec,
                  cache: bool, client: KafkaClient = "librdkafka") -> tf.data.Dataset:
    """(features, labels) rows: from memory when cached, else read from Kafka each epoch."""
    if cache:
        features = np.concatenate(summary.features) if summary.features else np.zeros(
            (0, len(data.feature_names)), np.float32)
        labels = np.concatenate(summary.labels) if summary.labels else np.zeros(0, np.float32)
        summary.features, summary.labels = [], []
        return tf.data.Dataset.from_tensor_slices((features, labels))

    def batches() -> Iterator[tuple[Floats, Floats]]:
        for _, _, decoded in decoded_batches(connection, topic, offsets, data, client):
            yield decoded.features, decoded.labels

    width = len(data.feature_names)
    rows = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec([None, width], tf.float32), tf.TensorSpec([None], tf.float32))).unbatch()
    # Kafka reads have no known length; stating it lets Keras count steps (and fails loudly
    # should an epoch's read find another number of good records).
    return rows.apply(tf.data.experimental.assert_cardinality(summary.good))


def run_train(name: str, spec: StreamingTrainingJobSpec, connection: KafkaConnection,
              artifacts: Artifacts, progress: bool = True,
              callbacks: Sequence[keras.callbacks.Callback] = (), *,
              job_uid: str | None = None, replica: Replica = SINGLE,
              on_batch: BatchObserver | None = None) -> PodReport:
    """Train the job's model on `spec.train.topic`; the report says how it went.

    `callbacks` are extra Keras callbacks (a user's own logging, say), called
    before the checkpointing one at each batch. `job_uid` is the job's uid
    (`None` for a local run): only its own checkpoints are resumed from.
    `replica` is this worker's place in a group of several (`workload.modes.train_group`,
    which calls `on_batch` with each batch before training it; `callbacks` serve one trainer).
    A worker whose group cannot go on raises `PeerLost`.
    """
    if spec.train is None:
        raise ValueError("spec.train is not set: this job has no training phase")
    artifacts.prepare()
    topic = spec.train.topic
    results: dict[str, Any] = {"job": name, "topic": topic}
    identity = RunIdentity.of(name, spec, job_uid)
    try:
        if replica.grouped:
            from workload.modes.train_group import train_in_group

            report = train_in_group(spec, identity, connection, artifacts, replica, results,
                                    on_batch)
        else:
            report = _train(spec, identity, connection, artifacts, progress, results, callbacks)
    except (TrainError, KafkaReadError, TopicMissing, CheckpointMismatch) as error:
        log.error("training failed: %s", error)
        report = PodReport(mode="train", ok=False, message=str(error), reason=reason_of(error))
    if replica.chief:
        results["report"] = report.model_dump(mode="json", by_alias=True, exclude_none=True)
        write_json_atomic(artifacts.results("train"), results)
    return report


def _train(spec: StreamingTrainingJobSpec, identity: RunIdentity, connection: KafkaConnection,
           artifacts: Artifacts, progress: bool, results: dict[str, Any],
           extra_callbacks: Sequence[keras.callbacks.Callback]) -> PodReport:
    assert spec.train is not None
    train, data = spec.train, spec.data
    state, ignored = load_own_state(artifacts.checkpoints, identity)
    if ignored is not None:
        results["resumeIgnored"] = ignored
    if state is None:
        state = TrainState(train.topic, partition_bounds(connection, train.topic),
                           job_uid=identity.job_uid, spec_digest=identity.spec_digest)
    if record_count(state.offsets) == 0:
        raise TrainError(f"topic {train.topic!r} has no records to train on "
                         f"(offsets {state.offsets})")
    results["offsets"] = {str(p): list(span) for p, span in sorted(state.offsets.items())}
    training, validation = split_validation(state.offsets, train.validation_fraction)
    with TrainProgress(progress) as display:
        client = spec.kafka.client
        summary = read_all(connection, train.topic, training, data, train.cache, display,
                           client)
        held_out = (read_all(connection, train.topic, validation, data, True, display, client)
                    if validation else ReadSummary())
        both = merged(summary, held_out)
        if both.dead_letters and data.dead_letter_topic is not None:
            send_dead_letters(connection, data.dead_letter_topic, train.topic, both.dead_letters)
        results["recordsThisRun"] = both.records
        results["read"] = {"records": both.records, "seconds": round(both.seconds, 3),
                           "recordsPerSecond": round(both.records / max(both.seconds, 1e-9))}
        results["validationOffsets"] = {str(p): list(span) for p, span in sorted(validation.items())}
        check_bad_records(both, train.topic, data)

        plan = feature_plan(spec.model, summary.statistics)
        batches_per_epoch = -(-summary.good // train.batch_size)
        decay_steps = (train.epochs * batches_per_epoch
                       if train.learning_rate_schedule == "cosine" else None)
        model = build_model(spec.model, len(data.feature_names), summary.statistics, plan,
                            decay_steps)
        preprocessing = describe_preprocessing(spec.model, plan, data.feature_names)
        results["preprocessing"] = preprocessing
        results["modelSummary"] = model_summary(model)
        restore_checkpoint(artifacts.checkpoints, state, model)
        resumed_at = (state.epochs_done, state.batches_done)
        rows = training_rows(summary, connection, train.topic, training, data, train.cache,
                             client)
        checks = validation_rows(held_out)
        stop = threading.Event()
        checkpointer = Checkpointer(artifacts.checkpoints, state, train.checkpoint_every_seconds,
                                    batches_per_epoch, stop,
                                    train.early_stopping if checks is not None else None)
        callbacks: list[keras.callbacks.Callback] = [
            *extra_callbacks, checkpointer,
            keras.callbacks.TensorBoard(log_dir=str(artifacts.tensorboard), write_graph=False),
        ]
        if progress or live.active():  # a per-batch callback makes Keras fetch every batch's logs
            callbacks.append(display.keras_callback(summary.good, train.batch_size, train.epochs,
                                                    skipped=lambda: checkpointer.skipped))
        started = time.perf_counter()
        with stop_on_sigterm(stop):
            _fit_epochs(model, rows, checks, spec, state, checkpointer, callbacks)
        fit_seconds = time.perf_counter() - started

    results.update(history=state.history, resumedAtEpoch=resumed_at[0],
                   resumedAtBatch=resumed_at[1], epochsRun=state.epochs_done - resumed_at[0],
                   fitSeconds=round(fit_seconds, 3), bestEpoch=state.best_epoch or None,
                   stoppedEarly=state.stopped_early)
    if state.epochs_done < train.epochs and not state.stopped_early:
        return PodReport(
            mode="train", ok=False, epoch=state.epochs_done, resume_ignored=ignored,
            message=(f"stopped (SIGTERM) in epoch {state.epochs_done + 1} after batch "
                     f"{state.batches_done}; the checkpoint is written and a restart with "
                     "this output folder resumes there"))
    epoch_of_model = state.epochs_done
    if restore_best(artifacts.checkpoints, state, model):
        epoch_of_model = state.best_epoch
    results["exportedEpoch"] = epoch_of_model
    export_model(model, artifacts.keras_model, artifacts.saved_model)
    training_curve(state.history, artifacts.training_curve, f"{train.topic}: training")
    epochs_run = results["epochsRun"]
    rate = summary.good * epochs_run / fit_seconds if epochs_run else None
    return PodReport(
        mode="train", ok=True,
        metrics=Metrics(
            train_loss=figure_at(state.history, "loss", epoch_of_model),
            train_accuracy=figure_at(state.history, "accuracy", epoch_of_model),
            validation_loss=figure_at(state.history, "val_loss", epoch_of_model),
            validation_accuracy=figure_at(state.history, "val_accuracy", epoch_of_model),
            records_trained=summary.good,
            records_validated=held_out.good,
            bad_records=both.bad,
            bad_records_by_reason=dict(sorted(both.bad_by_reason.items())),
        ),
        model_uri=artifacts.uri(artifacts.keras_model),
        epoch=state.epochs_done,
        records_per_second=round(rate, 1) if rate else None,
        preprocessing=preprocessing["summary"],
        resume_ignored=ignored,
    )


VALIDATION_BATCH = 4096
"""Rows per step when validating (memory, not learning: any size gives the same figures)."""


def validation_rows(held_out: ReadSummary) -> tf.data.Dataset | None:
    """Batches of the held-out (features, labels), or `None` when nothing is held out."""
    if not held_out.good:
        return None
    return tf.data.Dataset.from_tensor_slices(
        (np.concatenate(held_out.features), np.concatenate(held_out.labels))
    ).batch(VALIDATION_BATCH).cache()


def _fit_epochs(model: keras.Model, rows: tf.data.Dataset, checks: tf.data.Dataset | None,
                spec: StreamingTrainingJobSpec, state: TrainState, checkpointer: Checkpointer,
                callbacks: list[keras.callbacks.Callback]) -> None:
    """Train from where `state` stands to the last epoch, until early stopping says enough, or
    until a stop is requested; validate on `checks` after each epoch."""
    assert spec.train is not None
    for epoch in range(state.epochs_done, spec.train.epochs):
        if checkpointer.stop.is_set() or state.stopped_early:
            return
        checkpointer.begin_epoch(state.batches_done)
        model.fit(epoch_dataset(rows, spec, epoch, state.batches_done), initial_epoch=epoch,
                  epochs=epoch + 1, callbacks=callbacks, shuffle=False, verbose=0,
                  validation_data=checks)


def figure_at(history: dict[str, list[float]], key: str, epoch: int) -> float | None:
    """`key`'s figure of epoch `epoch` (from 1), or `None`."""
    values = history.get(key)
    return values[epoch - 1] if values and len(values) >= epoch else None
