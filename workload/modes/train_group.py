"""Train mode for one worker of a group (`spec.trainer.replicas` > 1): data parallel, one model.

Why not `model.fit`: under `MultiWorkerMirroredStrategy` Keras 3.15's `fit`
fails ("Attempt to convert a value (PerReplica:...) with an unsupported
type", keras-team/keras#20585); a step of our own (GradientTape,
`strategy.run`, the optimizer's all-reduce) works and keeps every worker's
weights equal.

How a group trains (`workload.modes.group` for how workers talk):
1. Agree: the chief's checkpoint (offsets, epoch, batch), or the bounds it
   captures now, goes to every worker; each reads only its share of those
   offset ranges (`workload.slices`: by partition, or by offset slices of a
   partition when there are fewer partitions than workers; no input
   sharding by TensorFlow).
2. Figures that decide are summed over the group (records, bad records by
   reason, the features' sums for normalisation), so every worker builds the
   same model and takes the same decision (too many bad records fails all).
3. A step trains `train.batchSize` records in all: worker `i` takes its
   share `b_i` from its own records, shuffled with the epoch's seed (shares
   in proportion to the records each holds, adding up to the batch size). The step all-reduces the row count first,
   so the loss is the mean over the whole batch, as for one trainer. An
   epoch has as many steps as the largest worker needs; a worker out of
   records trains empty batches (zero gradient) until then.
4. The validation slice (`train.validationFraction`, the same tail of each
   partition as one trainer holds out) is shared among the workers like the
   training ranges and never trained on; after each epoch each worker scores
   its share and the group sums the figures (loss, confusion counts, score
   histograms for the AUC), so `val_loss`, `val_accuracy` and `val_auc` are
   one trainer's on the same model. Early stopping is judged by the chief on
   them and its decision goes to every worker; the best epoch's weights are
   exported. `learningRateSchedule: cosine` decays over the group's steps.
5. Only the chief writes: checkpoints (same files as one trainer; the batch
   counts the group's steps), the export, the curve, the results. On resume
   every worker skips the same steps. The chief posts the live progress of the group
   (`status.progress`: the group's records). A stop (SIGTERM on any worker) is voted
   in every step, so all stop after the same step, where the chief
   checkpoints.
6. A worker that goes away aborts the others' steps: they exit with
   `PEER_LOST_EXIT` and the group restarts from the chief's last checkpoint.
   Figures of each epoch are summed once at its end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workload import progress as live
from workload.artifacts import Artifacts
from workload.data.decode import BAD_REASONS
from workload.identity import RunIdentity
from workload.kafka.bounds import partition_bounds, record_count
from workload.kafka.connection import KafkaConnection
from workload.kafka.dead_letter import send_dead_letters
from workload.model.build import (
    build_model,
    compile_model,
    describe_preprocessing,
    empty_inputs,
    encodings,
    feature_plan,
    input_signature,
    model_summary,
)
from workload.model.export import export_model
from workload.model.inputs import FEATURES
from workload.model.profile import TrainingProfile, merge_profiles
from workload.model.statistics import FeatureStatistics, merge_statistics
from workload.model.task import batch_figure, epoch_figures, task_loss, task_of
from workload.modes.checkpoint import (
    Checkpointer,
    TrainState,
    checkpoint_variables,
    load_own_state,
    restore_best,
    restore_checkpoint,
)
from workload.modes.group import Group, join_group, peers_needed
from workload.modes.signals import stop_on_sigterm
from workload.modes.tally import new_tally
from workload.modes.train_data import (
    BatchObserver,
    ReadSummary,
    TrainError,
    check_bad_records,
    epoch_dataset,
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
from workload.modes.train_progress import TrainProgress
from workload.plots import training_curve
from workload.replica import PeerLost, Replica
from workload.slices import batch_shares, replica_ranges
from workload.spec import DataSpec, StreamingTrainingJobSpec
from workload.status import Metrics, PodReport


def train_in_group(spec: StreamingTrainingJobSpec, identity: RunIdentity,
                   connection: KafkaConnection, artifacts: Artifacts, replica: Replica,
                   results: dict[str, Any], on_batch: BatchObserver | None = None) -> PodReport:
    """Train as worker `replica.index` of the group; the chief's report speaks for the group."""
    group = join_group(replica)
    try:
        return _train(spec, identity, connection, artifacts, group, results, on_batch)
    except TrainError as error:
        if group.chief:
            raise
        raise PeerLost(f"the group stops (worker 0 reports why): {error}") from error


