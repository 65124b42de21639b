"""The task's end of the model: output layer, task layer, loss, metrics and per-batch figures.

| task | output | loss | metrics |
|---|---|---|---|
| `binary` | 1 sigmoid unit | binary cross-entropy | accuracy, AUC |
| `multiclass` | 1 softmax unit per class | sparse categorical cross-entropy | accuracy |
| `regression` | 1 linear unit, then `x * std + mean` | MSE or Huber on standardised errors | RMSE, MAE |

Losses take probabilities (`from_logits=False`): TensorFlow's Kafka tutorial
fed its sigmoid output to a loss with `from_logits=True`, which squashes the
output twice and trains against the wrong gradient.

The last layer of every model is a `TaskHead` (named `task`): it keeps the
task, the classes and the regression target's mean and standard deviation
in its config, so a saved model says what it predicts, and for regression it
turns the network's standardised output into the label's units: the exported
model answers in them. The loss then divides the error by the standard
deviation again (`StandardizedError`), which is training on standardised
targets. A model without the layer (saved before tasks) is binary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from workload.model.profile import TaskFacts
from workload.spec import ModelSpec

HEAD_NAME = "task"
"""Name of the `TaskHead` layer in a model."""

OUTPUT_NAMES = {"binary": "probability", "multiclass": "probabilities",
                "regression": "standardized"}
"""Name of the output layer per task."""


@keras.saving.register_keras_serializable(package="streamtrain")
class TaskHead(keras.layers.Layer):  # type: ignore[misc]
    """The model's last layer: records the task; for regression, standardised -> label units."""

    def __init__(self, task: str = "binary", classes: list[str] | None = None,
                 target_mean: float = 0.0, target_std: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.task = task
        self.classes = list(classes) if classes is not None else None
        self.target_mean, self.target_std = float(target_mean), float(target_std)

    @classmethod
    def of(cls, facts: TaskFacts) -> TaskHead:
        """The layer recording `facts`."""
        return cls(facts.task, list(facts.classes) if facts.classes else None, facts.target_mean,
                   facts.target_std, name=HEAD_NAME)

    def call(self, inputs: Any) -> Any:
        if self.task == "regression":
            return inputs * self.target_std + self.target_mean
        return inputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "task": self.task, "classes": self.classes,
                "target_mean": self.target_mean, "target_std": self.target_std}


def task_of(model: keras.Model) -> TaskFacts:
    """What `model` predicts, from its task layer (binary when it has none)."""
    for layer in model.layers:
        if isinstance(layer, TaskHead):
            return TaskFacts(layer.task, tuple(layer.classes) if layer.classes else None,  # type: ignore[arg-type]
                             layer.target_mean, layer.target_std)
    return TaskFacts("binary")


def output_layer(facts: TaskFacts) -> keras.layers.Layer:
    """The task's output layer (before the task layer)."""
    activation = {"binary": "sigmoid", "multiclass": "softmax", "regression": None}[facts.task]
    return keras.layers.Dense(facts.outputs, activation=activation,
                              name=OUTPUT_NAMES[facts.task])


@keras.saving.register_keras_serializable(package="streamtrain")
class StandardizedError(keras.losses.Loss):  # type: ignore[misc]
    """Regression loss on errors divided by the target's standard deviation: `mse` (their
    square) or `huber` (their square / 2 within 1, linear beyond)."""

    def __init__(self, kind: str = "mse", target_std: float = 1.0, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", f"standardized_{kind}"), **kwargs)
        self.kind, self.target_std = kind, float(target_std)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        truth = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
        error = (y_pred - truth) / self.target_std
        if self.kind == "huber":
            size = ops.abs(error)
            per_unit = ops.where(size <= 1.0, 0.5 * ops.square(error), size - 0.5)
        else:
            per_unit = ops.square(error)
        return ops.mean(per_unit, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "kind": self.kind, "target_std": self.target_std}


def task_loss(facts: TaskFacts, spec: ModelSpec, reduction: str | None = "sum_over_batch_size"
              ) -> keras.losses.Loss:
    """The task's loss (per record with `reduction=None`)."""
    if facts.task == "multiclass":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=False, reduction=reduction)
    if facts.task == "regression":
        return StandardizedError(spec.loss or "mse", facts.target_std, reduction=reduction)
    return keras.losses.BinaryCrossentropy(from_logits=False, reduction=reduction)


def task_metrics(facts: TaskFacts) -> list[keras.metrics.Metric]:
    """The metrics Keras reports per epoch (names as in the history: `accuracy`, `rmse`, ...)."""
    if facts.task == "multiclass":
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if facts.task == "regression":
        return [keras.metrics.RootMeanSquaredError(name="rmse"),
                keras.metrics.MeanAbsoluteError(name="mae")]
    return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]


def batch_figure(facts: TaskFacts) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A function of (labels [n], outputs) giving the batch's figure sum: correct predictions
    (classification) or squared errors in label units (regression); float32."""

    def figure(labels: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
        if facts.task == "multiclass":
            predicted = tf.argmax(outputs, axis=-1, output_type=tf.int64)
            hits = tf.equal(predicted, tf.cast(labels, tf.int64))
        elif facts.task == "regression":
            return tf.reduce_sum(tf.square(tf.reshape(outputs, [-1]) - labels))
        else:
            hits = tf.equal(tf.reshape(outputs, [-1]) > 0.5, labels > 0.5)
        return tf.reduce_sum(tf.cast(hits, tf.float32))

    return figure


def epoch_figures(facts: TaskFacts, loss_sum: float, figure_sum: float,
                  count: float) -> dict[str, float]:
    """An epoch's `loss` and `accuracy` (or `rmse`) from the sums of its batches."""
    rows = max(count, 1.0)
    if facts.task == "regression":
        return {"loss": loss_sum / rows, "rmse": (figure_sum / rows) ** 0.5}
    return {"loss": loss_sum / rows, "accuracy": figure_sum / rows}
