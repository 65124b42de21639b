"""The model's inputs: what a job's model takes, named once for training, scoring and serving.

A model of numeric features only takes one float32 tensor [batch, n_numeric]
named `features` (the tutorial's layout). A model with categorical fields
(`data.categorical`) takes a dict: `features` (when there are numeric ones)
and one string tensor [batch] per categorical field, named after the field
(characters other than letters, digits and `_` become `_`; a clash gets a
numeric suffix), so a consumer of the exported model feeds the record's raw
values, strings included. No TensorFlow here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from workload.data.decoded import Decoded, Floats, Texts
from workload.spec import DataSpec

FEATURES = "features"
"""Name of the numeric input: float32 [batch, n_numeric], raw (unscaled) values."""

ModelInputs = Floats | dict[str, Floats | Texts]
"""What the model is called with: one array, or a dict of them by input name."""


def _sanitised(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


@dataclass(frozen=True)
class InputLayout:
    """The inputs of a job's model."""

    numeric: int
    """Numeric features (the width of `features`)."""
    categorical: tuple[str, ...]
    """Input names of the categorical fields, in `DataSpec.categorical_names` order."""

    @classmethod
    def of(cls, data: DataSpec) -> InputLayout:
        """The layout of `data`'s features."""
        taken = {FEATURES}
        names = []
        for field in data.categorical_names:
            name, suffix = _sanitised(field), 1
            while name in taken:
                suffix += 1
                name = f"{_sanitised(field)}_{suffix}"
            taken.add(name)
            names.append(name)
        return cls(len(data.numeric_names), tuple(names))

    @classmethod
    def of_inputs(cls, inputs: ModelInputs) -> InputLayout:
        """The layout of inputs as given (a dict's categorical fields in its order)."""
        if not isinstance(inputs, dict):
            return cls(inputs.shape[1], ())
        features = inputs.get(FEATURES)
        return cls(0 if features is None else features.shape[1],
                   tuple(name for name in inputs if name != FEATURES))

    @property
    def names(self) -> tuple[str, ...]:
        """The model's input names: `features` (when there are numeric fields), then the
        categorical fields'."""
        return ((FEATURES,) if self.numeric or not self.keyed else ()) + self.categorical

    @property
    def keyed(self) -> bool:
        """Whether the model takes a dict (categorical fields) rather than one tensor."""
        return bool(self.categorical)

    def arrays(self, features: Floats, categories: Texts | None) -> ModelInputs:
        """The model's inputs for these rows (numeric [n, numeric], categorical [n, fields])."""
        if not self.keyed:
            return features
        inputs: dict[str, Floats | Texts] = {}
        if self.numeric:
            inputs[FEATURES] = features
        assert categories is not None
        for column, name in enumerate(self.categorical):
            inputs[name] = np.ascontiguousarray(categories[:, column])
        return inputs

    def of_decoded(self, decoded: Decoded) -> ModelInputs:
        """The model's inputs for a decoded batch's good records."""
        return self.arrays(decoded.features, decoded.category_table)


def rows_of(inputs: ModelInputs) -> int:
    """How many rows `inputs` hold."""
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values())))
    return len(inputs)


def head(inputs: ModelInputs, rows: int) -> ModelInputs:
    """A copy of the first `rows` rows of `inputs`."""
    if isinstance(inputs, dict):
        return {name: values[:rows].copy() for name, values in inputs.items()}
    return inputs[:rows].copy()
