"""Training curves as PNG files (matplotlib's Agg backend: no display needed in a pod)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

PANELS = (("loss", "Loss"), ("accuracy", "Accuracy"), ("auc", "ROC AUC"),
          ("rmse", "RMSE (label units)"), ("mae", "MAE (label units)"))
"""History keys drawn, one panel each, with their axis titles."""


def training_curve(history: Mapping[str, Sequence[float]], path: Path, title: str) -> Path:
    """Draw the loss and the task's metrics per epoch (those present in `history`) to `path`.

    The PNG is written under a temporary name and renamed, so a reader never sees half a file.
    """
    panels = [(key, label) for key, label in PANELS
              if history.get(key) or history.get(f"val_{key}")]
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.6))
    axes_list = list(axes) if len(panels) > 1 else [axes]
    for axis, (key, label) in zip(axes_list, panels, strict=False):
        values = list(history.get(key) or [])
        if values:
            axis.plot(range(1, len(values) + 1), values, marker="o", label="train")
        validation = list(history.get(f"val_{key}") or [])
        if validation:
            axis.plot(range(1, len(validation) + 1), validation, marker="s", label="validation")
            axis.legend()
        axis.set_xlabel("epoch")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.stem}.{uuid.uuid4().hex}.png"
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)
    return path
