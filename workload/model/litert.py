"""A LiteRT scorer beside each exported Keras model: what serving pods score with, without TensorFlow.

LiteRT has no converter of its own, so the conversion runs where TensorFlow
is (the trainer, the promotion gate): Keras' `model.export(path,
format="litert")`. The file is kept only when its predictions on a batch of
real features equal Keras' within `TOLERANCE`; a model that does not
convert (a custom layer, an op LiteRT lacks) or does not match gets no
LiteRT file and is served with TensorFlow, which the serving status says.
A sidecar (`<model>.tflite.json`) names the SHA-256 of the Keras file it
was made from (so a LiteRT file left from another model is never used), or
why there is no LiteRT file.

Scoring (`LiteRtScorer`) imports only `ai_edge_litert` and numpy: measured
(TF 2.21, Keras 3.15.1) a first prediction 0.13 s after loading against
3.5 s for TensorFlow, and a max difference of 8.9e-8 from `model.predict`.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from workload.artifacts import write_json_atomic

if TYPE_CHECKING:
    import keras

Floats = npt.NDArray[np.float32]

TOLERANCE = 1e-5
"""Largest difference from Keras' predictions a LiteRT file may show on the test batch."""

SAMPLE_RECORDS = 1024
"""Records of the test batch at export."""

CHUNK = 1024
"""Records a LiteRT interpreter scores per call: its input is allocated once at this size and
the last chunk of a batch padded, so no call resizes it."""


@dataclass(frozen=True)
class LiteRtExport:
    """The outcome of an export: whether the file is there, and the figure or the reason."""

    ok: bool
    detail: str
    """`max difference 1.8e-07 from Keras on 1024 records`, or why there is no file."""


def litert_path(keras_path: Path) -> Path:
    """The LiteRT file beside a Keras file."""
    return keras_path.with_suffix(".tflite")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def export_litert(model: keras.Model, keras_path: Path, digest: str,
                  sample: Floats) -> LiteRtExport:
    """Convert `model` (saved at `keras_path`, whose SHA-256 is `digest`) to LiteRT beside it,
    checked against Keras on `sample`; a failed or mismatching conversion leaves no file."""
    target = litert_path(keras_path)
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.partial.tflite")
    for stale in (target, _sidecar(target)):
        stale.unlink(missing_ok=True)
    try:
        model.export(str(temporary), format="litert", verbose=False)
        sample = np.ascontiguousarray(sample[:SAMPLE_RECORDS], np.float32)
        expected = np.asarray(model.predict(sample, verbose=0), np.float32)
        found = LiteRtScorer(temporary, sample.shape[1])(sample)
        difference = float(np.max(np.abs(found.reshape(expected.shape) - expected)))
    except Exception as error:  # any failure means: serve with TensorFlow
        return _without(target, temporary, digest, f"not converted to LiteRT "
                        f"({type(error).__name__}: {str(error)[:200]})")
    if not difference <= TOLERANCE:
        return _without(target, temporary, digest, f"LiteRT predictions differ from Keras' by "
                        f"{difference:.3g} (more than {TOLERANCE:g})")
    os.replace(temporary, target)
    detail = f"max difference {difference:.2g} from Keras on {len(sample)} records"
    write_json_atomic(_sidecar(target), {"kerasSha256": digest, "detail": detail})
    return LiteRtExport(True, detail)


def _without(target: Path, temporary: Path, digest: str, why: str) -> LiteRtExport:
    """No LiteRT file; the sidecar says why, for the serving status."""
    temporary.unlink(missing_ok=True)
    write_json_atomic(_sidecar(target), {"kerasSha256": digest, "why": why})
    return LiteRtExport(False, why)


def matching_litert(keras_path: Path, digest: str) -> tuple[Path | None, str]:
    """The LiteRT file made from the Keras file whose SHA-256 is `digest` (`None` if there is
    none), and what the export said (its figure, or why there is no file)."""
    target = litert_path(keras_path)
    try:
        made = json.loads(_sidecar(target).read_text())
    except (OSError, ValueError):
        return None, "no LiteRT file was made from this model"
    if made.get("kerasSha256") != digest:
        return None, "the LiteRT file beside it was made from another model"
    if "why" in made or not target.exists():
        return None, str(made.get("why", "its LiteRT file is missing"))
    return target, str(made.get("detail", ""))


class LiteRtScorer:
    """Outputs of a LiteRT model for batches of features (float32 [n, width])."""

    def __init__(self, path: Path, width: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path))
        self._input: dict[str, Any] = self._interpreter.get_input_details()[0]
        self._output: dict[str, Any] = self._interpreter.get_output_details()[0]
        self._interpreter.resize_tensor_input(self._input["index"], [CHUNK, width])
        self._interpreter.allocate_tensors()
        self._buffer = np.zeros((CHUNK, width), np.float32)

    def __call__(self, features: Floats) -> Floats:
        pieces = []
        for first in range(0, len(features), CHUNK):
            chunk = features[first:first + CHUNK]
            self._buffer[:len(chunk)] = chunk
            self._interpreter.set_tensor(self._input["index"], self._buffer)
            self._interpreter.invoke()
            pieces.append(self._interpreter.get_tensor(self._output["index"])[:len(chunk)].copy())
        if not pieces:
            return np.zeros((0,), np.float32)
        outputs: Floats = np.concatenate(pieces)
        return outputs
