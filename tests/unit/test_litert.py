"""A model with categorical fields gets a LiteRT scorer that takes the raw strings, predicts as
Keras within the tolerance, and scores in a process that never loads TensorFlow."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from workload.artifacts import file_digest  # noqa: E402
from workload.data.decoded import Decoded, texts  # noqa: E402
from workload.model.build import build_model, encodings  # noqa: E402
from workload.model.export import write_keras_atomic  # noqa: E402
from workload.model.inputs import InputLayout, ModelInputs  # noqa: E402
from workload.model.litert import TOLERANCE, LiteRtScorer, export_litert  # noqa: E402
from workload.model.profile import RunningProfile  # noqa: E402
from workload.modes.serving_model import load_keras  # noqa: E402
from workload.spec import DataSpec, ModelSpec  # noqa: E402

DATA = DataSpec.model_validate({"format": "json", "columns": ["x", "channel", "y", "product.id"],
                                "label": "y", "categorical": ["channel", "product.id"]})
LAYOUT = InputLayout.of(DATA)
CHANNELS = ["email", "chat", "téléphone"]


def records(rows: int, seed: int) -> Decoded:
    """Decoded rows: two numbers' worth of noise, a channel of 3 values, a product of 80."""
    rng = np.random.default_rng(seed)
    channels = [str(value) for value in rng.choice(CHANNELS, rows)]
    products = [f"p{value}" for value in rng.integers(0, 80, rows)]
    return Decoded(rng.normal(size=(rows, 1)).astype(np.float32),
                   rng.integers(0, 3, rows).astype(np.float32), np.zeros(rows, np.uint8),
                   categories=texts((v for pair in zip(channels, products, strict=True)
                                     for v in pair), (rows, 2)),
                   tokens=texts((["a", "b", "c"][int(v)] for v in rng.integers(0, 3, rows)),
                                (rows,)))


def test_a_one_hot_and_an_embedded_field_score_in_litert_as_in_keras(tmp_path: Path) -> None:
    running = RunningProfile(DATA, "multiclass")
    running.add(records(2000, 1))
    profile = running.result()
    model = build_model(ModelSpec.model_validate({"task": "multiclass", "layers": [{"dense": 8}]}),
                        DATA, profile)
    channel, product = encodings(DATA, profile)
    assert channel.one_hot and not product.one_hot  # 80 products: more than 32, embedded
    keras_path = tmp_path / "model.keras"
    write_keras_atomic(model, keras_path)
    # Values the vocabularies lack (an unknown channel, product, an empty one) included.
    sample = LAYOUT.of_decoded(records(1500, 2))
    assert isinstance(sample, dict)
    sample["channel"][:3] = ["fax", "", "Email"]
    sample["product_id"][3] = "p999"

    outcome = export_litert(model, keras_path, file_digest(keras_path), sample)
    assert outcome.ok, outcome.detail
    scorer = LiteRtScorer(keras_path.with_suffix(".tflite"), LAYOUT)
    expected = model.predict(sample, verbose=0)
    found = scorer(sample)  # 1500 rows: a full chunk and a padded one
    assert found.shape == (1500, 3)
    assert float(np.max(np.abs(found - expected))) <= TOLERANCE
    assert scorer({name: values[:0] for name, values in sample.items()}).shape == (0,)
    few = scorer({name: values[:5] for name, values in sample.items()})  # the small interpreter
    assert float(np.max(np.abs(few - expected[:5]))) <= TOLERANCE

    fallback = load_keras(keras_path, "trained-test", LAYOUT, "tensorflow (test)")
    np.testing.assert_allclose(fallback.predict(sample), expected, atol=TOLERANCE)

    assert _score_without_tensorflow(tmp_path, keras_path, sample) == {
        "tensorflowLoaded": False, "runtime": "litert"}
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, atol=TOLERANCE)


SCORE_ALONE = """
import json, sys
from pathlib import Path
import numpy as np
from workload.model.inputs import InputLayout
from workload.modes.serving_model import load_served
folder = Path(sys.argv[1])
given = json.loads((folder / "sample.json").read_text())
inputs = {name: np.asarray(values, np.float32) if name == "features"
          else np.array(values, dtype=object) for name, values in given.items()}
served = load_served(Path(sys.argv[2]), "trained-test", InputLayout(1, ("channel", "product_id")))
np.save(folder / "served.npy", served.predict(inputs))
print(json.dumps({"tensorflowLoaded": "tensorflow" in sys.modules, "runtime": served.runtime}))
"""


def _score_without_tensorflow(folder: Path, keras_path: Path, sample: ModelInputs
                              ) -> dict[str, object]:
    """Serve `sample` with the model's LiteRT file in a fresh process (as a serving pod loads
    it); what that process loaded and scored with."""
    assert isinstance(sample, dict)
    (folder / "sample.json").write_text(json.dumps(
        {name: values.tolist() for name, values in sample.items()}))
    run = subprocess.run([sys.executable, "-c", SCORE_ALONE, str(folder), str(keras_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    found: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return found
