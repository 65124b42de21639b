"""The model built from the spec: its layers, its loss on probabilities, and atomic exports."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from workload.model.build import build_model, feature_plan, load_model  # noqa: E402
from workload.model.export import SERVE_ENDPOINT, export_model, recover_saved_model  # noqa: E402
from workload.model.preprocessing import LAYER_NAME  # noqa: E402
from workload.model.profile import TrainingProfile  # noqa: E402
from workload.model.statistics import feature_statistics, plan_features  # noqa: E402
from workload.spec import DataSpec, ModelSpec  # noqa: E402

Features = npt.NDArray[np.float32]

def width(n: int) -> DataSpec:
    """Records of `n` unnamed numeric features."""
    return DataSpec(features=n)


def profile(features: Features) -> TrainingProfile:
    """The training profile of numeric `features`."""
    return TrainingProfile(feature_statistics(features))


SMALL = ModelSpec.model_validate({
    "layers": [{"dense": 8, "activation": "tanh"}, {"dropout": 0.1}, {"dense": 4}],
    "optimizer": "sgd", "learningRate": 0.05})


@pytest.fixture(scope="module")
def raw_features() -> Features:
    """Features on very different scales, like SUSY's momenta next to its angles, one of them
    log-normal over six orders of magnitude, one near-constant."""
    rng = np.random.default_rng(1)
    constant = np.full(512, 7.0)
    constant[3] = 1e5
    columns = [rng.exponential(300.0, 512), rng.normal(0.0, 0.01, 512),
               np.exp(rng.normal(0.0, 2.3, 512)), constant]
    features: Features = np.stack(columns, axis=1).astype(np.float32)
    return features


def test_the_default_model_is_the_tutorial_mlp_with_one_sigmoid_output() -> None:
    model = build_model(ModelSpec.model_validate({}), width(18))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.units for layer in dense] == [128, 256, 128, 1]
    assert [layer.rate for layer in dropout] == [0.2, 0.4, 0.4]
    assert all(layer.activation is keras.activations.relu for layer in dense[:-1])
    assert dense[-1].activation is keras.activations.sigmoid
    assert model.input_shape == (None, 18)


def test_the_loss_takes_probabilities_not_logits() -> None:
    model = build_model(SMALL, width(2))
    assert isinstance(model.loss, keras.losses.BinaryCrossentropy)
    assert model.loss.get_config()["from_logits"] is False
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(0.05)


def test_standardize_uses_the_training_mean_and_variance(raw_features: Features) -> None:
    spec = SMALL.model_copy(update={"preprocessing": "standardize"})
    model = build_model(spec, width(2), profile(raw_features[:, :2]))
    normalized = model.get_layer("normalize")(raw_features[:, :2]).numpy()
    np.testing.assert_allclose(normalized.mean(axis=0), [0.0, 0.0], atol=1e-3)
    np.testing.assert_allclose(normalized.std(axis=0), [1.0, 1.0], atol=1e-2)


def test_robust_preprocessing_is_the_first_layer_and_drops_near_constant_columns(
        raw_features: Features) -> None:
    statistics = feature_statistics(raw_features)
    plan = feature_plan(SMALL, profile(raw_features))
    assert plan is not None and plan.transforms[2:] == ("signed-log", "drop")
    model = build_model(SMALL, width(4), profile(raw_features), plan=plan)
    prepared = model.get_layer(LAYER_NAME)(raw_features).numpy()
    assert prepared.shape == (512, 3)
    np.testing.assert_allclose(prepared.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(prepared.std(axis=0), 1.0, atol=0.05)
    assert np.abs(prepared).max() < 6.0
    assert plan.transforms == plan_features(statistics).transforms


def test_without_preprocessing_the_model_takes_features_as_they_are() -> None:
    model = build_model(SMALL.model_copy(update={"preprocessing": "none"}), width(2))
    assert [layer.name for layer in model.layers][:2] == ["features", "dense_0"]


def test_export_writes_a_keras_file_and_a_servable_saved_model(
        tmp_path: Path, raw_features: Features) -> None:
    model = build_model(SMALL, width(4), profile(raw_features))  # robust preprocessing
    keras_path, saved_path = tmp_path / "model.keras", tmp_path / "saved_model"
    export_model(model, keras_path, saved_path)
    export_model(model, keras_path, saved_path)  # replacing an existing export works too
    expected = model.predict(raw_features[:4], verbose=0)
    reloaded = load_model(keras_path)
    np.testing.assert_allclose(reloaded.predict(raw_features[:4], verbose=0), expected, rtol=1e-5)
    served = tf.saved_model.load(str(saved_path))
    signature = served.signatures[SERVE_ENDPOINT]
    spec = next(iter(signature.structured_input_signature[1].values()))
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 4]  # raw features
    output = next(iter(signature(tf.constant(raw_features[:4])).values())).numpy()
    np.testing.assert_allclose(output, expected, rtol=1e-5)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.keras", "saved_model"]


def test_an_export_interrupted_between_renames_is_recovered(tmp_path: Path) -> None:
    target = tmp_path / "saved_model"
    moved_aside = tmp_path / ".saved_model.old-1"
    moved_aside.mkdir()
    (moved_aside / "saved_model.pb").write_bytes(b"previous")
    (tmp_path / ".saved_model.abc.partial").mkdir()
    recover_saved_model(target)
    assert (target / "saved_model.pb").read_bytes() == b"previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["saved_model"]


def test_a_cosine_schedule_decays_the_step_size_to_zero_over_the_planned_steps() -> None:
    model = build_model(SMALL, width(2), decay_steps=100)
    schedule = model.optimizer.learning_rate
    assert float(schedule) == pytest.approx(0.05)
    model.optimizer.iterations.assign(50)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025, rel=1e-3)
    model.optimizer.iterations.assign(100)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-6)
