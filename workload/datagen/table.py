"""Tables held in memory: labels, numeric feature columns (SUSY's 18 by default), their names.

Both the synthetic generators and the loader of the real UCI file return a
`SusyData`, so the producer and the tests never care where rows came from. A
table may also hold categorical columns (text) and, instead of binary labels,
class indices with their names (multiclass) or numbers (regression).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SUSY_COLUMNS: tuple[str, ...] = (
    "lepton1_pt",
    "lepton1_eta",
    "lepton1_phi",
    "lepton2_pt",
    "lepton2_eta",
    "lepton2_phi",
    "met",
    "met_phi",
    "met_rel",
    "axial_met",
    "m_r",
    "m_tr_2",
    "r",
    "mt2",
    "s_r",
    "m_delta_r",
    "dphi_r_b",
    "cos_theta_r1",
)
"""SUSY's 18 feature columns in file order: 8 low-level kinematics, then 10 derived ones."""

SUSY_LABEL = "label"
"""Name of the class column (1 = signal, 0 = background) when a record carries it as a field."""

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]
TextArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class SusyData:
    """Rows of a table: a binary classification one unless it says otherwise.

    `features` is float32 of shape [rows, columns], `labels` int64 of shape
    [rows] holding 0 or 1 (multiclass: the index into `classes`), `columns`
    the numeric feature names in order; `categories` [rows, len(categorical)]
    the text of the categorical columns; `targets` float64 [rows] the labels of
    a regression table.
    """

    features: FloatArray
    labels: LabelArray
    columns: tuple[str, ...] = SUSY_COLUMNS
    categories: TextArray | None = None
    categorical: tuple[str, ...] = ()
    classes: tuple[str, ...] | None = None
    """Multiclass: the name of each label index."""
    targets: npt.NDArray[np.float64] | None = None
    """Regression: each row's label."""

    @property
    def label_texts(self) -> list[str]:
        """Each row's label as a record carries it: `0`/`1`, a class name, or a number."""
        if self.targets is not None:
            return [repr(float(value)) for value in self.targets.tolist()]
        if self.classes is not None:
            return [self.classes[index] for index in self.labels.tolist()]
        return ["1" if label else "0" for label in self.labels.tolist()]

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[1] != len(self.columns):
            raise ValueError(
                f"features must have shape [rows, {len(self.columns)}], got {self.features.shape}"
            )
        if self.labels.shape != (self.features.shape[0],):
            raise ValueError(
                f"labels must have shape [{self.features.shape[0]}], got {self.labels.shape}"
            )

    @property
    def rows(self) -> int:
        """Number of rows."""
        return int(self.labels.shape[0])

    def slice(self, start: int, stop: int) -> SusyData:
        """Rows `start` to `stop` (exclusive), sharing memory with this table."""
        return SusyData(self.features[start:stop], self.labels[start:stop], self.columns,
                        None if self.categories is None else self.categories[start:stop],
                        self.categorical, self.classes,
                        None if self.targets is None else self.targets[start:stop])


def split(data: SusyData, train_rows: int = 60_000) -> tuple[SusyData, SusyData]:
    """The first `train_rows` rows for training and the rest for testing (the tutorial's split)."""
    if not 0 < train_rows < data.rows:
        raise ValueError(f"train_rows must be between 1 and {data.rows - 1}, got {train_rows}")
    return data.slice(0, train_rows), data.slice(train_rows, data.rows)
