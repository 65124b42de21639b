"""Per-epoch training checkpoints that record the Kafka offsets they cover.

After each epoch the whole model (weights and optimizer state, a `.keras`
file) is written under a temporary name and renamed, THEN `state.json` is
replaced atomically to point at it: a trainer killed at any moment finds
either the previous epoch's pair or the new one. A restart with the same
output folder resumes at the next epoch over the same offset ranges, so the
epochs of one model always see the same records, however often it restarts.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from workload.artifacts import write_json_atomic

STATE_FILE = "state.json"
"""Name of the checkpoint's index inside `Artifacts.checkpoints`."""


@dataclass
class TrainState:
    """Where training stands: epochs done, the data they covered, their figures."""

    topic: str
    offsets: dict[int, tuple[int, int]]
    epochs_done: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    model_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The state as JSON (partitions as string keys)."""
        return {
            "topic": self.topic,
            "offsets": {str(p): list(span) for p, span in sorted(self.offsets.items())},
            "epochsDone": self.epochs_done,
            "history": self.history,
            "modelFile": self.model_file,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TrainState:
        """Parse `to_json`'s output."""
        return cls(
            topic=str(document["topic"]),
            offsets={int(p): (int(s), int(e)) for p, (s, e) in document["offsets"].items()},
            epochs_done=int(document["epochsDone"]),
            history={k: [float(v) for v in vs] for k, vs in document["history"].items()},
            model_file=document.get("modelFile"),
        )


def load_state(folder: Path) -> TrainState | None:
    """The last completed checkpoint in `folder`, or `None` when there is none."""
    path = folder / STATE_FILE
    if not path.exists():
        return None
    return TrainState.from_json(json.loads(path.read_text()))


def load_checkpoint_model(folder: Path, state: TrainState) -> keras.Model | None:
    """The model saved with `state`, or `None` when the state has none."""
    if state.model_file is None:
        return None
    return keras.models.load_model(folder / state.model_file)


def save_checkpoint(folder: Path, model: keras.Model, state: TrainState) -> None:
    """Write the model, then the state that names it; remove older checkpoint models."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{state.epochs_done:05d}.keras"
    temporary = folder / f".{uuid.uuid4().hex}.partial.keras"
    try:
        model.save(temporary)
        os.replace(temporary, folder / name)
    finally:
        temporary.unlink(missing_ok=True)
    state.model_file = name
    write_json_atomic(folder / STATE_FILE, state.to_json())
    for stale in folder.glob("epoch-*.keras"):
        if stale.name != name:
            stale.unlink(missing_ok=True)


class CheckpointEveryEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Keras callback: record each epoch's figures in `state` and checkpoint."""

    def __init__(self, folder: Path, state: TrainState) -> None:
        super().__init__()
        self.folder = folder
        self.state = state

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.state.history.setdefault(key, []).append(float(value))
        self.state.epochs_done = epoch + 1
        save_checkpoint(self.folder, self.model, self.state)
