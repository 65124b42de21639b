"""The layout of a job's output folder, shared by every mode.

One folder holds everything a run leaves behind (a PVC mount in a cluster,
a local folder for `streamtrain run`), so the evaluator finds the trainer's
model and a restarted pod finds its own checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Artifacts:
    """Paths inside a job's output folder."""

    root: Path

    @property
    def keras_model(self) -> Path:
        """The trained model as a Keras file (what evaluate and online load)."""
        return self.root / "model.keras"

    @property
    def saved_model(self) -> Path:
        """The trained model as a SavedModel with a `serve` signature (for TF Serving)."""
        return self.root / "saved_model"

    @property
    def checkpoints(self) -> Path:
        """Per-epoch weights and the Kafka offsets each epoch covered."""
        return self.root / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files."""
        return self.root / "tensorboard"

    @property
    def training_curve(self) -> Path:
        """Loss and accuracy per epoch, as a PNG."""
        return self.root / "training_curve.png"

    def ledger(self, consumer_group: str) -> Path:
        """The evaluator's aggregates with the offsets they cover, per consumer group."""
        return self.root / "evaluate" / f"ledger-{consumer_group}.json"

    @property
    def online(self) -> Path:
        """Exports of online learning (model.keras, saved_model, state)."""
        return self.root / "online"

    def results(self, mode: str) -> Path:
        """The JSON result of one mode."""
        return self.root / f"results-{mode}.json"

    def prepare(self) -> Artifacts:
        """Create the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON so a reader (or a restarted process) sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
