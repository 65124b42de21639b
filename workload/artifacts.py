"""The layout of a job's output folder, shared by every mode.

One folder holds everything a run leaves behind, and only that run's job
writes it: in a cluster, the job's own folder on the volume claim (the
operator mounts `<namespace>/<name>/<uid>` of the claim at
`model.output.path`); locally, the folder `streamtrain run` chose. So the
evaluator finds the trainer's model and a restarted pod finds its own
checkpoint, and never another job's.

A model trained by another job (`spec.model.source`) is read from a second,
read-only folder, `source`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workload.contract import MODES

MODEL_FILE = "model.keras"
"""File name of a trained model in an output folder (and in a source folder)."""


@dataclass(frozen=True)
class Artifacts:
    """Paths inside a job's output folder."""

    root: Path
    location: str | None = None
    """The folder's name outside the pod, e.g. `pvc://models/ns/job/uid` (`None`: `root`)."""
    source: Path | None = None
    """A read-only folder holding the model of `spec.model.source`, if the job names one."""
    model_file: Path | None = None
    """The `.keras` file of `spec.model.file` (the user's model training starts from), if any."""

    def uri(self, path: Path) -> str:
        """Where `path` (inside `root`) is, as people outside the pod find it."""
        if self.location is None:
            return str(path)
        return f"{self.location.rstrip('/')}/{path.relative_to(self.root).as_posix()}"

    @property
    def keras_model(self) -> Path:
        """The trained model as a Keras file (what evaluate and online load)."""
        return self.root / MODEL_FILE

    @property
    def source_model(self) -> Path | None:
        """The model of `spec.model.source` (what evaluate and online load when the job does
        not train), or `None`."""
        return None if self.source is None else self.source / MODEL_FILE

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

    def ledger(self, consumer_group: str, replica: int = 0, replicas: int = 1) -> Path:
        """The evaluator's aggregates with the offsets they cover, per consumer group (and per
        evaluator when there are several)."""
        share = f"-{replica}-of-{replicas}" if replicas > 1 else ""
        return self.root / "evaluate" / f"ledger-{consumer_group}{share}.json"

    def evaluation_plan(self, consumer_group: str, key: str) -> Path:
        """The bounds several evaluators of a consumer group divide (`key`: whose plan)."""
        return self.root / "evaluate" / f"plan-{consumer_group}-{key}.json"

    @property
    def litert_model(self) -> Path:
        """The trained model as a LiteRT file (what serving scores with, without TensorFlow);
        absent when the model did not convert (`workload.model.litert`)."""
        return self.root / "model.tflite"

    @property
    def serving(self) -> Path:
        """The models promoted to serving and the pointer to the current one (`current.json`)."""
        return self.root / "serving"

    @property
    def online(self) -> Path:
        """Exports of online learning (model.keras, saved_model, state)."""
        return self.root / "online"

    def results(self, mode: str) -> Path:
        """The JSON result of one mode."""
        return self.root / f"results-{mode}.json"

    @property
    def summary(self) -> Path:
        """The whole run's result (`streamtrain run`, the demo): every phase's report."""
        return self.root / "results.json"

    def inventory(self) -> list[tuple[str, Path]]:
        """What a run left in the folder, as (what, where) pairs, in a fixed order."""
        entries = [
            ("model (Keras)", self.keras_model), ("model (SavedModel)", self.saved_model),
            ("model (LiteRT)", self.litert_model), ("served models", self.serving),
            ("checkpoints", self.checkpoints), ("evaluation ledgers", self.root / "evaluate"),
            ("online exports", self.online), ("TensorBoard logs", self.tensorboard),
            ("training curve", self.training_curve), ("results", self.summary),
            *((f"results of {mode}", self.results(mode)) for mode in MODES),
        ]
        return [(what, path) for what, path in entries if path.exists()]

    def prepare(self) -> Artifacts:
        """Create the folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self


def file_digest(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    """The JSON document at `path`, or None when there is no such file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


JSON_MODE = 0o644
"""Permissions of a JSON file written here: what `open` gives with the usual umask 022 (Keras
writes `model.keras` so)."""


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON so a reader (or a restarted process) sees the old or the new file, never half.

    The file is readable by all (`JSON_MODE`), as the model files beside it are: a serving pod
    of another user, given the folder read-only, reads the LiteRT file's sidecar and results
    (a temporary file alone would be its owner's only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, JSON_MODE)
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
