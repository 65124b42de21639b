"""The model a serving replica scores with: which one, its version, and a compiled predict.

The first model served is the job's trained export (`Artifacts.keras_model`)
or, for a job that does not train, the one `model.source` names. Its version
is what every prediction names: where it came from and the first hex digits
of the SHA-256 of its file, so two replicas (or a restarted one) serving the
same file name the same version, and a new file a new one.

A model promoted later (an online export that beat the serving one,
`workload.modes.gate`) is copied into `Artifacts.serving` and named by the
pointer `serving/current.json` (written atomically after the model file):
from then on it is the model served. Replicas look at the pointer between
transactions (`ModelSource.refresh`, at most every `CHECK_EVERY_S`) and swap
there, never in the middle of a batch.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workload.artifacts import Artifacts, file_digest, read_json
from workload.model.inputs import InputLayout, ModelInputs, rows_of
from workload.modes.prediction import Floats, TaskPredictions, model_task, predictions_for

VERSION_DIGITS = 12
"""Hex digits of the file digest in a version name."""


class NoModelToServe(RuntimeError):
    """Neither the trained model nor `model.source` is there yet."""


@dataclass(frozen=True)
class ServedModel:
    """A loaded model and what predictions say about it."""

    version: str
    """The version every prediction names, e.g. `trained-3fa2c19b0d4e`."""
    path: Path
    """The model file."""
    predict: Callable[[ModelInputs], Floats]
    """Outputs for a batch of the model's inputs (`InputLayout.of_decoded`: float32 features
    [n, numeric], and a text array [n] per categorical field) -> float32 [n] or [n, k]."""
    runtime: str
    """What scores it: `litert`, or `tensorflow (<why not LiteRT>)`."""
    task: TaskPredictions
    """What its outputs mean (the task the model file records): the served records' JSON and
    the promotion gate's errors."""


def version_of(origin: str, path: Path) -> str:
    """`<origin>-<digest>`: a model file's version name."""
    return f"{origin}-{file_digest(path)[:VERSION_DIGITS]}"


def first_model(artifacts: Artifacts) -> tuple[str, Path]:
    """Where the first model served comes from (`trained` or `source`) and its file."""
    candidates = [("trained", artifacts.keras_model)]
    if artifacts.source_model is not None:
        candidates.append(("source", artifacts.source_model))
    for origin, path in candidates:
        if path.exists():
            return origin, path
    raise NoModelToServe("no model to serve: looked for "
                         + " and ".join(str(path) for _, path in candidates)
                         + " (train the job first, or name a trained model in model.source)")


POINTER = "current.json"
"""The pointer to the promoted model served, inside `Artifacts.serving`."""

CHECK_EVERY_S = 1.0
"""Seconds between two looks of a replica at the pointer."""


def read_pointer(artifacts: Artifacts) -> tuple[str, Path] | None:
    """The promoted model served (version, file), or `None` before any promotion."""
    document = read_json(artifacts.serving / POINTER)
    if not isinstance(document, dict):
        return None
    return str(document["version"]), artifacts.serving / str(document["model"])


def served_now(artifacts: Artifacts) -> tuple[str, Path]:
    """The version and file that should serve now: the promoted one, else the first."""
    pointed = read_pointer(artifacts)
    if pointed is not None:
        return pointed
    origin, path = first_model(artifacts)
    return version_of(origin, path), path


Loader = Callable[[Path, str, InputLayout], "ServedModel"]
"""Loads a model file as a `ServedModel` (path, version, the inputs the job's records give)."""


class ModelSource:
    """The model a replica serves, swapped when the pointer names another."""

    def __init__(self, artifacts: Artifacts, layout: InputLayout, load: Loader | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._artifacts = artifacts
        self._layout = layout
        self._load: Loader = load or load_served
        self._clock = clock
        version, path = served_now(artifacts)
        self.current = self._load(path, version, layout)
        self._checked = clock()

    def refresh(self) -> bool:
        """Look at the pointer (at most every `CHECK_EVERY_S`); load and serve the model it
        names if that is another version. Whether the model changed."""
        now = self._clock()
        if now - self._checked < CHECK_EVERY_S:
            return False
        self._checked = now
        pointed = read_pointer(self._artifacts)
        if pointed is None or pointed[0] == self.current.version:
            return False
        self.current = self._load(pointed[1], pointed[0], self._layout)
        return True


def load_served(path: Path, version: str, layout: InputLayout) -> ServedModel:
    """The model at `path` as a scorer for batches of `layout`'s inputs: its LiteRT file when
    one was made from it (no TensorFlow loaded), else the Keras model with TensorFlow, the
    runtime saying why."""
    from workload.model.litert import LiteRtScorer, matching_litert

    litert, detail = matching_litert(path, file_digest(path))
    if litert is not None:
        return ServedModel(version, path, LiteRtScorer(litert, layout), "litert",
                           predictions_for(*model_task(path)))
    if importlib.util.find_spec("tensorflow") is None:  # the serve image has no TensorFlow
        raise ModelNeedsTensorFlow(
            f"model {version} has no LiteRT scorer ({detail}) and this image has no "
            "TensorFlow to serve it with: serve it with the workload image (spec.serve.image)")
    return load_keras(path, version, layout, f"tensorflow ({detail})")


class ModelNeedsTensorFlow(RuntimeError):
    """A model without a LiteRT scorer, in an image without TensorFlow (the serve image)."""


def load_keras(path: Path, version: str, layout: InputLayout, runtime: str) -> ServedModel:
    """Load a Keras model file and compile its predict for batches of `layout`'s inputs (a dict
    with a string tensor per categorical field when it has any)."""
    import tensorflow as tf

    from workload.model.build import layout_signature, load_model

    model = load_model(path)

    def forward(inputs: tf.Tensor | dict[str, tf.Tensor]) -> tf.Tensor:
        return model(inputs, training=False)

    # Compiled once: a batch of any size never re-traces.
    compiled = tf.function(forward, input_signature=[layout_signature(layout)],
                           autograph=False)

    def predict(inputs: ModelInputs) -> Floats:
        if not rows_of(inputs):
            return np.zeros((0,), np.float32)
        outputs: Floats = compiled(inputs).numpy()
        return outputs

    return ServedModel(version, path, predict, runtime, predictions_for(*model_task(path)))
