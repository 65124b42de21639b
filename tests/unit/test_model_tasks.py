"""Models per task: outputs, losses, what a saved model says about itself, categorical inputs."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from workload.data.decoded import Decoded, texts  # noqa: E402
from workload.model.build import build_model, describe_preprocessing, encodings, load_model  # noqa: E402
from workload.model.categorical import ONE_HOT_MAX  # noqa: E402
from workload.model.export import SERVE_ENDPOINT, export_model  # noqa: E402
from workload.model.inputs import InputLayout  # noqa: E402
from workload.model.profile import RunningProfile, TaskFacts, merge_profiles  # noqa: E402
from workload.model.task import task_loss, task_of  # noqa: E402
from workload.spec import DataSpec, ModelSpec  # noqa: E402

DATA = DataSpec.model_validate({"format": "json", "columns": ["x", "country", "device.id", "y"],
                                "label": "y", "categorical": ["country", "device.id"],
                                "maxTokens": 40})


def batch(rows: int, seed: int) -> Decoded:
    """Decoded rows: one number, a country of 3 values, a device of 60 (an embedding)."""
    rng = np.random.default_rng(seed)
    countries = rng.choice(["fr", "de", "it"], rows)
    devices = [f"d{value}" for value in rng.integers(0, 60, rows)]
    categories = texts((value for pair in zip(countries, devices, strict=True) for value in pair),
                       (rows, 2))
    return Decoded(rng.normal(size=(rows, 1)).astype(np.float32),
                   rng.integers(0, 3, rows).astype(np.float32), np.zeros(rows, np.uint8),
                   categories=categories,
                   tokens=texts((["a", "b", "c"][int(v)] for v in rng.integers(0, 3, rows)),
                                (rows,)))


def test_a_multiclass_model_with_categorical_fields_takes_raw_strings_and_says_its_classes(
        tmp_path: Path) -> None:
    running = RunningProfile(DATA, "multiclass")
    running.add(batch(500, 1))
    profile = running.result()
    spec = ModelSpec.model_validate({"task": "multiclass", "layers": [{"dense": 8}]})
    model = build_model(spec, DATA, profile)
    assert task_of(model) == TaskFacts("multiclass", ("a", "b", "c"))
    assert model.output_shape == (None, 3)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    country, device = encodings(DATA, profile)
    assert country.one_hot and country.width == 4  # 3 values + out of vocabulary
    assert not device.one_hot and len(device.vocabulary) == 40 and device.size > ONE_HOT_MAX
    described = describe_preprocessing(spec, None, DATA.numeric_names, [country, device])
    assert described["summary"].endswith("categorical: 1 one-hot, 1 embedding")

    rows = batch(8, 2)
    inputs = InputLayout.of(DATA).of_decoded(rows)
    assert isinstance(inputs, dict) and set(inputs) == {"features", "country", "device_id"}
    unseen = dict(inputs, country=np.array(["xx"] * 8, dtype=object))
    probabilities = model(inputs).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(model(unseen).numpy()).all()  # an unknown country: the OOV bucket

    keras_path, saved = tmp_path / "model.keras", tmp_path / "saved_model"
    export_model(model, keras_path, saved)
    reloaded = load_model(keras_path)
    assert task_of(reloaded) == task_of(model)
    np.testing.assert_allclose(reloaded(inputs).numpy(), probabilities, rtol=1e-5)
    serve = tf.saved_model.load(str(saved)).signatures[SERVE_ENDPOINT]
    served = next(iter(serve(**{name: tf.constant(value) for name, value
                                in inputs.items()}).values())).numpy()
    np.testing.assert_allclose(served, probabilities, rtol=1e-5)


def test_a_regression_model_answers_in_the_label_units_and_learns_standardised_errors() -> None:
    data = DataSpec(features=2)
    labels = np.array([1000.0, 1010.0, 990.0, 1020.0], np.float32)
    features = np.arange(8, dtype=np.float32).reshape(4, 2)
    decoded = Decoded(features, labels, np.zeros(4, np.uint8))
    running = RunningProfile(data, "regression")
    running.add(decoded)
    spec = ModelSpec.model_validate({"task": "regression", "layers": [{"dense": 4}]})
    model = build_model(spec, data, running.result())
    facts = task_of(model)
    assert facts.task == "regression"
    assert facts.target_mean == pytest.approx(1005.0)
    assert facts.target_std == pytest.approx(float(np.std(labels)), rel=1e-5)
    head = model.get_layer("standardized")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])
    np.testing.assert_allclose(model(np.ones((3, 2), np.float32)).numpy(), 1005.0)
    # An error of one standard deviation costs 1 (MSE) or 0.5 (Huber), whatever the units.
    truth, guess = tf.constant([[1005.0]]), tf.constant([[1005.0 + facts.target_std]])
    assert float(model.loss(truth, guess)) == pytest.approx(1.0, rel=1e-4)
    huber = task_loss(facts, spec.model_copy(update={"loss": "huber"}))
    assert float(huber(truth, guess)) == pytest.approx(0.5, rel=1e-4)


def test_a_model_saved_before_tasks_is_binary() -> None:
    inputs = keras.Input(shape=(2,))
    legacy = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(inputs))
    assert task_of(legacy) == TaskFacts("binary")


def test_profiles_of_disjoint_rows_merge_to_the_profile_of_all_rows() -> None:
    data = DataSpec.model_validate({"columns": ["x", "country", "y"], "label": "y",
                                    "categorical": ["country"]})
    first, second = batch(300, 3), batch(200, 4)
    first = Decoded(first.features, first.labels, first.reasons,
                    categories=first.categories[:, :1], tokens=first.tokens)  # type: ignore[index]
    second = Decoded(second.features, second.labels, second.reasons,
                     categories=second.categories[:, :1], tokens=second.tokens)  # type: ignore[index]
    parts, whole = [], RunningProfile(data, "multiclass")
    for rows in (first, second):
        part = RunningProfile(data, "multiclass")
        part.add(rows)
        parts.append(part.result())
        whole.add(rows)
    together, alone = merge_profiles(parts), whole.result()
    assert together.values == alone.values and together.labels == alone.labels
    assert together.vocabulary("country", 2) == alone.vocabulary("country", 2)
    assert together.facts("multiclass").classes == ("a", "b", "c")


def test_a_learned_label_set_that_is_too_small_is_refused() -> None:
    running = RunningProfile(DATA, "multiclass")
    rows = batch(10, 5)
    running.add(Decoded(rows.features, rows.labels, rows.reasons, categories=rows.categories,
                        tokens=texts(["a"] * 10, (10,))))
    with pytest.raises(ValueError, match="at least 2 classes"):
        running.result().facts("multiclass")