def _agreed_state(spec: StreamingTrainingJobSpec, identity: RunIdentity,
                  connection: KafkaConnection, artifacts: Artifacts,
                  group: Group) -> tuple[TrainState, str | None]:
    """The chief's checkpoint state (or a new one on bounds it captures now), on every worker."""
    assert spec.train is not None
    state, ignored, failed = None, None, np.zeros(1)
    if group.chief:
        try:
            state, ignored = load_own_state(artifacts.checkpoints, identity, group.replica.count)
            if state is None:
                state = TrainState(spec.train.topic, partition_bounds(connection, spec.train.topic),
                                   job_uid=identity.job_uid, spec_digest=identity.spec_digest,
                                   workers=group.replica.count)
        except Exception:
            group.from_chief([np.ones(1)], "the chief read its checkpoint")
            raise
    (failed,) = group.from_chief([np.zeros(1)], "the chief read its checkpoint")
    if failed[0]:
        raise PeerLost("worker 0 could not start the group (its report says why)")
    offsets = state.offsets if state is not None else {}
    (count,) = group.from_chief([np.array([len(offsets)], np.int64)])
    table = np.array([[p, start, stop] for p, (start, stop) in sorted(offsets.items())]
                     or np.zeros((0, 3)), np.int64).reshape(-1, 3)
    (agreed, position) = group.from_chief(
        [table if group.chief else np.zeros((int(count[0]), 3), np.int64),
         np.array([state.epochs_done, state.batches_done, state.stopped_early] if state
                  else [0, 0, 0], np.int64)])
    if state is None:
        state = TrainState(spec.train.topic, {}, job_uid=identity.job_uid,
                           spec_digest=identity.spec_digest, workers=group.replica.count)
    state.offsets = {int(p): (int(start), int(stop)) for p, start, stop in agreed}
    state.epochs_done, state.batches_done = int(position[0]), int(position[1])
    state.stopped_early = bool(position[2])
    return state, ignored


def _group_summary(mine: ReadSummary, held: ReadSummary, data: DataSpec,
                   group: Group) -> tuple[ReadSummary, TrainingProfile]:
    """The group's read figures (every worker gets the same): counts summed, the training
    profile merged as one trainer reading every worker's records would have it; and the
    profile of the group's held-out labels."""
    n_features = len(data.numeric_names)
    workers, index = group.replica.count, group.replica.index
    empty = FeatureStatistics(0, np.zeros(n_features), np.ones(n_features),
                              np.zeros((0, n_features), np.float32))
    profile = mine.profile or TrainingProfile(empty)
    own = profile.statistics
    counts = np.array([mine.records, mine.good,
                       *(mine.bad_by_reason.get(reason, 0) for reason in BAD_REASONS)], np.int64)
    moments = np.zeros((workers, 1 + 2 * n_features))
    moments[index] = np.concatenate([[own.rows], own.mean, own.variance])
    sizes = np.zeros(workers, np.int64)
    sizes[index] = len(own.sample)
    total_counts, moments, sizes = group.all_sum([counts, moments, sizes],
                                                 "summing what was read")
    first = int(sizes[:index].sum())
    samples = np.zeros((int(sizes.sum()), n_features), np.float32)
    samples[first:first + len(own.sample)] = own.sample
    (samples,) = group.all_sum([samples], "sharing the row samples")
    edges = np.concatenate([[0], np.cumsum(sizes)])
    statistics = merge_statistics([
        FeatureStatistics(int(row[0]), row[1:1 + n_features], row[1 + n_features:],
                          samples[edges[worker]:edges[worker + 1]])
        for worker, row in enumerate(moments)])
    held_labels = held.profile.labels if held.profile is not None else {}
    shared = json.dumps({"values": profile.values, "labels": profile.labels,
                         "target": profile.target, "held": held_labels}).encode()
    parts = [json.loads(part) for part in group.gather(shared, "sharing the values seen")]
    whole = replace(merge_profiles([TrainingProfile(empty, part["values"], part["labels"],
                                                    tuple(part["target"])) for part in parts]),
                    statistics=statistics)
    held_whole = merge_profiles([TrainingProfile(empty, {}, part["held"]) for part in parts])
    summary = ReadSummary(records=int(total_counts[0]), good=int(total_counts[1]),
                          bad_by_reason={reason: int(count) for reason, count
                                         in zip(BAD_REASONS, total_counts[2:], strict=True)
                                         if count}, profile=whole)
    return summary, held_whole


