"""A job's model, built from `spec.model` and what the training range says about the data.

The model reads raw records' values (`workload.model.inputs`) and prepares
them itself, with numbers taken from the training range
(`workload.model.profile`):
- numeric features, as `spec.model.preprocessing` says: `robust` (default:
  per feature a signed log for heavy tails, a clip at extreme quantiles,
  standardisation, near-constant columns dropped;
  `workload.model.preprocessing`), `standardize` (a `Normalization` layer
  with the training mean and variance) or `none` (raw);
- categorical fields: a vocabulary lookup, one-hot or an embedding
  (`workload.model.categorical`).
Then the hidden layers of the spec (dense layers default to ReLU) and the
task's output layer, or the user's own network (`workload.model.user`), and
the task layer (`workload.model.task`: for regression the output comes back
in the label's units). Everything sits
inside the model, so the exported model takes raw values and serving needs
no preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from workload.model.categorical import Encoding
from workload.model.inputs import FEATURES, InputLayout
from workload.model.preprocessing import FeaturePreprocessing
from workload.model.profile import TaskFacts, TrainingProfile
from workload.model.statistics import FeaturePlan, plan_features
from workload.model.task import TaskHead, output_layer, task_loss, task_metrics, task_of
from workload.model.user import model_request, user_network
from workload.permanent import ShapeMismatch
from workload.spec import DataSpec, ModelSpec

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
}
"""Optimizer classes by the names `ModelSpec.optimizer` accepts."""

DEFAULT_ACTIVATION = "relu"
"""Activation of a dense layer that names none (the tutorial's)."""

INPUT_NAME = FEATURES
"""Name of the model's numeric input: float32 [batch, n_numeric], raw (unscaled) values."""


def feature_plan(spec: ModelSpec, profile: TrainingProfile | None) -> FeaturePlan | None:
    """The per-feature transforms of `robust` preprocessing (`None` for other choices)."""
    if spec.preprocessing != "robust" or profile is None or profile.statistics.mean.size == 0:
        return None
    return plan_features(profile.statistics)


def encodings(data: DataSpec, profile: TrainingProfile | None,
              spec: ModelSpec | None = None) -> list[Encoding]:
    """How each categorical field is encoded, from its vocabulary in the training range (sized
    for `data.maxTokens` values in front of a user's model)."""
    capacity = data.max_tokens + 1 if spec is not None and spec.user_model else None
    return [Encoding(name, tuple(profile.vocabulary(name, data.max_tokens) if profile else ()),
                     capacity) for name in data.categorical_names]


def describe_preprocessing(spec: ModelSpec, plan: FeaturePlan | None, names: list[str],
                           categorical: list[Encoding] | None = None) -> dict[str, Any]:
    """What the model does to each feature, for the results: the choice in one line
    (`robust: 9 standardize, 9 signed-log`) and per feature its transform and why, per
    categorical field its vocabulary and encoding."""
    document: dict[str, Any] = {"choice": spec.preprocessing, "summary": spec.preprocessing}
    if plan is not None:
        document["summary"] = f"{spec.preprocessing}: {plan.summary()}"
        document["features"] = {name: {"transform": kind, "reason": why} for name, kind, why in
                                zip(names, plan.transforms, plan.reasons, strict=True)}
    if categorical:
        one_hot = sum(encoding.one_hot for encoding in categorical)
        parts = [f"{count} {kind}" for count, kind in ((one_hot, "one-hot"),
                 (len(categorical) - one_hot, "embedding")) if count]
        document["summary"] += f"; categorical: {', '.join(parts)}"
        document["categorical"] = {encoding.field: encoding.describe() for encoding in categorical}
    return document


def build_model(spec: ModelSpec, data: DataSpec, profile: TrainingProfile | None = None,
                facts: TaskFacts | None = None, plan: FeaturePlan | None = None,
                decay_steps: int | None = None, model_file: Path | None = None) -> keras.Model:
    """A compiled model for `data`'s records solving `facts`' task (default: `spec.model.task`
    as the profile says it).

    `profile` (of the training range) sets the preprocessing and the vocabularies; without it
    `standardize` is the identity and categorical fields have empty vocabularies. `plan` is
    the robust preprocessing when already chosen (`feature_plan`); `decay_steps` see
    `compile_model`. The network is the spec's layers and the task's output layer, or the
    user's own (`workload.model.user`: `model.factory`, or `model.file` read at `model_file`).
    """
    facts = facts or (profile.facts(spec.task, spec.classes) if profile is not None
                      else TaskFacts(spec.task, tuple(spec.classes) if spec.classes else None))
    layout = InputLayout.of(data)
    inputs: dict[str, Any] = {}
    parts = []
    if layout.numeric:
        numeric = keras.Input(shape=(layout.numeric,), name=FEATURES, dtype="float32")
        inputs[FEATURES] = numeric
        prepared = _prepare_numeric(spec, numeric, profile, plan)
        if prepared.shape[-1] or not data.categorical_names:
            parts.append(prepared)
    for name, encoding in zip(layout.categorical, encodings(data, profile, spec), strict=True):
        field = keras.Input(shape=(), name=name, dtype="string")
        inputs[name] = field
        parts.append(encoding.apply(field, name))
    hidden = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="prepared")(parts)
    network = user_network(spec, model_request(data, facts, int(hidden.shape[-1])), model_file)
    if network is not None:
        outputs = TaskHead.of(facts)(network(hidden))
    else:
        outputs = TaskHead.of(facts)(output_layer(facts)(_hidden_layers(spec, hidden)))
    model = keras.Model(inputs if layout.keyed else inputs[FEATURES], outputs,
                        name=f"streamtrain_{facts.task}")
    compile_model(model, spec, decay_steps)
    return model


