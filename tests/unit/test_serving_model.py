"""Which scorer a serving replica loads: in an image without TensorFlow (the serve image), a
model without a LiteRT scorer is refused with a message that says what to do, instead of an
ImportError deep in a restart loop."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from workload.model.inputs import InputLayout
from workload.modes import serving_model
from workload.modes.serving_model import ModelNeedsTensorFlow, load_served


def test_a_model_without_litert_in_an_image_without_tensorflow_is_refused_saying_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model-trained-abc.keras"
    model.write_bytes(b"not read: the LiteRT file is looked for first")
    real = importlib.util.find_spec

    def without_tensorflow(name: str, package: str | None = None) -> object:
        return None if name == "tensorflow" else real(name, package)

    monkeypatch.setattr(serving_model.importlib.util, "find_spec", without_tensorflow)
    with pytest.raises(ModelNeedsTensorFlow, match=r"no LiteRT scorer .* workload image"):
        load_served(model, "trained-abc", InputLayout(18, ()))
