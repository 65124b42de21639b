"""Train mode: replay a topic's fixed offset range for many epochs, checkpointed per epoch.

One path for one trainer and for every worker of a group (`trainer.replicas`
> 1: data parallel, one model; one trainer is a group of one, `Group.solo`):

1. Agree on the offsets (`workload.modes.agreement`): the chief's checkpoint
   (offsets, epoch, batch), or each partition's (start, end) offsets
   captured now; an epoch is exactly those records, however the topic grows
   meanwhile. Each worker reads only its share of those ranges
   (`workload.slices`: by partition, or by offset slices of a partition when
   there are fewer partitions than workers; a trainer alone reads all).
2. Read (`workload.modes.train_data`): every range once, decoded as it
   arrives; bad records counted per reason, sent to the dead-letter topic
   when one is set; the run fails when their share is above
   `data.maxBadRecordsRatio` (summed over the group). With `train.cache`
   the decoded records stay in memory for the epochs; without it each epoch
   reads Kafka again. The last `train.validationFraction` of each
   partition's range is held out (the same records on every run).
3. Build the model from the training profile (summed over the group: every
   worker builds the same model): the task's facts (classes learned or
   named, the regression target's scale), the preprocessing, the
   vocabularies, the spec's layers or the user's own network.
4. Epochs (`workload.modes.train_loop`): shuffle (`train.shuffleBuffer`,
   seeded by the epoch number, so a resumed epoch sees the same order),
   steps of `train.batchSize` records in all, validation after each epoch,
   early stopping on the validation loss (`train.earlyStopping`),
   checkpoints inside and after each epoch (`workload.modes.checkpoint`;
   the chief writes them) and TensorBoard logs. A restart skips the batches
   its checkpoint says are done (only a checkpoint of this job with the same
   data and model settings, see `workload.identity`); SIGTERM stops at the
   next batch with a checkpoint.
   With `model.source` training starts from that model instead (its
   preparation, task, classes and weights kept).
5. Restore the best epoch's weights (`earlyStopping.restoreBestWeights`),
   export the model (Keras file + SavedModel; a group's chief exports a
   clone built outside the strategy), draw the training curve, write
   `results-train.json` and return the pod's report (the chief's speaks for
   the group).

A worker that goes away aborts the others' steps: they exit with
`PEER_LOST_EXIT` and the group restarts from the chief's last checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workload.artifacts import Artifacts, write_json_atomic
from workload.identity import RunIdentity
from workload.kafka.admin import TopicMissing
from workload.kafka.bounds import record_count
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import send_dead_letters
from workload.kafka.ranges import KafkaReadError
from workload.model.build import (
    build_model,
    compile_model,
    describe_preprocessing,
    encodings,
    feature_plan,
    load_model,
    model_summary,
)
from workload.model.export import export_model
from workload.model.inputs import InputLayout, ModelInputs, head
from workload.model.profile import ProfileError, TaskFacts
from workload.model.task import task_of
from workload.model.user import UserModelError
from workload.modes.agreement import agreed_state, group_summary
from workload.modes.checkpoint import (
    Checkpointer,
    CheckpointMismatch,
    TrainState,
    checkpoint_variables,
    restore_best,
    restore_checkpoint,
)
from workload.modes.group import Group, join_group
from workload.modes.signals import stop_on_sigterm
from workload.modes.train_data import (
    BatchObserver,
    ReadSummary,
    TrainError,
    check_bad_records,
    history_metrics,
    kept_rows,
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
from workload.modes.train_loop import Plan, sync_variables, train_epochs
from workload.modes.train_progress import TrainProgress
from workload.permanent import ShapeMismatch, reason_of
from workload.plots import training_curve
from workload.replica import SINGLE, PeerLost, Replica
from workload.slices import batch_shares, replica_ranges
from workload.spec import DataSpec, StreamingTrainingJobSpec
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
    `replica` is this worker's place in a group of several; `on_batch` sees each batch
    before it is trained. A worker whose group cannot go on raises `PeerLost`.
    """
    if spec.train is None:
        raise ValueError("spec.train is not set: this job has no training phase")
    artifacts.prepare()
    results: dict[str, Any] = {"job": name, "topic": spec.train.topic}
    identity = RunIdentity.of(name, spec, job_uid)
    try:
        group = join_group(replica) if replica.grouped else Group.solo()
        try:
            report = _train(spec, identity, connection, artifacts, group, progress, results,
                            callbacks, on_batch)
        except TrainError as error:
            if group.chief:
                raise
            raise PeerLost(f"the group stops (worker 0 reports why): {error}") from error
    except (TrainError, KafkaReadError, TopicMissing, CheckpointMismatch, ProfileError,
            UserModelError, ShapeMismatch) as error:
        log.error("training failed: %s", error)
        report = PodReport(mode="train", ok=False, message=str(error), reason=reason_of(error))
    if replica.chief:
        results["report"] = report.model_dump(mode="json", by_alias=True, exclude_none=True)
        write_json_atomic(artifacts.results("train"), results)
    return report