def _train(spec: StreamingTrainingJobSpec, identity: RunIdentity, connection: KafkaConnection,
           artifacts: Artifacts, group: Group, results: dict[str, Any],
           on_batch: BatchObserver | None) -> PodReport:
    assert spec.train is not None
    train, data = spec.train, spec.data
    workers, index = group.replica.count, group.replica.index
    state, ignored = _agreed_state(spec, identity, connection, artifacts, group)
    if record_count(state.offsets) == 0:
        raise TrainError(f"topic {train.topic!r} has no records to train on "
                         f"(offsets {state.offsets})")
    training, validation = split_validation(state.offsets, train.validation_fraction)
    shares = replica_ranges(training, workers)
    mine = shares[index]
    checks_mine = replica_ranges(validation, workers)[index] if validation else {}
    results.update(offsets={str(p): list(span) for p, span in sorted(state.offsets.items())},
                   validationOffsets={str(p): list(span) for p, span in sorted(validation.items())},
                   workers=workers, shares=[{str(p): list(span) for p, span in sorted(share.items())}
                                            for share in shares])
    client, rule = spec.kafka.client, learning_rule(spec.model.task, spec.model.classes)
    with TrainProgress(False) as display:
        own = (read_all(connection, train.topic, mine, data, train.cache, display, client, rule)
               if record_count(mine) else ReadSummary())
        held = (read_all(connection, train.topic, checks_mine, data, True, display, client,
                         rule) if record_count(checks_mine) else ReadSummary())
    both = merged(own, held)  # transforms are chosen from training rows only: `own`'s profile
    if both.dead_letters and data.dead_letter_topic is not None:
        send_dead_letters(connection, data.dead_letter_topic, train.topic, both.dead_letters)
    summary, held_labels = _group_summary(both, held, data, group)
    results["recordsThisRun"] = summary.records
    check_bad_records(summary, train.topic, data)
    assert summary.profile is not None
    facts = task_facts(spec, summary.profile, [held_labels])
    results.update(task_results(facts))
    own, held = with_classes(own, facts), with_classes(held, facts)
    goods = np.zeros((2, workers), np.int64)
    goods[:, index] = own.good, held.good
    (goods,) = group.all_sum([goods], "counting records")
    trained, validated = int(goods[0].sum()), int(goods[1].sum())
    share = batch_shares(train.batch_size, [int(count) for count in goods[0]])
    steps = max(-(-int(count) // size) for count, size in zip(goods[0], share, strict=True)
                if size)

    plan = feature_plan(spec.model, summary.profile)
    decay_steps = train.epochs * steps if train.learning_rate_schedule == "cosine" else None
    with group.strategy.scope():
        model = build_model(spec.model, data, summary.profile, facts, plan, decay_steps,
                            artifacts.model_file)
        model.optimizer.build(model.trainable_variables)
    preprocessing = describe_preprocessing(spec.model, plan, data.numeric_names,
                                           encodings(data, summary.profile, spec.model))
    results.update(preprocessing=preprocessing, modelSummary=model_summary(model))
    if group.chief:
        restore_checkpoint(artifacts.checkpoints, state, model)
    _sync_variables(model, group)
    resumed_at = (state.epochs_done, state.batches_done)
    rows = (training_rows(own, connection, train.topic, mine, data, train.cache, client,
                          reading_rule(facts))
            if own.good else tf.data.Dataset.from_tensor_slices(kept_rows(ReadSummary(), data)))
    stop = threading.Event()
    checkpointer = Checkpointer(artifacts.checkpoints, state, train.checkpoint_every_seconds,
                                steps, stop, train.early_stopping if validated else None)
    checkpointer.set_model(model)
    # The chief logs each epoch's figures for TensorBoard, as Keras' callback names them.
    board = (tf.summary.create_file_writer(str(artifacts.tensorboard / "train"))
             if group.chief else tf.summary.create_noop_writer())
    checks = validation_rows(held, data) if validated else None
    started = time.perf_counter()
    with stop_on_sigterm(stop), board.as_default():
        _epochs(model, rows, checks, spec, state, group, checkpointer, max(share[index], 1),
                (steps, trained), on_batch)
    fit_seconds = time.perf_counter() - started
    results.update(history=state.history, resumedAtEpoch=resumed_at[0],
                   resumedAtBatch=resumed_at[1], epochsRun=state.epochs_done - resumed_at[0],
                   fitSeconds=round(fit_seconds, 3), stepsPerEpoch=steps,
                   bestEpoch=state.best_epoch or None, stoppedEarly=state.stopped_early)
    if state.epochs_done < train.epochs and not state.stopped_early:
        return PodReport(
            mode="train", ok=False, epoch=state.epochs_done, resume_ignored=ignored,
            message=(f"stopped (SIGTERM) in epoch {state.epochs_done + 1} after step "
                     f"{state.batches_done}; the chief's checkpoint is written and a restart "
                     "of the group resumes there"))
    epoch_of_model = state.best_epoch if state.best_weights_file else state.epochs_done
    results["exportedEpoch"] = epoch_of_model
    if group.chief:
        # The same network outside the strategy: a clone keeps every layer's name (a user's
        # factory called again would number its layers anew), so the variables match by name.
        plain = keras.models.clone_model(model)
        compile_model(plain, spec.model, decay_steps)
        _export(model, plain, spec, artifacts, state)
    group.barrier("the chief exported the model")
    epochs_run = int(results["epochsRun"])
    rate = trained * epochs_run / fit_seconds if epochs_run else None
    history = state.history
    return PodReport(
        mode="train", ok=True,
        metrics=Metrics(
            **history_metrics(history, epoch_of_model),
            records_trained=trained, records_validated=validated, bad_records=summary.bad,
            bad_records_by_reason=dict(sorted(summary.bad_by_reason.items()))),
        model_uri=artifacts.uri(artifacts.keras_model) if group.chief else None,
        epoch=state.epochs_done, records_per_second=round(rate, 1) if rate else None,
        preprocessing=preprocessing["summary"], resume_ignored=ignored,
        classes=list(facts.classes) if facts.classes else None)


def _sync_variables(model: keras.Model, group: Group) -> None:
    """Give every worker the chief's weights and optimizer state (restored or initial)."""
    variables = list(checkpoint_variables(model).values())
    values = group.from_chief([np.asarray(v.numpy()) for v in variables],
                              "sharing the chief's weights")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def _step_function(model: keras.Model, spec: StreamingTrainingJobSpec,
                   group: Group) -> Callable[..., tf.Tensor]:
    """One step of the group: [loss sum, figure sum] of this worker's rows (the figure: correct
    predictions, or squared errors for regression), [rows, stop votes] of the whole group."""
    facts = task_of(model)
    losses = task_loss(facts, spec.model, reduction=None)
    figure = batch_figure(facts)

    def replica_step(inputs: Any, labels: tf.Tensor, vote: tf.Tensor) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        rows = tf.cast(tf.shape(labels)[0], tf.float32)
        together = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.stack([rows, vote]))
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True)
            per_record = losses(tf.reshape(labels, [-1, 1]), outputs)
            loss = tf.nn.compute_average_loss(
                per_record, global_batch_size=tf.cast(tf.maximum(together[0], 1.0), tf.int64))
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        figures = tf.stack([tf.reduce_sum(per_record), figure(labels, outputs)])
        return tf.concat([figures, together], 0)

    def step(inputs: Any, labels: tf.Tensor, vote: tf.Tensor) -> tf.Tensor:
        result = group.strategy.run(replica_step, args=(inputs, labels, vote))
        local: tf.Tensor = group.strategy.experimental_local_results(result)[0]
        return local

    compiled: Callable[..., tf.Tensor] = tf.function(step, input_signature=[
        input_signature(spec.data), tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([], tf.float32)])
    return compiled


