"""A user's own models, as a team would keep them in a module of its image: a factory and a
custom layer (registered, so a saved model that holds it loads again)."""

from __future__ import annotations

from typing import Any

import keras

from workload.model.user import ModelRequest


@keras.saving.register_keras_serializable(package="streamtrain_tests")
class Gate(keras.layers.Layer):  # type: ignore[misc]
    """x * sigmoid(w x): a custom layer of the team's."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.inner = keras.layers.Dense(units)
        self.gate = keras.layers.Dense(units, activation="sigmoid")

    def call(self, inputs: Any) -> Any:
        return self.inner(inputs) * self.gate(inputs)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "units": self.units}


def build_router(request: ModelRequest) -> keras.Model:
    """A gated network for any task: the prepared features in, the task's output out."""
    activation = {"binary": "sigmoid", "multiclass": "softmax"}.get(request.task)
    inputs = keras.Input(shape=request.input_shape, name="prepared")
    hidden = Gate(24, name="gate")(inputs)
    outputs = keras.layers.Dense(request.outputs, activation=activation, name="out")(hidden)
    return keras.Model(inputs, outputs, name="router")


def wrong_output(request: ModelRequest) -> keras.Model:
    """A network whose output has one unit too many."""
    inputs = keras.Input(shape=request.input_shape)
    return keras.Model(inputs, keras.layers.Dense(request.outputs + 1)(inputs))
