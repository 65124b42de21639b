"""The robust preprocessing of `workload.model.statistics`, as the model's first layer.

Inside the model, so the exported Keras file and SavedModel take raw
features and serving needs no preprocessing code. The layer's numbers are
plain lists in its config (readable in the Keras file); loading a model that
holds it needs this module imported, which `workload.model.build.load_model`
does.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from workload.model.statistics import FeaturePlan

LAYER_NAME = "preprocessing"
"""Name of the layer in the model (and in its summary)."""


@keras.saving.register_keras_serializable(package="streamtrain")
class FeaturePreprocessing(keras.layers.Layer):  # type: ignore[misc]
    """Per feature: signed log or not, clip, standardise; near-constant features dropped."""

    def __init__(self, transforms: list[str], center: list[float], scale: list[float],
                 low: list[float], high: list[float], mean: list[float], std: list[float],
                 keep_width: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transforms = list(transforms)
        self.keep_width = keep_width
        """Dropped features become zeros instead of leaving (a user's model takes every one)."""
        self.numbers = {"center": list(center), "scale": list(scale), "low": list(low),
                        "high": list(high), "mean": list(mean), "std": list(std)}
        self._kept = [index for index, kind in enumerate(self.transforms) if kind != "drop"]
        self._logged = [kind == "signed-log" for kind in self.transforms]

    @classmethod
    def from_plan(cls, plan: FeaturePlan, name: str = LAYER_NAME,
                  keep_width: bool = False) -> FeaturePreprocessing:
        """The layer applying `plan` (with `keep_width`, dropped features are zeros)."""
        return cls(list(plan.transforms), plan.center.tolist(), plan.scale.tolist(),
                   plan.low.tolist(), plan.high.tolist(), plan.mean.tolist(), plan.std.tolist(),
                   keep_width, name=name)

    def call(self, inputs: Any) -> Any:
        numbers = {key: ops.convert_to_tensor(values, dtype="float32")
                   for key, values in self.numbers.items()}
        distance = inputs - numbers["center"]
        logged = ops.sign(distance) * ops.log1p(ops.abs(distance) / numbers["scale"])
        values = ops.where(ops.convert_to_tensor(self._logged), logged, inputs)
        values = ops.clip(values, numbers["low"], numbers["high"])
        values = (values - numbers["mean"]) / numbers["std"]
        if self.keep_width:
            kept = [0.0 if kind == "drop" else 1.0 for kind in self.transforms]
            return values * ops.convert_to_tensor(kept, dtype="float32")
        return ops.take(values, ops.convert_to_tensor(self._kept, dtype="int32"), axis=1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], len(self.transforms) if self.keep_width else len(self._kept))

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "transforms": self.transforms, "keep_width": self.keep_width,
                **self.numbers}
