"""The model a serving replica scores with: which one, its version, and a compiled predict.

The first model served is the job's trained export (`Artifacts.keras_model`)
or, for a job that does not train, the one `model.source` names. Its version
is what every prediction names: where it came from and the first hex digits
of the SHA-256 of its file, so two replicas (or a restarted one) serving the
same file name the same version, and a new file a new one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workload.artifacts import Artifacts
from workload.modes.prediction import Floats

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
    predict: Callable[[Floats], Floats]
    """Outputs for a batch of features (float32 [n, width] -> float32 [n] or [n, k])."""
    runtime: str
    """What scores it (`tensorflow`)."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def load_served(path: Path, version: str, width: int) -> ServedModel:
    """Load a Keras model file and compile its predict for batches of `width` features."""
    import tensorflow as tf

    from workload.model.build import load_model

    model = load_model(path)

    def forward(features: tf.Tensor) -> tf.Tensor:
        return model(features, training=False)

    # Compiled once: a batch of any size never re-traces.
    compiled = tf.function(forward, input_signature=[tf.TensorSpec([None, width], tf.float32)],
                           autograph=False)

    def predict(features: Floats) -> Floats:
        if not len(features):
            return np.zeros((0,), np.float32)
        outputs: Floats = compiled(features).numpy()
        return outputs

    return ServedModel(version, path, predict, "tensorflow")