def _hidden_layers(spec: ModelSpec, hidden: Any) -> Any:
    """The spec's hidden layers on `hidden` (dense layers default to ReLU)."""
    for index, layer in enumerate(spec.layers):
        if layer.dense is not None:
            hidden = keras.layers.Dense(
                layer.dense, activation=layer.activation or DEFAULT_ACTIVATION,
                name=f"dense_{index}")(hidden)
        else:
            hidden = keras.layers.Dropout(layer.dropout or 0.0, name=f"dropout_{index}")(hidden)
    return hidden


def _prepare_numeric(spec: ModelSpec, numeric: Any, profile: TrainingProfile | None,
                     plan: FeaturePlan | None) -> Any:
    """The numeric features as `spec.preprocessing` prepares them (every column kept in front
    of a user's model)."""
    if spec.preprocessing == "robust":
        plan = plan or feature_plan(spec, profile)
        if plan is None:
            return numeric
        return FeaturePreprocessing.from_plan(plan, keep_width=spec.user_model)(numeric)
    if spec.preprocessing == "standardize":
        width = numeric.shape[-1]
        statistics = profile.statistics if profile is not None else None
        mean, variance = ((statistics.mean, statistics.variance) if statistics is not None
                          else (np.zeros(width), np.ones(width)))
        return keras.layers.Normalization(axis=-1, mean=mean.tolist(), variance=variance.tolist(),
                                          name="normalize")(numeric)
    return numeric


def input_signature(data: DataSpec) -> tf.TensorSpec | dict[str, tf.TensorSpec]:
    """The `tf.function` signature of the model's inputs for `data`'s records."""
    return layout_signature(InputLayout.of(data))


def layout_signature(layout: InputLayout) -> tf.TensorSpec | dict[str, tf.TensorSpec]:
    """The `tf.function` signature of `layout`'s inputs."""
    numeric = tf.TensorSpec([None, layout.numeric], tf.float32)
    if not layout.keyed:
        return numeric
    specs = {FEATURES: numeric} if layout.numeric else {}
    return {**specs, **{name: tf.TensorSpec([None], tf.string) for name in layout.categorical}}


def empty_inputs(data: DataSpec) -> tf.Tensor | dict[str, tf.Tensor]:
    """No rows, as the model's inputs (a worker out of records trains on these)."""
    signature = input_signature(data)
    if isinstance(signature, dict):
        return {name: tf.zeros([0, *spec.shape[1:]], spec.dtype) if spec.dtype != tf.string
                else tf.constant([], tf.string) for name, spec in signature.items()}
    return tf.zeros([0, signature.shape[1]], tf.float32)


def load_model(path: Path, data: DataSpec | None = None) -> keras.Model:
    """A saved model, uncompiled (the classes of its own layers are registered by import).

    With `data`, a model that takes other inputs than the job's records give (another number
    of numeric features, other categorical fields) raises `ShapeMismatch`: every record would
    fail the same way, so no pod should try again.
    """
    model = keras.saving.load_model(path, compile=False)
    if data is not None:
        check_inputs(model, data, path)
    return model


def check_inputs(model: keras.Model, data: DataSpec, path: Path) -> None:
    """Raise `ShapeMismatch` when `model` does not take `data`'s records (`InputLayout`)."""
    layout = InputLayout.of(data)
    takes: dict[str, tuple[int | None, ...]] = {tensor.name: tuple(tensor.shape)
                                                for tensor in model.inputs}
    wants: dict[str, tuple[int | None, ...]] = {name: (None,) for name in layout.categorical}
    if layout.numeric:
        wants[FEATURES] = (None, layout.numeric)
    if not layout.keyed and len(takes) == 1:
        takes = {FEATURES: next(iter(takes.values()))}
    if takes != wants:
        raise ShapeMismatch(
            f"the model at {path} takes {_inputs_text(takes)}, but the job's data gives "
            f"{_inputs_text(wants)} (data.features or data.columns, data.categorical); "
            "evaluate or learn with a model trained on data of this layout")


def _inputs_text(inputs: dict[str, tuple[int | None, ...]]) -> str:
    """Named input shapes as text: `features (batch, 18), country (batch,)`."""
    return ", ".join(f"{name} {str(shape).replace('None', 'batch')}"
                     for name, shape in sorted(inputs.items()))


def model_summary(model: keras.Model) -> str:
    """Keras' summary table of the model, as text."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


def compile_model(model: keras.Model, spec: ModelSpec, decay_steps: int | None = None) -> None:
    """Attach the spec's optimizer, the task's loss and metrics (the task as the model records
    it); with `decay_steps`, the step size follows a cosine from `learningRate` to 0 over that
    many steps (a function of the optimizer's step count, so a resumed run follows it exactly)."""
    rate: float | keras.optimizers.schedules.LearningRateSchedule = spec.learning_rate
    if decay_steps:
        rate = keras.optimizers.schedules.CosineDecay(spec.learning_rate, decay_steps)
    facts = task_of(model)
    model.compile(optimizer=OPTIMIZERS[spec.optimizer](learning_rate=rate),
                  loss=task_loss(facts, spec), metrics=task_metrics(facts))
