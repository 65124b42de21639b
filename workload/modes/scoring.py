"""Score exact offset ranges of a topic with a trained model into a `Tally` (evaluate's engine).

Batches come from `offset_reader` (exact `[start, stop)` ranges, one reader
per partition kept for the whole run), are decoded with the vectorised
decoder (bad records set aside with their reason), and the good ones are
scored by the Keras model in a compiled function. Nothing here touches the
ledger or the consumer group: `evaluate` decides when a chunk's tally
becomes durable. A chunk that returns fewer records than its offset range
holds (a broker restart mid-read, records deleted by retention, offset gaps
of transactional producers) fails instead of being counted as covered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from workload.data.decode import count_reasons, decode_batch_tensors
from workload.kafka_connection import KafkaConnection
from workload.modes.ledger import Tally
from workload.modes.offset_reader import open_readers, ranges_dataset
from workload.spec import DataSpec

BadRecordSink = Callable[[Any, Any, Any], None]
"""Receives the keys, values and reasons of a batch's bad records (e.g. a dead-letter sender)."""


class ScoringError(RuntimeError):
    """A range could not be read as its offsets promised."""


class Scorer:
    """A loaded model plus the decoding of one topic's records."""

    def __init__(self, model_path: Path, data: DataSpec, connection: KafkaConnection,
                 topic: str, partitions: list[int], batch_size: int,
                 bad_record_sink: BadRecordSink | None = None) -> None:
        self._data = data
        self._topic = topic
        self._readers = open_readers(connection, topic, partitions)
        self._batch_size = batch_size
        self._sink = bad_record_sink
        model = keras.saving.load_model(model_path, compile=False)
        width = len(data.feature_names)

        def predict(features: tf.Tensor) -> tf.Tensor:
            return tf.reshape(model(features, training=False), [-1])

        signature = [tf.TensorSpec([None, width], tf.float32)]
        self._predict = tf.function(predict, input_signature=signature)

    def score(self, ranges: dict[int, tuple[int, int]]) -> Tally:
        """The tally of every record in `ranges` (per partition `[start, stop)`)."""
        data = self._data

        def decode(keys: tf.Tensor, values: tf.Tensor) -> tuple[tf.Tensor, ...]:
            features, labels, reasons = decode_batch_tensors(keys, values, data)
            return features, labels, reasons, keys, values

        dataset = ranges_dataset(self._readers, ranges, self._batch_size)
        dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
        tally = Tally()
        read = 0
        try:
            for features, labels, reasons, keys, values in dataset:
                read += int(tf.size(reasons))
                if tf.size(labels) > 0:
                    tally.add_scores(labels.numpy(), self._predict(features).numpy())
                bad = count_reasons(reasons)
                if bad:
                    tally.add_bad(bad)
                    if self._sink is not None:
                        mask = reasons.numpy() != b""
                        self._sink(keys.numpy()[mask], values.numpy()[mask],
                                   reasons.numpy()[mask])
        except tf.errors.InvalidArgumentError as error:
            where = f"topic {self._topic!r}, offsets {ranges}"
            raise ScoringError(f"{where}: {error.message}") from None
        expected = sum(stop - start for start, stop in ranges.values())
        if read != expected:
            raise ScoringError(
                f"topic {self._topic!r}, offsets {ranges}: read {read} records, expected "
                f"{expected} (broker unavailable, or records deleted or missing in the range)")
        return tally
