"""The promotion gate on a model with categorical fields: both models score the same records'
inputs (strings included), a better challenger is promoted with its LiteRT scorer, and the gate
then serves it with LiteRT."""

from __future__ import annotations

from workload import tflog

tflog.quiet()

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from workload.artifacts import Artifacts, file_digest  # noqa: E402
from workload.data.decode import Decoded, LabelRule, make_decoder  # noqa: E402
from workload.datagen.records import encode  # noqa: E402
from workload.datagen.task_families import TICKETS  # noqa: E402
from workload.model.build import build_model  # noqa: E402
from workload.model.export import write_keras_atomic  # noqa: E402
from workload.model.inputs import InputLayout, ModelInputs  # noqa: E402
from workload.model.litert import TOLERANCE, export_litert, matching_litert  # noqa: E402
from workload.model.profile import RunningProfile  # noqa: E402
from workload.modes.gate import PromotionGate  # noqa: E402
from workload.modes.prediction import Floats  # noqa: E402
from workload.modes.serving_model import POINTER  # noqa: E402
from workload.spec import ModelSpec, parse_spec  # noqa: E402

DATA = TICKETS.data_spec()
CLASSES = tuple(sorted(TICKETS.classes))


def tickets(rows: int, seed: int) -> Decoded:
    """`rows` generated tickets, as the decoder gives them."""
    messages = encode(TICKETS.generate(rows, seed), DATA)
    decoded = make_decoder(DATA, LabelRule("multiclass", CLASSES))(
        [b""] * rows, [message.value for message in messages])
    assert decoded.good.all()
    return decoded


def inputs_of(decoded: Decoded) -> tuple[ModelInputs, Floats]:
    """The model's inputs and the labels of decoded records."""
    return InputLayout.of(DATA).of_decoded(decoded), decoded.labels


def test_a_better_categorical_challenger_is_promoted_with_its_litert_scorer(
        tmp_path: Path) -> None:
    keras.utils.set_random_seed(7)
    training = tickets(3000, seed=31)
    train_inputs, train_labels = inputs_of(training)
    running = RunningProfile(DATA, "multiclass")
    running.add(training)
    spec = ModelSpec.model_validate({"task": "multiclass", "classes": list(CLASSES),
                                     "layers": [{"dense": 16}]})
    artifacts = Artifacts(tmp_path).prepare()
    served = build_model(spec, DATA, running.result())  # untrained: about a guess
    write_keras_atomic(served, artifacts.keras_model)
    assert export_litert(served, artifacts.keras_model, file_digest(artifacts.keras_model),
                         train_inputs).ok
    challenger = keras.models.clone_model(served)
    challenger.set_weights(served.get_weights())
    challenger.compile(optimizer="adam", loss=served.loss)
    challenger.fit(train_inputs, train_labels, epochs=8, batch_size=64, verbose=0)
    job = parse_spec({
        "kafka": {"bootstrapServers": "127.0.0.1:9"}, "data": DATA.model_dump(by_alias=True),
        "online": {"topic": "learn"}, "model": {"output": {"path": str(tmp_path)},
                                                "task": "multiclass"},
        "serve": {"inputTopic": "in", "outputTopic": "out", "promotion": {"window": 600}}})
    gate = PromotionGate(job, artifacts)
    assert gate.serving.runtime == "litert"
    assert gate.consider(challenger) is None  # nothing compared yet

    inputs, labels = inputs_of(tickets(600, seed=32))
    gate.observe(inputs, labels, challenger.predict(inputs, verbose=0))
    decision = gate.consider(challenger)

    assert decision is not None and decision.promoted, decision
    assert decision.challenger_score > decision.serving_score
    pointer = json.loads((artifacts.serving / POINTER).read_text())
    promoted = artifacts.serving / pointer["model"]
    scorer, made = matching_litert(promoted, file_digest(promoted))
    assert scorer is not None, made  # exported, checked on the window's strings
    assert gate.serving.version == pointer["version"] and gate.serving.runtime == "litert"
    np.testing.assert_allclose(gate.serving.predict(inputs), challenger.predict(inputs, verbose=0),
                               atol=TOLERANCE)
