"""Write a trained model so a crash mid-write never leaves half a model behind.

Two forms: a Keras file (`Artifacts.keras_model`, what evaluate and online
mode load) and a SavedModel with a `serve` signature taking float32
[None, n_features] (`Artifacts.saved_model`, for TF Serving). Each is written
under a temporary name beside its target and renamed into place: the Keras
file with one atomic `os.replace`; the SavedModel directory by moving the
old one aside, renaming the new one in, then deleting the old one. A crash
leaves the old model, the new one, or (between the two renames of a
directory) the previous one under its `.old-*` name, which the next export
restores or removes; never a partial file under the final name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import keras

from workload.model.inputs import ModelInputs

SERVE_ENDPOINT = "serve"
"""Signature name of the SavedModel's inference function."""


def export_model(model: keras.Model, keras_path: Path, saved_model_path: Path | None,
                 sample: ModelInputs | None = None) -> str | None:
    """Write the Keras file and, when a path is given, the SavedModel; both atomically. With a
    `sample` of the model's inputs for real records, also the LiteRT scorer beside the Keras file, checked against
    Keras on it (`workload.model.litert`); returns what that export said."""
    write_keras_atomic(model, keras_path)
    if saved_model_path is not None:
        write_saved_model_atomic(model, saved_model_path)
    if sample is None:
        return None
    from workload.artifacts import file_digest
    from workload.model.litert import export_litert

    return export_litert(model, keras_path, file_digest(keras_path), sample).detail


def write_keras_atomic(model: keras.Model, path: Path) -> None:
    """Save `model` as a `.keras` file via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.stem}.{uuid.uuid4().hex}.partial.keras"
    try:
        model.save(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync(path.parent)


def write_saved_model_atomic(model: keras.Model, path: Path) -> None:
    """Export a SavedModel whose `serve` signature maps raw features to probabilities."""
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_saved_model(path)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
    try:
        model.export(str(temporary), format="tf_saved_model", verbose=False)
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
        if path.exists():
            os.replace(path, old)
        os.replace(temporary, path)
        _fsync(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def recover_saved_model(path: Path) -> None:
    """Undo an export interrupted between its renames, and drop leftover partial exports."""
    olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not path.exists() and olds:
        os.replace(olds.pop(), path)
    for leftover in [*olds, *path.parent.glob(f".{path.name}.*.partial")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entries to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
