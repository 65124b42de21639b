"""A LiteRT scorer beside each exported Keras model: what serving pods score with, without TensorFlow.

LiteRT has no converter of its own, so the conversion runs where TensorFlow
is (the trainer, the promotion gate): Keras' `model.export(path,
format="litert")`. The file is kept only when its predictions on a batch of
real records (`ModelInputs`: the numeric features and, for categorical
fields, their raw strings) equal Keras' within `TOLERANCE`; a model that does not
convert (a custom layer, an op LiteRT lacks) or does not match gets no
LiteRT file and is served with TensorFlow, which the serving status says.
A sidecar (`<model>.tflite.json`) names the SHA-256 of the Keras file it
was made from (so a LiteRT file left from another model is never used), or
why there is no LiteRT file.

Scoring (`LiteRtScorer`) imports only `ai_edge_litert` and numpy: measured
(TF 2.21, Keras 3.15.1) a first prediction 0.13 s after loading against
3.5 s for TensorFlow, and a max difference of 8.9e-8 from `model.predict`.
The export keeps the Keras inputs' names in its one signature
(`serving_default`: `features`, and each categorical field's name; the
interpreter's own tensor names are `serving_default_<name>:0`), so the
scorer finds each input of the job's `InputLayout` there. A categorical
field is a string tensor [batch]: Keras' `StringLookup` inside the model
runs in LiteRT (its hash table ops are built in), fed the values as text.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from workload.artifacts import write_json_atomic
from workload.model.inputs import FEATURES, InputLayout, ModelInputs, head, rows_of

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

SMALL_CHUNK = 32
"""Records the second interpreter scores per call, for a batch's last chunk of at most this
many (a trickle of records served as they come): the default model took 1.2 ms a call padded
to `CHUNK` records, 0.07 ms at 32 (resizing one interpreter instead cost about 0.5 ms a time).
Made on first use, so a replica that only sees full batches holds one."""


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
                  sample: ModelInputs) -> LiteRtExport:
    """Convert `model` (saved at `keras_path`, whose SHA-256 is `digest`) to LiteRT beside it,
    checked against Keras on `sample` (the model's inputs for some real records); a failed or
    mismatching conversion leaves no file."""
    target = litert_path(keras_path)
    temporary = target.with_name(f".{target.stem}.{uuid.uuid4().hex}.partial.tflite")
    for stale in (target, _sidecar(target)):
        stale.unlink(missing_ok=True)
    try:
        model.export(str(temporary), format="litert", verbose=False)
        sample = head(sample, SAMPLE_RECORDS)
        expected = np.asarray(model.predict(sample, verbose=0), np.float32)
        found = LiteRtScorer(temporary, InputLayout.of_inputs(sample))(sample)
        difference = float(np.max(np.abs(found.reshape(expected.shape) - expected)))
    except Exception as error:  # any failure means: serve with TensorFlow
        return _without(target, temporary, digest, f"not converted to LiteRT "
                        f"({type(error).__name__}: {str(error)[:200]})")
    if not difference <= TOLERANCE:
        return _without(target, temporary, digest, f"LiteRT predictions differ from Keras' by "
                        f"{difference:.3g} (more than {TOLERANCE:g})")
    os.replace(temporary, target)
    detail = f"max difference {difference:.2g} from Keras on {rows_of(sample)} records"
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
    """Outputs of a LiteRT model for batches of the model's inputs (`ModelInputs` of `layout`:
    float32 features [n, numeric], and by name a text array [n] per categorical field)."""

    def __init__(self, path: Path, layout: InputLayout) -> None:
        self._path, self._layout = path, layout
        self._sized: dict[int, _Sized] = {CHUNK: _Sized(path, layout, CHUNK)}

    def __call__(self, inputs: ModelInputs) -> Floats:
        by_name = inputs if isinstance(inputs, dict) else {FEATURES: inputs}
        rows = rows_of(inputs)
        pieces = []
        for first in range(0, rows, CHUNK):
            count = min(CHUNK, rows - first)
            size = SMALL_CHUNK if count <= SMALL_CHUNK else CHUNK
            if size not in self._sized:
                self._sized[size] = _Sized(self._path, self._layout, size)
            pieces.append(self._sized[size](by_name, first, count))
        if not pieces:
            return np.zeros((0,), np.float32)
        outputs: Floats = np.concatenate(pieces)
        return outputs


class _Sized:
    """One LiteRT interpreter whose inputs are allocated for `size` records (fewer are padded)."""

    def __init__(self, path: Path, layout: InputLayout, size: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(path))
        signature = self._interpreter.get_signature_runner()  # Keras' one: serving_default
        given: dict[str, dict[str, Any]] = signature.get_input_details()
        output: dict[str, Any] = next(iter(signature.get_output_details().values()))
        del signature  # it holds the interpreter's tensors, which must be free to resize
        if not layout.keyed and len(given) == 1:  # one tensor, whatever Keras named it
            given = {FEATURES: next(iter(given.values()))}
        if sorted(given) != sorted(layout.names):
            raise ValueError(f"the LiteRT model at {path} takes {', '.join(sorted(given))}; "
                             f"the job's records give {', '.join(sorted(layout.names))}")
        self._inputs: dict[str, tuple[int, npt.NDArray[Any]]] = {}
        for name, details in given.items():
            shape = [size, *(int(width) for width in details["shape_signature"][1:])]
            if name == FEATURES and shape != [size, layout.numeric]:
                raise ValueError(f"the LiteRT model at {path} takes {shape[1:]} numeric "
                                 f"features; the job's records give {layout.numeric}")
            self._interpreter.resize_tensor_input(details["index"], shape)
            text = details["dtype"] is np.bytes_
            buffer = np.full(shape, "", object) if text else np.zeros(shape, np.float32)
            self._inputs[name] = (details["index"], buffer)
        self._output = int(output["index"])
        self._interpreter.allocate_tensors()

    def __call__(self, by_name: Mapping[str, npt.NDArray[Any]], first: int,
                 count: int) -> Floats:
        """Outputs for records `first` to `first + count` (at most `size`) of `by_name`."""
        for name, (index, buffer) in self._inputs.items():
            buffer[:count] = by_name[name][first:first + count]
            self._interpreter.set_tensor(index, buffer)
        self._interpreter.invoke()
        scored: Floats = self._interpreter.get_tensor(self._output)[:count].copy()
        return scored