def _starting_model(spec: StreamingTrainingJobSpec, artifacts: Artifacts,
                    group: Group) -> keras.Model | None:
    """With `model.source`, the model training starts from (built in the group's strategy):
    its preparation, task, classes and weights are kept; `None` without a source."""
    if spec.model.source is None:
        return None
    path = artifacts.source_model
    if path is None or not path.exists():
        raise TrainError(f"model.source: no trained model at {path or 'a mounted source'}: "
                         "the source has not trained one there")
    with group.strategy.scope():
        model = load_model(path, spec.data)
    found = task_of(model).task
    if found != spec.model.task:
        raise ShapeMismatch(f"the source model at {path} predicts task {found}, "
                            f"spec.model.task says {spec.model.task}")
    return model


def _read(spec: StreamingTrainingJobSpec, connection: KafkaConnection, group: Group,
          training: dict[int, tuple[int, int]], validation: dict[int, tuple[int, int]],
          progress: bool, results: dict[str, Any],
          known: TaskFacts | None = None) -> tuple[ReadSummary, ReadSummary]:
    """This worker's share of the training and validation ranges, read and decoded (labels as
    `known`, the starting model's facts, say; else learning the classes if need be)."""
    assert spec.train is not None
    train, data = spec.train, spec.data
    workers, index = group.replica.count, group.replica.index
    shares = replica_ranges(training, workers)
    mine = shares[index]
    checks_mine = replica_ranges(validation, workers)[index] if validation else {}
    if group.grouped:
        results.update(workers=workers, shares=[
            {str(p): list(span) for p, span in sorted(share.items())} for share in shares])
    client = spec.kafka.client
    rule = (reading_rule(known) if known is not None
            else learning_rule(spec.model.task, spec.model.classes))
    with TrainProgress(progress) as display:
        own = (read_all(connection, train.topic, mine, data, train.cache, display, client, rule)
               if record_count(mine) else ReadSummary())
        held = (read_all(connection, train.topic, checks_mine, data, True, display, client,
                         rule) if record_count(checks_mine) else ReadSummary())
    both = merged(own, held)
    results["read"] = {"records": both.records, "seconds": round(both.seconds, 3),
                       "recordsPerSecond": round(both.records / max(both.seconds, 1e-9))}
    if both.dead_letters and data.dead_letter_topic is not None:
        send_dead_letters(connection, data.dead_letter_topic, train.topic, both.dead_letters)
    return own, held


