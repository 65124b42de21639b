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
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from workload import progress as live
from workload.artifacts import Artifacts, write_json_atomic
from workload.identity import RunIdentity
from workload.kafka.admin import TopicMissing
from workload.kafka.bounds import partition_bounds, record_count
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import send_dead_letters
from workload.kafka.ranges import KafkaReadError
from workload.model.build import (
    build_model,
    describe_preprocessing,
    encodings,
    feature_plan,
    model_summary,
)
from workload.model.export import export_model
from workload.model.profile import ProfileError
from workload.model.user import UserModelError
from workload.modes.checkpoint import (
    Checkpointer,
    CheckpointMismatch,
    TrainState,
    load_own_state,
    restore_best,
    restore_checkpoint,
)
from workload.modes.signals import stop_on_sigterm
from workload.modes.train_data import (
    BatchObserver,
    ReadSummary,
    TrainError,
    check_bad_records,
    epoch_dataset,
    history_metrics,
    learning_rule,
    merged,
    read_all,
    reading_rule,
    split_validation,
    task_facts,
    task_results,
    training_rows,
    validation_rows,
    with_classes,
)
from workload.modes.train_progress import TrainProgress
from workload.permanent import ShapeMismatch, reason_of
from workload.plots import training_curve
from workload.replica import SINGLE, Replica
from workload.spec import StreamingTrainingJobSpec
from workload.status import Metrics, PodReport

log = logging.getLogger(__name__)


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
    except (TrainError, KafkaReadError, TopicMissing, CheckpointMismatch, ProfileError,
            UserModelError, ShapeMismatch) as error:
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
    rule = learning_rule(spec.model.task, spec.model.classes)
    with TrainProgress(progress) as display:
        client = spec.kafka.client
        summary = read_all(connection, train.topic, training, data, train.cache, display,
                           client, rule)
        held_out = (read_all(connection, train.topic, validation, data, True, display, client,
                             rule) if validation else ReadSummary())
        both = merged(summary, held_out)
        if both.dead_letters and data.dead_letter_topic is not None:
            send_dead_letters(connection, data.dead_letter_topic, train.topic, both.dead_letters)
        results["recordsThisRun"] = both.records
        results["read"] = {"records": both.records, "seconds": round(both.seconds, 3),
                           "recordsPerSecond": round(both.records / max(both.seconds, 1e-9))}
        results["validationOffsets"] = {str(p): list(span) for p, span in sorted(validation.items())}
        check_bad_records(both, train.topic, data)

        assert summary.profile is not None
        facts = task_facts(spec, summary.profile, [held_out.profile])
        results.update(task_results(facts))
        summary, held_out = with_classes(summary, facts), with_classes(held_out, facts)
        plan = feature_plan(spec.model, summary.profile)
        batches_per_epoch = -(-summary.good // train.batch_size)
        decay_steps = (train.epochs * batches_per_epoch
                       if train.learning_rate_schedule == "cosine" else None)
        model = build_model(spec.model, data, summary.profile, facts, plan, decay_steps,
                            artifacts.model_file)
        preprocessing = describe_preprocessing(spec.model, plan, data.numeric_names,
                                               encodings(data, summary.profile, spec.model))
        results["preprocessing"] = preprocessing
        results["modelSummary"] = model_summary(model)
        restore_checkpoint(artifacts.checkpoints, state, model)
        resumed_at = (state.epochs_done, state.batches_done)
        rows = training_rows(summary, connection, train.topic, training, data, train.cache,
                             client, reading_rule(facts))
        checks = validation_rows(held_out, data)
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
            **history_metrics(state.history, epoch_of_model),
            records_trained=summary.good,
            records_validated=held_out.good,
            bad_records=both.bad,
            bad_records_by_reason=dict(sorted(both.bad_by_reason.items())),
        ),
        model_uri=artifacts.uri(artifacts.keras_model),
        epoch=state.epochs_done,
        records_per_second=round(rate, 1) if rate else None,
        preprocessing=preprocessing["summary"],
        classes=list(facts.classes) if facts.classes else None,
        resume_ignored=ignored,
    )


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
