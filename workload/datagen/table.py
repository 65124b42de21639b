"""SUSY-shaped data held in memory: labels, 18 feature columns and their names.

Both the synthetic generator and the loader of the real UCI file return a
`SusyData`, so the producer and the tests never care where rows came from.
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


@dataclass(frozen=True)
class SusyData:
    """Rows of a binary classification table.

    `features` is float32 of shape [rows, columns], `labels` int64 of shape
    [rows] holding 0 or 1, `columns` the feature names in order.
    """

    features: FloatArray
    labels: LabelArray
    columns: tuple[str, ...] = SUSY_COLUMNS

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
        return SusyData(self.features[start:stop], self.labels[start:stop], self.columns)


def split(data: SusyData, train_rows: int = 60_000) -> tuple[SusyData, SusyData]:
    """The first `train_rows` rows for training and the rest for testing (the tutorial's split)."""
    if not 0 < train_rows < data.rows:
        raise ValueError(f"train_rows must be between 1 and {data.rows - 1}, got {train_rows}")
    return data.slice(0, train_rows), data.slice(train_rows, data.rows)
