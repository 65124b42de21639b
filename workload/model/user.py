"""The user's own network: a factory function or a `.keras` file, between our input and task layers.

A job's model is always: raw inputs -> preparation (numeric preprocessing as
`model.preprocessing` says; categorical fields looked up and encoded) ->
network -> task layer. The network is the spec's `layers` plus the task's
output layer, or the user's own model, which:

- takes the prepared features, float32 [batch, `ModelRequest.input_width`],
  and ends in the task's output: [batch, 1] probabilities (binary), [batch,
  classes] probabilities (multiclass), or [batch, 1] in standardised units
  (regression: the task layer turns them into the label's units);
- comes from `model.factory: "package.module:function"`, called with one
  `ModelRequest` (feature names and kinds, the task, its classes, the input
  width, the outputs), imported from the pod's image (or the Python path of
  `streamtrain run`); the module registers its custom layers
  (`keras.saving.register_keras_serializable`), and the evaluator and the
  online learner import it before loading the saved model;
- or from `model.file`: a `.keras` file whose architecture and weights are
  the starting point (its custom layers, if any, registered by a module the
  image imports).

So that a file made in advance fits, the prepared width of a job with a user
model depends on the spec alone: robust preprocessing keeps a dropped
(near-constant) column as zeros, and each categorical field's encoding is
sized for `data.maxTokens` values (`Encoding.capacity`). A shape that does
not fit fails at start with one sentence naming both shapes. The operator
never imports any of this: only pods and `streamtrain run` do.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from workload.model.profile import TaskFacts
from workload.permanent import PermanentError, ShapeMismatch
from workload.spec import DataSpec, ModelSpec


class UserModelError(PermanentError, ValueError):
    """The user's model cannot be used: it cannot be imported, called or loaded."""

    reason = "ModelUnusable"


class UserModelMisfit(ShapeMismatch):
    """The user's model does not take the prepared features or does not end in the task's
    output."""


@dataclass(frozen=True)
class ModelRequest:
    """What a model factory is called with (one argument: fields added later break no factory)."""

    feature_names: tuple[str, ...]
    """Every feature, in record order."""
    feature_kinds: tuple[str, ...]
    """`numeric` or `categorical`, for each feature."""
    task: str
    """`binary`, `multiclass` or `regression`."""
    classes: tuple[str, ...] | None
    """Multiclass: the class names, in output order."""
    input_width: int
    """Width of the prepared features the model takes: float32 [batch, input_width]."""
    outputs: int
    """Units of the model's output: one per class (multiclass), else 1."""

    @property
    def input_shape(self) -> tuple[int]:
        """The shape of one prepared record: `(input_width,)`."""
        return (self.input_width,)


def prepared_width(data: DataSpec) -> int:
    """The width of the prepared features a user's model takes: every numeric field, and each
    categorical field's encoding sized for `data.maxTokens` values (known from the spec alone)."""
    from workload.model.categorical import Encoding

    return len(data.numeric_names) + sum(
        Encoding(name, (), data.max_tokens + 1).width for name in data.categorical_names)


def model_request(data: DataSpec, facts: TaskFacts, input_width: int) -> ModelRequest:
    """The request for `data`'s records and `facts`' task."""
    categorical = set(data.categorical_names)
    return ModelRequest(tuple(data.feature_names),
                        tuple("categorical" if name in categorical else "numeric"
                              for name in data.feature_names),
                        facts.task, facts.classes, input_width, facts.outputs)


def import_factory(reference: str) -> Callable[[ModelRequest], Any]:
    """The function `package.module:function` names (importing its module registers the user's
    custom layers)."""
    module_name, _, function_name = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UserModelError(
            f"model.factory {reference!r}: cannot import module {module_name!r} ({error}); it "
            "must be on the Python path of the pods' image (or of streamtrain run)") from error
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise UserModelError(f"model.factory {reference!r}: module {module_name!r} has no "
                             f"function {function_name!r}")
    return factory  # type: ignore[no-any-return]


def register_user_layers(spec: ModelSpec) -> None:
    """Import the factory's module, if the model has one, so a saved model holding its custom
    layers loads."""
    if spec.factory is not None:
        import_factory(spec.factory)


def user_network(spec: ModelSpec, request: ModelRequest, file: Path | None) -> keras.Model | None:
    """The user's network (`None` when the spec builds its own), checked against `request`."""
    if spec.factory is not None:
        origin = f"model.factory {spec.factory!r}"
        try:
            network = import_factory(spec.factory)(request)
        except UserModelError:
            raise
        except Exception as error:
            raise UserModelError(f"{origin} failed: {type(error).__name__}: {error}") from error
        if not isinstance(network, keras.Model):
            raise UserModelError(f"{origin} returned a {type(network).__name__}, not a Keras model")
    elif spec.file is not None:
        if file is None or not file.exists():
            raise UserModelError(f"model.file {spec.file.path!r}: no such file "
                                 f"{'mounted' if file is None else f'at {file}'}")
        origin = f"the model in {spec.file.path!r}"
        try:
            network = keras.saving.load_model(file, compile=False)
        except Exception as error:
            raise UserModelError(f"{origin} cannot be loaded: {type(error).__name__}: "
                                 f"{error}") from error
    else:
        return None
    check_shapes(network, request, origin)
    return network


def check_shapes(network: keras.Model, request: ModelRequest, origin: str) -> None:
    """Fail with one sentence naming both shapes when `network` does not take the prepared
    features or does not end in the task's output."""
    inputs, outputs = _shape(network.inputs), _shape(network.outputs)
    wanted_in, wanted_out = (None, request.input_width), (None, request.outputs)
    if inputs != wanted_in:
        raise UserModelMisfit(
            f"{origin} takes inputs of shape {_text(inputs)}, but the prepared features of "
            f"this job have shape {_text(wanted_in)} ({len(request.feature_names)} fields: "
            f"numbers after model.preprocessing, categories encoded for data.maxTokens)")
    if outputs != wanted_out:
        what = (f"{request.outputs} classes" if request.task == "multiclass"
                else f"task {request.task}")
        raise UserModelMisfit(f"{origin} ends in shape {_text(outputs)}, but {what} needs "
                             f"{_text(wanted_out)}")


def _shape(tensors: list[Any]) -> tuple[int | None, ...] | list[tuple[int | None, ...]]:
    shapes = [tuple(tensor.shape) for tensor in tensors]
    return shapes[0] if len(shapes) == 1 else shapes


def _text(shape: object) -> str:
    return str(shape).replace("None", "batch")
