"""A team's own model for streamtrain: a factory, and a custom layer it registers.

streamtrain calls `build_router(request)` with a `ModelRequest`: the feature names and kinds,
the task, its classes, the width of the prepared features the model takes and the number of
outputs. The model returned takes float32 [batch, request.input_width] and ends in the task's
output. Registering the custom layer lets the evaluator and the online learner load the saved
model (they import this module first).
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="team")
class Gate(keras.layers.Layer):  # type: ignore[misc]
    """A gated dense layer: dense(x) * sigmoid(dense(x))."""

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


def build_router(request: Any) -> keras.Model:
    """Two gated layers, then the task's output (softmax over the classes for multiclass)."""
    activation = {"binary": "sigmoid", "multiclass": "softmax"}.get(request.task)
    inputs = keras.Input(shape=(request.input_width,), name="prepared")
    hidden = Gate(64, name="gate_1")(inputs)
    hidden = keras.layers.Dropout(0.1, name="dropout")(hidden)
    hidden = Gate(32, name="gate_2")(hidden)
    outputs = keras.layers.Dense(request.outputs, activation=activation, name="out")(hidden)
    return keras.Model(inputs, outputs, name="team_router")