VALIDATION_FIGURES = {"binary": ("accuracy", "auc"), "multiclass": ("accuracy",),
                      "regression": ("rmse", "mae")}
"""Figures of the validation slice in the history (`val_<name>`) per task, besides the loss."""


def _validate(model: keras.Model, checks: tf.data.Dataset | None, spec: StreamingTrainingJobSpec,
              group: Group) -> dict[str, float]:
    """The group's validation figures (every worker scores its share of the slice; the sums
    are one trainer's on the whole slice): `val_loss` and the task's (`val_accuracy`, ...)."""
    facts = task_of(model)
    losses = task_loss(facts, spec.model, reduction=None)
    tally = new_tally(facts.task, facts.classes)
    loss = np.zeros(2)
    for inputs, labels in checks if checks is not None else ():
        outputs = model(inputs, training=False)
        loss += (float(tf.reduce_sum(losses(tf.reshape(labels, [-1, 1]), outputs))), len(labels))
        tally.add(labels.numpy(), outputs.numpy())
    summed = group.all_sum([loss, *tally.arrays()], "summing the validation")
    figures = tally.from_arrays(summed[1:]).figures()
    return {"val_loss": summed[0][0] / max(summed[0][1], 1.0),
            **{f"val_{name}": figures[name] for name in VALIDATION_FIGURES[facts.task]}}


