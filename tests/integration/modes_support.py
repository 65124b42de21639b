"""Set-up shared by the evaluate and online tests: a job spec, a filled topic, a tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from workload.datagen.records import Message, corrupt, encode
from workload.datagen.synthetic import generate
from workload.datagen.table import SusyData
from workload.kafka.connection import KafkaConnection
from workload.kafka.producer import produce_messages
from workload.spec import StreamingTrainingJobSpec, parse_spec


def job_spec(bootstrap: str, output: Path, **sections: dict[str, Any]) -> StreamingTrainingJobSpec:
    """A job on the test broker whose output folder is `output`; `sections` override spec parts."""
    document: dict[str, Any] = {
        "kafka": {"bootstrapServers": bootstrap},
        "model": {"output": {"path": str(output)},
                  "layers": [{"dense": 8, "activation": "relu"}]},
    }
    document.update(sections)
    return parse_spec(document)


def fill_topic(bootstrap: str, topic: str, rows: int, seed: int, partitions: int,
               bad_fraction: float = 0.0) -> tuple[SusyData, list[Message], dict[str, int]]:
    """Write `rows` synthetic records (some malformed if asked) round-robin over the partitions."""
    data = generate(rows, seed=seed)
    messages = encode(data)
    bad: dict[str, int] = {}
    if bad_fraction:
        messages, bad = corrupt(messages, bad_fraction, seed)
    produce_messages(KafkaConnection(bootstrap), topic, messages, partitions)
    return data, messages, bad


def save_tiny_model(path: Path, seed: int = 0, features: int = 18,
                    data: SusyData | None = None) -> None:
    """A small untrained Keras model (sigmoid output, input [None, 18]), features standardised
    with `data`'s statistics when given (so its scores are spread, not saturated)."""
    import keras

    keras.utils.set_random_seed(seed)
    mean = data.features.mean(axis=0) if data is not None else np.zeros(features)
    variance = data.features.var(axis=0) if data is not None else np.full(features, 100.0)
    model = keras.Sequential([
        keras.Input(shape=(features,)),
        keras.layers.Normalization(mean=mean, variance=variance),
        keras.layers.Dense(8, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def predict(path: Path, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The saved model's scores for `features`, computed directly."""
    import keras

    model = keras.saving.load_model(path, compile=False)
    scores = model.predict(features, batch_size=4096, verbose=0)
    return np.asarray(scores, dtype=np.float64).reshape(-1)
