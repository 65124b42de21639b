"""The binary classifier of a job, built from `spec.model`.

Hidden layers come from the spec (dense layers default to ReLU), followed by
one sigmoid unit. The loss is binary cross-entropy on probabilities
(`from_logits=False`): TensorFlow's Kafka tutorial fed its sigmoid output to
a loss with `from_logits=True`, which squashes the output twice and trains
against the wrong gradient.

Raw SUSY-like features differ by orders of magnitude (momenta in the
hundreds, angles around one); with `normalize` a `Normalization` layer holding
the training features' mean and variance standardises them inside the model,
so the exported model takes raw features and serving needs no preprocessing.
The statistics are plain numbers computed while the data is read
(`feature_statistics`, or `RunningStatistics` batch by batch), so a model
can be built without holding every record.
"""

from __future__ import annotations

import keras
import numpy as np
import numpy.typing as npt

from workload.spec import ModelSpec

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
}
"""Optimizer classes by the names `ModelSpec.optimizer` accepts."""

DEFAULT_ACTIVATION = "relu"
"""Activation of a dense layer that names none (the tutorial's)."""

INPUT_NAME = "features"
"""Name of the model's input: float32 [batch, n_features], raw (unscaled) values."""


Statistics = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
"""Per-feature (mean, variance) of the training data."""


class RunningStatistics:
    """Mean and variance of features accumulated batch by batch (float64 sums)."""

    def __init__(self, n_features: int) -> None:
        self.rows = 0
        self.total = np.zeros(n_features, np.float64)
        self.total_squares = np.zeros(n_features, np.float64)

    def add(self, features: npt.NDArray[np.float32]) -> None:
        """Account for a batch of rows (float32 [rows, n_features])."""
        values = features.astype(np.float64)
        self.rows += len(values)
        self.total += values.sum(axis=0)
        self.total_squares += np.square(values).sum(axis=0)

    def result(self) -> Statistics:
        """(mean, variance); zeros and ones when no row was seen."""
        if self.rows == 0:
            return np.zeros_like(self.total), np.ones_like(self.total)
        mean = self.total / self.rows
        variance = np.maximum(self.total_squares / self.rows - np.square(mean), 0.0)
        return mean, variance


def feature_statistics(features: npt.NDArray[np.float32]) -> Statistics:
    """(mean, variance) of float32 [rows, n_features]."""
    running = RunningStatistics(features.shape[1])
    running.add(features)
    return running.result()


def build_model(
    spec: ModelSpec, n_features: int, statistics: Statistics | None = None
) -> keras.Model:
    """A compiled model for `n_features` raw inputs.

    With `spec.normalize`, `statistics` (the training data's per-feature mean
    and variance) standardise the inputs; without them the layer is the identity.
    """
    inputs = keras.Input(shape=(n_features,), name=INPUT_NAME, dtype="float32")
    hidden = inputs
    if spec.normalize:
        mean, variance = statistics or (np.zeros(n_features), np.ones(n_features))
        normalization = keras.layers.Normalization(
            axis=-1, mean=mean.tolist(), variance=variance.tolist(), name="normalize")
        hidden = normalization(hidden)
    for index, layer in enumerate(spec.layers):
        if layer.dense is not None:
            hidden = keras.layers.Dense(
                layer.dense, activation=layer.activation or DEFAULT_ACTIVATION,
                name=f"dense_{index}")(hidden)
        else:
            hidden = keras.layers.Dropout(layer.dropout or 0.0, name=f"dropout_{index}")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="probability")(hidden)
    model = keras.Model(inputs, outputs, name="streamtrain_classifier")
    compile_model(model, spec)
    return model


def compile_model(model: keras.Model, spec: ModelSpec) -> None:
    """Attach the spec's optimizer, the probability loss and accuracy/AUC metrics."""
    model.compile(
        optimizer=OPTIMIZERS[spec.optimizer](learning_rate=spec.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=False),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
