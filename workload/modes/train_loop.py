"""The one training loop: one trainer and every worker of a group train with the same step.

Why not `model.fit`: under `MultiWorkerMirroredStrategy` Keras 3.15's `fit`
fails ("Attempt to convert a value (PerReplica:...) with an unsupported
type", keras-team/keras#20585); a step of our own (GradientTape,
`strategy.run`, the optimizer's all-reduce) works and keeps every worker's
weights equal. One trainer runs the same step under TensorFlow's default
strategy (`Group.solo`), so single trainers and groups train every task and
every user model alike.

A step trains `train.batchSize` records in all: worker `i` takes its share
`b_i` from its own records, shuffled with the epoch's seed (a trainer alone
takes the whole batch). The step all-reduces the row count first, so the
loss is the mean over the whole batch, as for one trainer (plus the model's
regularisation losses, as `fit` adds them). An epoch has as many steps as
the largest worker needs; a worker out of records trains empty batches (zero
gradient) until then. A stop (SIGTERM) is voted in every step, so all stop
after the same step, where the chief checkpoints.

After each epoch the group sums its figures once: the loss and the task's
figure (accuracy, or RMSE for regression) of the epoch's steps, and, with a
validation slice, every worker's tally of its share of it (`val_loss` and the
task's figures), so they are one trainer's on the same model. Early stopping
is judged by the chief on them and its decision goes to every worker.

The chief calls the checkpointer (`workload.modes.checkpoint`) at each step
and epoch end, posts the live progress of the group, and writes each epoch's
figures for TensorBoard as Keras' callback names them (`train/` and
`validation/`, `epoch_<figure>`). Extra Keras callbacks (a user's logging,
the local progress display) see `on_epoch_begin`, `on_train_batch_end` and
`on_epoch_end` as under `fit`, batches counted within this process's epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workload import progress as live
from workload.model.build import empty_inputs, input_signature
from workload.model.inputs import FEATURES
from workload.model.task import batch_figure, epoch_figures, task_loss, task_of
from workload.modes.checkpoint import Checkpointer, TrainState, checkpoint_variables
from workload.modes.group import Group, peers_needed
from workload.modes.tally import new_tally
from workload.modes.train_data import BatchObserver, epoch_dataset
from workload.spec import StreamingTrainingJobSpec

VALIDATION_FIGURES = {"binary": ("accuracy", "auc"), "multiclass": ("accuracy",),
                      "regression": ("rmse", "mae")}
"""Figures of the validation slice in the history (`val_<name>`) per task, besides the loss."""


@dataclass(frozen=True)
class Plan:
    """How many steps an epoch has, and what each worker trains of a step."""

    steps: int
    """Steps per epoch (the largest worker's)."""
    records: int
    """Training records of the whole group per epoch."""
    share: int
    """Rows of each step this worker trains (its share of `train.batchSize`)."""


def sync_variables(model: keras.Model, group: Group) -> None:
    """Give every worker the chief's weights and optimizer state (restored or initial)."""
    if not group.grouped:
        return
    variables = list(checkpoint_variables(model).values())
    values = group.from_chief([np.asarray(v.numpy()) for v in variables],
                              "sharing the chief's weights")
    for variable, value in zip(variables, values, strict=True):
        variable.assign(value)


def step_function(model: keras.Model, spec: StreamingTrainingJobSpec,
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
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
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


def validate(model: keras.Model, checks: tf.data.Dataset | None, spec: StreamingTrainingJobSpec,
             group: Group) -> dict[str, float]:
    """The group's validation figures (every worker scores its share of the slice; the sums
    are one trainer's on the whole slice): `val_loss` and the task's (`val_accuracy`, ...)."""
    facts = task_of(model)
    losses = task_loss(facts, spec.model, reduction=None)
    tally = new_tally(facts.task, facts.classes)
    loss = np.zeros(2)
    for inputs, labels in checks if checks is not None else ():
        outputs = model(inputs, training=False)
        per_record = losses(tf.reshape(labels, [-1, 1]), outputs)
        loss += (float(tf.reduce_sum(per_record)), len(labels))
        tally.add(labels.numpy(), outputs.numpy())
    summed = group.all_sum([loss, *tally.arrays()], "summing the validation")
    figures = tally.from_arrays(summed[1:]).figures()
    return {"val_loss": summed[0][0] / max(summed[0][1], 1.0),
            **{f"val_{name}": figures[name] for name in VALIDATION_FIGURES[facts.task]}}


def train_epochs(model: keras.Model, rows: tf.data.Dataset, checks: tf.data.Dataset | None,
                 spec: StreamingTrainingJobSpec, state: TrainState, group: Group,
                 checkpointer: Checkpointer, plan: Plan,
                 callbacks: Sequence[keras.callbacks.Callback] = (),
                 board: tuple[Any, Any] | None = None,
                 on_batch: BatchObserver | None = None) -> None:
    """Train from where `state` stands to the last epoch, until early stopping says enough (the
    chief judges, every worker follows), or until the group votes to stop; validate after each
    epoch when there is a validation slice (`checkpointer.early` is set then). `board`: the
    chief's TensorBoard writers (train, validation)."""
    assert spec.train is not None
    epochs, batch_size = spec.train.epochs, spec.train.batch_size
    step = step_function(model, spec, group)
    facts = task_of(model)
    empty = (empty_inputs(spec.data), tf.zeros([0], tf.float32))
    hooks = keras.callbacks.CallbackList(list(callbacks), model=model) if callbacks else None
    votes = (tf.constant(0.0), tf.constant(1.0))
    for epoch in range(state.epochs_done, epochs):
        if checkpointer.stop.is_set() or state.stopped_early:
            return
        skipped = state.batches_done
        checkpointer.begin_epoch(skipped)
        if hooks is not None:
            hooks.on_epoch_begin(epoch)
        batches = iter(epoch_dataset(rows, spec, epoch, skipped, batch_size=plan.share))
        totals = np.zeros(3)
        for number in range(skipped, plan.steps):
            inputs, labels = next(batches, empty)
            if on_batch is not None and len(labels):
                on_batch(epoch, np.asarray(inputs[FEATURES] if isinstance(inputs, dict)
                                           else inputs))
            vote = votes[checkpointer.stop.is_set()]
            with peers_needed(f"training epoch {epoch + 1}, step {number + 1}"):
                out = np.asarray(step(inputs, labels, vote))
            totals += (out[0], out[1], len(labels))
            if out[3] > 0:
                checkpointer.stop.set()  # every worker saw the same vote
            if hooks is not None:
                hooks.on_train_batch_end(number - skipped,
                                         {"loss": out[0] / max(len(labels), 1)})
            if group.chief:
                checkpointer.on_train_batch_end(number - skipped)
                live.report(records=epoch * plan.records + min(plan.records,
                                                               (number + 1) * batch_size),
                            records_total=epochs * plan.records, epoch=epoch, epochs=epochs)
            else:
                state.batches_done = number + 1
            if checkpointer.stop.is_set() and number + 1 < plan.steps:
                return  # the chief saved this step
        loss_sum, figure_sum, count = group.all_sum([totals], "summing the epoch")[0]
        logs = epoch_figures(facts, loss_sum, figure_sum, count)
        if checkpointer.early is not None:
            with peers_needed(f"validating epoch {epoch + 1}"):
                logs.update(validate(model, checks, spec, group))
        if board is not None:
            _write_board(board, logs, epoch)
        if hooks is not None:
            hooks.on_epoch_end(epoch, dict(logs))
        if group.chief:
            checkpointer.on_epoch_end(epoch, logs)
            live.report(records=(epoch + 1) * plan.records, records_total=epochs * plan.records,
                        epoch=epoch + 1, epochs=epochs, loss=logs["loss"],
                        accuracy=logs.get("accuracy"))
        else:
            state.epochs_done, state.batches_done = epoch + 1, 0
        if checkpointer.early is not None and group.grouped:
            (stopped,) = group.from_chief([np.array([state.stopped_early], np.int64)],
                                          "agreeing whether to stop early")
            state.stopped_early = bool(stopped[0])


def _write_board(board: tuple[Any, Any], logs: dict[str, float], epoch: int) -> None:
    """An epoch's figures for TensorBoard: training ones in `train/`, validation ones (without
    their `val_` prefix) in `validation/`, as Keras' callback writes them."""
    training, validation = board
    for writer, prefix in ((training, ""), (validation, "val_")):
        with writer.as_default():
            for key, value in logs.items():
                if (key.startswith("val_") if prefix else not key.startswith("val_")):
                    tf.summary.scalar(f"epoch_{key.removeprefix(prefix)}", value, step=epoch)
        writer.flush()