def _epochs(model: keras.Model, rows: tf.data.Dataset, checks: tf.data.Dataset | None,
            spec: StreamingTrainingJobSpec, state: TrainState, group: Group,
            checkpointer: Checkpointer, share: int, steps_records: tuple[int, int],
            on_batch: BatchObserver | None) -> None:
    """Train from where `state` stands to the last epoch, until early stopping says enough (the
    chief judges, every worker follows), or until the group votes to stop; validate after each
    epoch when the group holds a validation slice (`checkpointer.early` is set then).
    `steps_records`: the group's steps and training records per epoch. The chief posts the
    group's live progress (a step trains `train.batchSize` records of the whole group)."""
    assert spec.train is not None
    steps, records = steps_records
    epochs, batch_size = spec.train.epochs, spec.train.batch_size
    step = _step_function(model, spec, group)
    facts = task_of(model)
    empty = (empty_inputs(spec.data), tf.zeros([0], tf.float32))
    for epoch in range(state.epochs_done, spec.train.epochs):
        if checkpointer.stop.is_set() or state.stopped_early:
            return
        skipped = state.batches_done
        checkpointer.begin_epoch(skipped)
        batches = iter(epoch_dataset(rows, spec, epoch, skipped, batch_size=share))
        totals = np.zeros(3)
        for number in range(skipped, steps):
            inputs, labels = next(batches, empty)
            if on_batch is not None and len(labels):
                on_batch(epoch, np.asarray(inputs[FEATURES] if isinstance(inputs, dict)
                                           else inputs))
            vote = tf.constant(1.0 if checkpointer.stop.is_set() else 0.0)
            with peers_needed(f"training epoch {epoch + 1}, step {number + 1}"):
                out = np.asarray(step(inputs, labels, vote))
            totals += (out[0], out[1], len(labels))
            if out[3] > 0:
                checkpointer.stop.set()  # every worker saw the same vote
            if group.chief:
                checkpointer.on_train_batch_end(number - skipped)
                live.report(records=epoch * records + min(records, (number + 1) * batch_size),
                            records_total=epochs * records, epoch=epoch, epochs=epochs)
            else:
                state.batches_done = number + 1
            if checkpointer.stop.is_set() and number + 1 < steps:
                return  # the chief saved this step
        loss_sum, figure_sum, count = group.all_sum([totals], "summing the epoch")[0]
        logs = epoch_figures(facts, loss_sum, figure_sum, count)
        if checkpointer.early is not None:
            with peers_needed(f"validating epoch {epoch + 1}"):
                logs.update(_validate(model, checks, spec, group))
        for key, value in logs.items():
            tf.summary.scalar(f"epoch_{key}", value, step=epoch)
        if group.chief:
            checkpointer.on_epoch_end(epoch, logs)
            live.report(records=(epoch + 1) * records, records_total=epochs * records,
                        epoch=epoch + 1, epochs=epochs, loss=logs["loss"],
                        accuracy=logs.get("accuracy"))
        else:
            state.epochs_done, state.batches_done = epoch + 1, 0
        if checkpointer.early is not None:
            (stopped,) = group.from_chief([np.array([state.stopped_early], np.int64)],
                                          "agreeing whether to stop early")
            state.stopped_early = bool(stopped[0])


def _export(model: keras.Model, plain: keras.Model, spec: StreamingTrainingJobSpec,
            artifacts: Artifacts, state: TrainState) -> None:
    """Export `plain` (the same network, built outside the strategy) holding the group's
    weights and optimizer state (the best epoch's with `earlyStopping.restoreBestWeights`), as
    one trainer exports its own, then the training curve."""
    assert spec.train is not None
    trained = checkpoint_variables(model)
    for name, variable in checkpoint_variables(plain).items():
        variable.assign(trained[name].numpy())
    restore_best(artifacts.checkpoints, state, plain)
    export_model(plain, artifacts.keras_model, artifacts.saved_model)
    training_curve(state.history, artifacts.training_curve, f"{spec.train.topic}: training")