def _train(spec: StreamingTrainingJobSpec, identity: RunIdentity, connection: KafkaConnection,
           artifacts: Artifacts, group: Group, progress: bool, results: dict[str, Any],
           callbacks: Sequence[keras.callbacks.Callback],
           on_batch: BatchObserver | None) -> PodReport:
    assert spec.train is not None
    train, data = spec.train, spec.data
    state, ignored = agreed_state(spec, identity, connection, artifacts, group)
    if ignored is not None:
        results["resumeIgnored"] = ignored
    if record_count(state.offsets) == 0:
        raise TrainError(f"topic {train.topic!r} has no records to train on "
                         f"(offsets {state.offsets})")
    training, validation = split_validation(state.offsets, train.validation_fraction)
    results.update(offsets={str(p): list(span) for p, span in sorted(state.offsets.items())},
                   validationOffsets={str(p): list(span) for p, span in sorted(validation.items())})
    start = _starting_model(spec, artifacts, group)
    own, held = _read(spec, connection, group, training, validation, progress, results,
                      task_of(start) if start is not None else None)
    summary, held_labels = group_summary(merged(own, held), held, data, group)
    results["recordsThisRun"] = summary.records
    check_bad_records(summary, train.topic, data)
    assert summary.profile is not None
    facts = (task_of(start) if start is not None
             else task_facts(spec, summary.profile, [held_labels]))
    results.update(task_results(facts))
    own, held = with_classes(own, facts), with_classes(held, facts)
    sample = litert_sample(own, data)  # before the rows take the records read
    goods = np.zeros((2, group.replica.count), np.int64)
    goods[:, group.replica.index] = own.good, held.good
    (goods,) = group.all_sum([goods], "counting records")
    trained, validated = int(goods[0].sum()), int(goods[1].sum())
    share = batch_shares(train.batch_size, [int(count) for count in goods[0]])
    plan = Plan(max(-(-int(count) // size) for count, size in zip(goods[0], share, strict=True)
                    if size), trained, max(share[group.replica.index], 1))

    features = feature_plan(spec.model, summary.profile) if start is None else None
    decay_steps = train.epochs * plan.steps if train.learning_rate_schedule == "cosine" else None
    with group.strategy.scope():
        if start is None:
            model = build_model(spec.model, data, summary.profile, facts, features, decay_steps,
                                artifacts.model_file)
        else:
            model = start
            compile_model(model, spec.model, decay_steps)
        model.optimizer.build(model.trainable_variables)
    preprocessing = (describe_preprocessing(spec.model, features, data.numeric_names,
                                            encodings(data, summary.profile, spec.model))
                     if start is None else {"choice": "model.source",
                                            "summary": "the source model's own (model.source)"})
    results.update(preprocessing=preprocessing, modelSummary=model_summary(model))
    if group.chief:
        restore_checkpoint(artifacts.checkpoints, state, model)
    sync_variables(model, group)
    resumed_at = (state.epochs_done, state.batches_done)
    rows = (training_rows(own, connection, train.topic, replica_ranges(
                training, group.replica.count)[group.replica.index], data, train.cache,
                spec.kafka.client, reading_rule(facts))
            if own.good else tf.data.Dataset.from_tensor_slices(kept_rows(ReadSummary(), data)))
    stop = threading.Event()
    checkpointer = Checkpointer(artifacts.checkpoints, state, train.checkpoint_every_seconds,
                                plan.steps, stop, train.early_stopping if validated else None)
    checkpointer.set_model(model)
    board = ((tf.summary.create_file_writer(str(artifacts.tensorboard / "train")),
              tf.summary.create_file_writer(str(artifacts.tensorboard / "validation")))
             if group.chief else None)
    hooks = list(callbacks)
    with TrainProgress(progress) as display:
        if progress:
            hooks.append(display.keras_callback(trained, train.batch_size, train.epochs,
                                                skipped=lambda: checkpointer.skipped))
        started = time.perf_counter()
        with stop_on_sigterm(stop):
            train_epochs(model, rows, validation_rows(held, data) if validated else None, spec,
                         state, group, checkpointer, plan, hooks, board, on_batch)
        fit_seconds = time.perf_counter() - started
    results.update(history=state.history, resumedAtEpoch=resumed_at[0],
                   resumedAtBatch=resumed_at[1], epochsRun=state.epochs_done - resumed_at[0],
                   fitSeconds=round(fit_seconds, 3), stepsPerEpoch=plan.steps,
                   bestEpoch=state.best_epoch or None, stoppedEarly=state.stopped_early)
    if state.epochs_done < train.epochs and not state.stopped_early:
        where = (f"step {state.batches_done}; the chief's checkpoint is written and a restart "
                 "of the group resumes there" if group.grouped else
                 f"batch {state.batches_done}; the checkpoint is written and a restart with "
                 "this output folder resumes there")
        return PodReport(mode="train", ok=False, epoch=state.epochs_done, resume_ignored=ignored,
                         message=f"stopped (SIGTERM) in epoch {state.epochs_done + 1} after "
                                 f"{where}")
    epoch_of_model = state.best_epoch if state.best_weights_file else state.epochs_done
    results["exportedEpoch"] = epoch_of_model
    if group.chief:
        results["litert"] = _export(model, spec, artifacts, state, group, decay_steps, sample)
    group.barrier("the chief exported the model")
    epochs_run = int(results["epochsRun"])
    rate = trained * epochs_run / fit_seconds if epochs_run else None
    return PodReport(
        mode="train", ok=True,
        metrics=Metrics(
            **history_metrics(state.history, epoch_of_model),
            records_trained=trained, records_validated=validated, bad_records=summary.bad,
            bad_records_by_reason=dict(sorted(summary.bad_by_reason.items()))),
        model_uri=artifacts.uri(artifacts.keras_model) if group.chief else None,
        epoch=state.epochs_done, records_per_second=round(rate, 1) if rate else None,
        preprocessing=preprocessing["summary"], resume_ignored=ignored,
        classes=list(facts.classes) if facts.classes else None)


def litert_sample(own: ReadSummary, data: DataSpec) -> ModelInputs | None:
    """The model's inputs for the first records read (the test batch of the LiteRT export:
    numeric features and the categorical fields' strings); `None` before any record."""
    from workload.model.litert import SAMPLE_RECORDS

    parts, rows = [], 0
    for part in own.parts:
        if rows >= SAMPLE_RECORDS:
            break
        parts.append(part)
        rows += len(part.labels)
    if not rows:
        return None
    layout = InputLayout.of(data)
    return head(layout.arrays(np.concatenate([part.features for part in parts]),
                              np.concatenate([part.category_table for part in parts])),
                SAMPLE_RECORDS)


def _export(model: keras.Model, spec: StreamingTrainingJobSpec, artifacts: Artifacts,
            state: TrainState, group: Group, decay_steps: int | None,
            sample: ModelInputs | None) -> str | None:
    """Export the model holding the best epoch's weights with
    `earlyStopping.restoreBestWeights` (a group's: a clone outside the strategy holding the
    group's weights and optimizer state) and, with a `sample` of features, its LiteRT scorer;
    then draw the training curve. Returns what the LiteRT export said."""
    assert spec.train is not None
    restore_best(artifacts.checkpoints, state, model)
    plain = model
    if group.grouped:
        # The same network outside the strategy. Its variables are matched by position: a
        # clone of a user's custom layer names the layers it makes anew. A constant rate is
        # an optimizer variable, a schedule is not: the clone is compiled with the same one.
        plain = keras.models.clone_model(model)
        compile_model(plain, spec.model, decay_steps)
        for mine, trained in zip(checkpoint_variables(plain).values(),
                                 checkpoint_variables(model).values(), strict=True):
            mine.assign(np.asarray(trained.numpy()).reshape(tuple(mine.shape)))
    litert = export_model(plain, artifacts.keras_model, artifacts.saved_model, sample)
    training_curve(state.history, artifacts.training_curve, f"{spec.train.topic}: training")
    return litert
