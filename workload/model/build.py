"""The binary classifier of a job, built from `spec.model`.

Hidden layers come from the spec (dense layers default to ReLU), followed by
one sigmoid unit. The loss is binary cross-entropy on probabilities
(`from_logits=False`): TensorFlow's Kafka tutorial fed its sigmoid output to
a loss with `from_logits=True`, which squashes the output twice and trains
against the wrong gradient.

Real features differ by orders of magnitude, have heavy tails and
near-constant columns, so the model's first layer prepares them
(`spec.model.preprocessing`), with numbers taken from the training data
(`workload.model.statistics`):
- `robust` (default): per feature, a signed log for heavy tails, a clip at
  extreme quantiles, standardisation, near-constant columns dropped
  (`workload.model.preprocessing`);
- `standardize`: a `Normalization` layer with the training mean and variance;
- `none`: raw features.
Inside the model, so the exported model takes raw features and serving needs
no preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from workload.model.preprocessing import FeaturePreprocessing
from workload.model.statistics import FeaturePlan, FeatureStatistics, plan_features
from workload.permanent import ShapeMismatch
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


def feature_plan(spec: ModelSpec, statistics: FeatureStatistics | None) -> FeaturePlan | None:
    """The per-feature transforms of `robust` preprocessing (`None` for other choices)."""
    if spec.preprocessing != "robust" or statistics is None:
        return None
    return plan_features(statistics)


def describe_preprocessing(spec: ModelSpec, plan: FeaturePlan | None,
                           names: list[str]) -> dict[str, Any]:
    """What the model does to each feature, for the results: the choice in one line
    (`robust: 9 standardize, 9 signed-log`) and per feature its transform and why."""
    document: dict[str, Any] = {"choice": spec.preprocessing, "summary": spec.preprocessing}
    if plan is not None:
        document["summary"] = f"{spec.preprocessing}: {plan.summary()}"
        document["features"] = {name: {"transform": kind, "reason": why} for name, kind, why in
                                zip(names, plan.transforms, plan.reasons, strict=True)}
    return document


def build_model(spec: ModelSpec, n_features: int, statistics: FeatureStatistics | None = None,
                plan: FeaturePlan | None = None, decay_steps: int | None = None) -> keras.Model:
    """A compiled model for `n_features` raw inputs.

    `statistics` (of the training features) set the preprocessing; without
    them `standardize` is the identity. `plan` is the robust preprocessing
    when already chosen (`feature_plan`); `decay_steps` see `compile_model`.
    """
    inputs = keras.Input(shape=(n_features,), name=INPUT_NAME, dtype="float32")
    hidden = inputs
    if spec.preprocessing == "robust":
        plan = plan or feature_plan(spec, statistics)
        if plan is not None:
            hidden = FeaturePreprocessing.from_plan(plan)(hidden)
    elif spec.preprocessing == "standardize":
        mean, variance = ((statistics.mean, statistics.variance) if statistics is not None
                          else (np.zeros(n_features), np.ones(n_features)))
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
    compile_model(model, spec, decay_steps)
    return model


def load_model(path: Path, features: int | None = None) -> keras.Model:
    """A saved model, uncompiled (its preprocessing layer's class is registered by import).

    With `features`, a model that takes another number of input features raises
    `ShapeMismatch`: every record would fail the same way, so no pod should try again.
    """
    model = keras.saving.load_model(path, compile=False)
    if features is not None:
        takes = model.inputs[0].shape[-1] if model.inputs else None
        if takes is not None and int(takes) != features:
            raise ShapeMismatch(
                f"the model at {path} takes {takes} features, but the job's data has {features} "
                "(data.features or data.columns); evaluate or learn with a model trained on "
                "data of this layout")
    return model


def model_summary(model: keras.Model) -> str:
    """Keras' summary table of the model, as text."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


def compile_model(model: keras.Model, spec: ModelSpec, decay_steps: int | None = None) -> None:
    """Attach the spec's optimizer, the probability loss and accuracy/AUC metrics; with
    `decay_steps`, the step size follows a cosine from `learningRate` to 0 over that many
    steps (a function of the optimizer's step count, so a resumed run follows it exactly)."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = spec.learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.CosineDecay(spec.learning_rate, decay_steps)
    model.compile(
        optimizer=OPTIMIZERS[spec.optimizer](learning_rate=rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=False),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
